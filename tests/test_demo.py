"""`medsam2 demo` (what `make demo` runs): the main job on the embedded models, end to end.

The Dice floors guard the shipped weights: the default model (nano-chain, chaining boxes through
the volume) scores 0.976 on the real MRI sample's whole brain and 0.920 on the phantom's liver
(`embedded:nano` with its memory, the phantom demo's model before: 0.715); a broken asset, preset,
tracker or propagation path falls far below them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsam2.cli.main import main
from medsam2.io import read_image
from medsam2.model.embedded import checkpoint_path


def _check_outputs(out: Path, structure: str, report: dict) -> None:  # type: ignore[type-arg]
    image, mask, truth = (
        read_image(out / n) for n in ("image.nii.gz", f"{structure}.nii.gz", "truth.nii.gz")
    )
    assert mask.shape == image.shape and np.allclose(mask.spacing, image.spacing)
    assert np.allclose(mask.origin, image.origin) and np.allclose(mask.direction, image.direction)
    pred, ref = mask.array == 1, truth.array == 1  # the truth file holds the demo's structure
    dice = 2.0 * float((pred & ref).sum()) / float(pred.sum() + ref.sum())
    assert abs(dice - report["dice"]) < 1e-9  # the printed Dice is that of the written file


def test_demo_segments_the_real_mri_from_one_box(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert checkpoint_path() is not None, "the embedded model must ship inside the package"
    out = tmp_path / "demo"
    rc = main(["demo", "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"using the embedded model ({checkpoint_path().name})" in captured.err  # type: ignore[union-attr]
    report = json.loads((out / "demo.json").read_text())
    assert report["sample"] == "mni152" and report["structure"] == "brain"
    assert report["memory"] == "self-sorting" and report["dice"] >= 0.95, report
    assert report["tracker"] == "box-chain"
    assert f"mni152 brain: Dice {report['dice']:.3f}" in captured.out
    _check_outputs(out, "brain", report)
    image = read_image(out / "image.nii.gz")
    assert image.shape == (98, 116, 94) and np.allclose(image.spacing, (2.0, 2.0, 2.0))
    assert len(list((out / "overlays").glob("slice_*.png"))) >= 3
    # one frame per slice, except that the GIF writer merges identical neighbours (empty slices)
    assert image.shape[2] // 2 < Image.open(out / "propagation.gif").n_frames <= image.shape[2]


def test_demo_lists_and_runs_the_phantom_with_the_default_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--sample", "list"]) == 0
    listed = capsys.readouterr().out
    assert "phantom" in listed and "mni152" in listed
    out = tmp_path / "phantom"
    rc = main(["demo", "--sample", "phantom", "--no-gif", "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "using the embedded model (nano_chain.safetensors)" in captured.err
    report = json.loads((out / "demo.json").read_text())
    assert report["sample"] == "phantom" and report["structure"] == "liver" and report["dice"] >= 0.8, report
    assert report["tracker"] == "box-chain"
    assert f"phantom liver: Dice {report['dice']:.3f}" in captured.out
    _check_outputs(out, "liver", report)
    assert not (out / "propagation.gif").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sample", "knee"], "--sample knee: choose one of mni152, phantom"),
        (
            ["--sample", "mni152", "--structure", "liver"],
            "--structure liver: for --sample mni152 choose one of brain",
        ),
    ],
)
def test_demo_rejects_unknown_samples_and_structures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["demo", *argv, "--output", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
