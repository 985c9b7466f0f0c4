# medsam2 — `make demo` runs the main job, `make test` runs everything CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest wheel-test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU torch: pinned here; an unpinned torch resolves to a multi-GB CUDA build
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev,dicom,web,eval]'
	# stardist ships a real 16-bit TIFF we test on; its own deps (tensorflow) are not needed
	$(PY) -m pip install --no-deps stardist
	# the reference implementation, test-only, without its CUDA extension or torchvision
	SAM2_BUILD_CUDA=0 $(PY) -m pip install --no-build-isolation --no-deps sam2==1.1.0
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check medsam2 tests benchmarks scripts
	$(VENV)/bin/ruff format --check medsam2 tests benchmarks scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

# the wheel, installed with no extras into a fresh throw-away venv, runs demo/info/segment/segment-images
wheel-test: $(STAMP)
	$(PY) tests/wheel_install_check.py

test: lint typecheck pytest wheel-test

# `make demo` gets exactly what `pip install medical-sam2` gives (no dev/dicom extras): its own venv
DEMO_VENV := .venv-demo
$(DEMO_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install torch==2.13.0 -e .
	touch $@

demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/medsam2 demo --output out/demo

bench: $(STAMP)
	$(PY) benchmarks/encoder.py

clean:
	rm -rf $(VENV) $(DEMO_VENV) out .pytest_cache .mypy_cache .ruff_cache
