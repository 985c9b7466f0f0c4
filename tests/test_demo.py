"""`medsam2 demo` (what `make demo` runs): the main job on the embedded model, end to end.

The Dice floor guards the shipped weights: the embedded model scores 0.919 on this sample's
liver (docs/embedded_model.md); a broken asset, preset or propagation path falls far below 0.8.
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


def test_demo_segments_the_sample_from_one_box(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert checkpoint_path() is not None, "the embedded model must ship inside the package"
    out = tmp_path / "demo"
    rc = main(["demo", "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "using the embedded model" in captured.err
    assert "phantom liver: Dice" in captured.out
    report = json.loads((out / "demo.json").read_text())
    assert report["memory"] == "self-sorting" and report["dice"] >= 0.8, report
    image, mask, truth = (read_image(out / n) for n in ("image.nii.gz", "liver.nii.gz", "truth.nii.gz"))
    assert mask.shape == image.shape and np.allclose(mask.spacing, image.spacing)
    assert np.allclose(mask.origin, image.origin) and np.allclose(mask.direction, image.direction)
    pred, ref = mask.array == 1, truth.array == 1  # the truth file holds the demo's structure
    dice = 2.0 * float((pred & ref).sum()) / float(pred.sum() + ref.sum())
    assert abs(dice - report["dice"]) < 1e-9  # the printed Dice is that of the written file
    assert len(list((out / "overlays").glob("slice_*.png"))) >= 3
    gif = Image.open(out / "propagation.gif")
    assert gif.n_frames == image.shape[2]


def test_demo_lists_and_runs_the_real_mri_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--sample", "list"]) == 0
    listed = capsys.readouterr().out
    assert "phantom" in listed and "mni152" in listed
    out = tmp_path / "mni"
    rc = main(["demo", "--sample", "mni152", "--no-gif", "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads((out / "demo.json").read_text())
    assert report["sample"] == "mni152" and report["structure"] == "brain"
    image, mask = read_image(out / "image.nii.gz"), read_image(out / "brain.nii.gz")
    assert image.shape == mask.shape == (98, 116, 94) and np.allclose(mask.spacing, (2.0, 2.0, 2.0))
    assert np.allclose(mask.direction, image.direction) and np.allclose(mask.origin, image.origin)
    assert f"mni152 brain: Dice {report['dice']:.3f}" in captured.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sample", "knee"], "--sample knee: choose one of phantom, mni152"),
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
