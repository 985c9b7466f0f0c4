"""`check-dataset` finds every problem of an nnU-Net-layout dataset at once, naming the cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medsam2.cli import train as train_cli
from medsam2.training.check import check_dataset
from medsam2.training.synthetic import write_synthetic_dataset


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Read an image, change its array (numpy (k, j, i) order) or geometry, write it back."""
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    out = edit(arr, img)
    if isinstance(out, np.ndarray):
        new = sitk.GetImageFromArray(out)
        new.CopyInformation(img) if out.shape == arr.shape else new.SetSpacing(img.GetSpacing())
        out = new
    sitk.WriteImage(out, str(path))


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    root = write_synthetic_dataset(tmp_path / "ds", num_cases=7, shape=(16, 16, 8), seed=3)
    lab, img = root / "labelsTr", root / "imagesTr"
    (lab / "case_000.nii.gz").unlink()  # missing label
    sitk.WriteImage(
        sitk.ReadImage(str(lab / "case_001.nii.gz")), str(lab / "case_999.nii.gz")
    )  # orphan label
    _rewrite(lab / "case_001.nii.gz", lambda a, i: np.where(a > 0, 5, 0).astype(a.dtype))  # undeclared value
    _rewrite(lab / "case_002.nii.gz", lambda a, i: a[:, :, :-2].copy())  # shape mismatch

    def shift(a: np.ndarray, i: sitk.Image) -> sitk.Image:
        i.SetOrigin((0.0, 0.0, 50.0))
        return i

    _rewrite(lab / "case_003.nii.gz", shift)  # geometry mismatch
    _rewrite(img / "case_004_0000.nii.gz", lambda a, i: np.where(a > 100, np.nan, a).astype(np.float32))
    _rewrite(lab / "case_005.nii.gz", lambda a, i: np.zeros_like(a))  # empty case
    (img / "case_006_0001.nii.gz").write_bytes((img / "case_006_0000.nii.gz").read_bytes())  # extra channel
    (img / "notes.txt").write_text("stray file")
    meta = json.loads((root / "dataset.json").read_text())
    meta["numTraining"] = 99
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _find(report, case: str | None, *words: str) -> str:  # type: ignore[no-untyped-def]
    for p in report.problems:
        if p.case == case and all(w.lower() in p.message.lower() for w in words):
            return p.severity
    raise AssertionError(f"no problem for {case} with {words}; got:\n" + "\n".join(report.lines()))


def test_every_problem_is_reported_at_once(broken: Path) -> None:
    report = check_dataset(broken)
    assert _find(report, "case_000", "missing label") == "error"
    assert _find(report, "case_999", "label without image") == "error"
    assert _find(report, "case_001", "unexpected label value", "[5]") == "error"
    assert _find(report, "case_002", "shape mismatch") == "error"
    assert _find(report, "case_003", "geometry mismatch", "origin") == "error"
    assert _find(report, "case_004", "nan") == "error"
    assert _find(report, "case_005", "empty case") == "warning"
    assert _find(report, "case_006", "case_006_0001", "not in channel_names") == "error"
    assert _find(report, None, "numTraining is 99", "7 case") == "error"
    assert _find(report, None, "notes.txt", "ignored") == "warning"
    assert len(report.errors) == 8
    assert "8 error(s)" in report.summary()


def test_clean_datasets_pass(tmp_path: Path) -> None:
    for dims, shape in ((3, (16, 16, 8)), (2, (24, 32))):
        root = write_synthetic_dataset(tmp_path / f"d{dims}", num_cases=3, dims=dims, shape=shape)
        report = check_dataset(root)
        assert report.problems == [] and report.num_cases == 3, report.lines()
        assert "ready for training" in report.summary()


def test_dataset_json_problems(tmp_path: Path) -> None:
    assert "no dataset.json" in check_dataset(tmp_path).errors[0].message
    root = write_synthetic_dataset(tmp_path / "d", num_cases=2, dims=2, shape=(16, 16))
    meta = json.loads((root / "dataset.json").read_text())
    del meta["file_ending"]
    meta["labels"] = {"background": 0, "organ": [1, 2]}
    (root / "dataset.json").write_text(json.dumps(meta))
    msg = check_dataset(root).errors[0].message
    assert "file_ending" in msg
    meta["file_ending"] = ".png"
    (root / "dataset.json").write_text(json.dumps(meta))
    assert "region-based" in check_dataset(root).errors[0].message


def test_mixed_dimensions_and_2d_mismatch(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "d", num_cases=2, dims=2, shape=(16, 20))
    lab = root / "labelsTr" / "case_001.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.uint8)), str(lab))
    report = check_dataset(root)
    assert _find(report, "case_001", "shape mismatch") == "error"


def test_cli_exit_codes(broken: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(["check-dataset", str(broken)])
    assert args.func(args) == 1
    out = capsys.readouterr()
    assert "ERROR   case_003: label geometry mismatch" in out.out and "8 error(s)" in out.err
    clean = write_synthetic_dataset(tmp_path / "clean", num_cases=2, shape=(16, 16, 8))
    args = parser.parse_args(["check-dataset", str(clean)])
    assert args.func(args) == 0
