"""What a user's ``pip install medical-sam2`` gives, checked end to end (``make wheel-test``, in ``make test``).

Builds the wheel from this tree, installs it with CPU ``torch==2.13.0`` and **no extras** into a
fresh throw-away venv (pip's cache makes this quick), then runs, from a folder outside the source
tree so that nothing is imported from it:

* ``medsam2 demo`` (the real MRI sample, then the phantom);
* ``medsam2 info`` on the embedded weights;
* ``medsam2 segment`` on a NIfTI volume generated in that venv;
* ``medsam2 segment-images`` on PNG images generated in that venv.

Each must exit 0. A missing runtime dependency (an import that only the ``dev`` extra satisfied)
fails here exactly as it would for a user. Exit code 0 when every step passed, 1 otherwise.
Usage: ``python tests/wheel_install_check.py [--keep]`` (``--keep`` leaves the folder for a look).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # CPU build, found locally; an unpinned torch resolves to a multi-GB CUDA build

# Runs inside the fresh venv: writes a small CT-like NIfTI (a bright ellipsoid on soft tissue) and three
# PNGs (a bright disc on a darker background), using only the package's runtime dependencies.
_MAKE_INPUTS = r"""
import sys
import numpy as np
import SimpleITK as sitk
from PIL import Image

out = sys.argv[1]
i, j, k = np.meshgrid(np.arange(48), np.arange(40), np.arange(12), indexing="ij")
inside = ((i - 24) / 12.0) ** 2 + ((j - 20) / 9.0) ** 2 + ((k - 6) / 5.0) ** 2 <= 1.0
ct = np.where(inside, 180, 20).astype(np.int16) + np.random.default_rng(0).integers(-5, 5, inside.shape).astype(np.int16)
image = sitk.GetImageFromArray(np.ascontiguousarray(ct.transpose(2, 1, 0)))
image.SetSpacing((0.8, 0.8, 2.5))
sitk.WriteImage(image, f"{out}/ct.nii.gz")
for n, (cx, cy) in enumerate([(30, 28), (34, 30), (28, 33)]):
    y, x = np.mgrid[0:64, 0:72]
    disc = (x - cx) ** 2 + (y - cy) ** 2 <= 14**2
    Image.fromarray(np.where(disc, 200, 40).astype(np.uint8)).save(f"{out}/img{n}.png")
"""

_EMBEDDED = "from medsam2.model.embedded import checkpoint_path; print(checkpoint_path())"


def _run(
    name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: list[str]
) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    log.append(f"{name:<16} {seconds:6.1f} s  {status}")
    print(log[-1], flush=True)
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-4000:]).strip()
        raise RuntimeError(f"{name}: {' '.join(cmd)}\n{tail}")
    return proc


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _copy_sources(dest: Path) -> None:
    """The files a clean clone would have (tracked + new, not ignored): no stale build/ or egg-info."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _build_and_install(work: Path, env: dict[str, str], log: list[str]) -> Path:
    dist, src = work / "dist", work / "src"
    _copy_sources(src)
    _run(
        "build wheel",
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        work,
        env,
        log,
    )
    wheel = next(dist.glob("medical_sam2-*.whl"))
    _run("create venv", [sys.executable, "-m", "venv", str(work / "venv")], work, env, log)
    python = work / "venv" / "bin" / "python"
    _run("pip install", [str(python), "-m", "pip", "install", "-q", TORCH, str(wheel)], work, env, log)
    return python


def _check(work: Path, python: Path, env: dict[str, str], log: list[str]) -> None:
    bin_dir = python.parent
    medsam2 = str(bin_dir / "medsam2")
    where = _run("import", [str(python), "-c", "import medsam2; print(medsam2.__file__)"], work, env, log)
    if not where.stdout.strip().startswith(str(work)):
        raise RuntimeError(f"medsam2 was imported from {where.stdout.strip()}, not from the fresh venv")
    inputs = work / "inputs"
    inputs.mkdir()
    _run("make inputs", [str(python), "-c", _MAKE_INPUTS, str(inputs)], work, env, log)
    _run("demo", [medsam2, "demo", "--no-gif", "-o", str(work / "demo")], work, env, log)
    phantom = [medsam2, "demo", "--sample", "phantom", "--no-gif", "-o", str(work / "phantom")]
    _run("demo phantom", phantom, work, env, log)
    weights = _run("find weights", [str(python), "-c", _EMBEDDED], work, env, log).stdout.strip()
    _run("info", [medsam2, "info", weights], work, env, log)
    segment = [medsam2, "segment", str(inputs / "ct.nii.gz"), "--box", "13,12,6,35,28,6"]
    _run("segment", segment + ["-o", str(work / "mask.nii.gz")], work, env, log)
    images = [str(inputs / f"img{n}.png") for n in range(3)]
    prompt = ["--box", "img0.png:17,15,43,41", "-o", str(work / "images")]
    _run("segment-images", [medsam2, "segment-images", *images, *prompt], work, env, log)
    for made in (work / "mask.nii.gz", work / "demo" / "brain.nii.gz", work / "phantom" / "liver.nii.gz"):
        if not made.is_file():
            raise RuntimeError(f"{made}: expected output is missing although the command exited 0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="medsam2-wheel-"))
    env, log = _clean_env(), []
    t0 = time.perf_counter()
    try:
        python = _build_and_install(work, env, log)
        _check(work, python, env, log)
    except (RuntimeError, StopIteration, subprocess.SubprocessError, OSError) as exc:
        print(f"wheel install check FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wheel install check passed in {time.perf_counter() - t0:.0f} s (no extras, {TORCH})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
