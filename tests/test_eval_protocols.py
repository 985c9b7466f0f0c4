"""Every protocol on small hand-made datasets with stub predictors whose answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_helpers import SPACING, StubSegmenter, blob_dataset, write_dataset

from medsam2.evaluation import EvalConfig, ModelSegmenter, evaluate_dataset
from medsam2.evaluation.protocols import auc, noc
from medsam2.evaluation.summary import bootstrap_ci, distance_bins
from medsam2.evaluation.tables import SliceRow
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return blob_dataset(tmp_path_factory.mktemp("eval") / "ds")


def _rows(out, model=None, value=None):  # noqa: ANN001, ANN202
    return [
        r
        for r in out.results.cases
        if (model is None or r.model == model) and (value in (None, r.class_value))
    ]


@pytest.mark.parametrize("protocol", ["single-slice", "every-k", "iterative"])
def test_oracle_scores_perfectly(data: Path, tmp_path: Path, protocol: str) -> None:
    cfg = EvalConfig(protocol=protocol, every_k=3, clicks=2, noc_cap=4)
    out = evaluate_dataset(data, tmp_path, [StubSegmenter("oracle")], cfg)
    rows = _rows(out)
    assert len(rows) == 4 and not out.failed  # 2 cases x 2 classes
    for r in rows:
        assert (r.dice, r.nsd, r.hd95, r.iou) == (1.0, 1.0, 0.0, 1.0)
        assert r.volume_error_ml == 0.0 and r.over_propagation_voxels == 0 and r.comparable
    for name in ("per_case.csv", "per_slice.csv", "interactive.csv", "summary.json", "report.md"):
        assert (tmp_path / name).is_file()
    if protocol == "iterative":
        assert all((r.dice_auc, r.nsd_auc, r.noc85, r.noc90) == (1.0, 1.0, 0.0, 0.0) for r in rows)
        assert {s.step for s in out.results.steps} == {0, 1, 2}
    if protocol == "every-k":
        blob = _rows(out, value=1)[0]
        assert blob.prompted_slices == "3;6;9"  # slices 3..9 contain the blob


def test_single_slice_prompt_is_on_the_largest_slice(data: Path, tmp_path: Path) -> None:
    out = evaluate_dataset(data, tmp_path, [StubSegmenter("prompted")], EvalConfig())
    for r in _rows(out, value=1):
        assert r.prompted_slices == "5" and r.prompted_dice == 1.0 and r.propagated_dice == 0.0
    slices = [s for s in out.results.slices if s.class_value == 1 and s.case == "c0"]
    assert {s.distance for s in slices} == {-2, -1, 0, 1, 2, 3, 4}
    assert all(s.dice == (1.0 if s.distance == 0 else 0.0) for s in slices)


def test_shifted_prediction_has_the_analytic_hd95(data: Path, tmp_path: Path) -> None:
    out = evaluate_dataset(data, tmp_path, [StubSegmenter("shift", 3)], EvalConfig(classes=(2,)))
    for r in _rows(out):
        assert r.hd95 == pytest.approx(3 * SPACING[2], abs=1e-5) and r.dice == 0.0
        assert r.over_propagation_voxels == 25 and r.over_propagation_ml == pytest.approx(
            25 * np.prod(SPACING) / 1000
        )


def test_iterative_clicks_improve_and_noc_is_consistent(data: Path, tmp_path: Path) -> None:
    cfg = EvalConfig(protocol="iterative", clicks=3, noc_cap=8, classes=(1,))
    out = evaluate_dataset(data, tmp_path, [StubSegmenter("prompted")], cfg)
    for r in _rows(out):
        steps = [s for s in out.results.steps if s.case == r.case]
        dices = [s.dice for s in steps]
        assert dices == sorted(dices) and dices[0] < 0.5 and len(steps) >= 4
        assert all(s.click_label == 1 for s in steps[1:] if s.click_slice is not None)
        assert r.dice == pytest.approx(dices[3]) and r.dice_auc == pytest.approx(auc(dices[:4]))
        assert r.noc85 == noc(dices, 0.85, 8) and r.noc90 == noc(dices, 0.90, 8)
    assert noc([0.1, 0.86, 0.95], 0.85, 20) == 1 and noc([0.1], 0.9, 20) == 20
    assert auc([0.0, 1.0, 1.0]) == pytest.approx(0.75)


def test_legacy_protocol_crops_the_first_quarter_forward(data: Path, tmp_path: Path) -> None:
    stub = StubSegmenter("oracle")
    out = evaluate_dataset(data, tmp_path, [stub], EvalConfig(protocol="legacy-medsam2", prompt="point"))
    for r in _rows(out):
        assert not r.comparable and r.slice_avg_dice == 1.0
    assert stub.opened == [1, 1, 1, 1]  # labels span slices 3..9: a quarter of 7 slices is 1 slice
    assert "NOT COMPARABLE" in (tmp_path / "report.md").read_text()
    assert _rows(out, value=1)[0].dice < 1.0  # the rest of the volume is never predicted


def test_all_axes_and_their_fusion(data: Path, tmp_path: Path) -> None:
    out = evaluate_dataset(
        data, tmp_path, [StubSegmenter("oracle")], EvalConfig(axes=("axial", "coronal", "sagittal"))
    )
    assert {r.axis for r in _rows(out)} == {"axial", "coronal", "sagittal", "fusion"}
    assert all(r.dice == 1.0 for r in _rows(out))

    class TwoOfThree(StubSegmenter):
        def predict(self, truth, prompts):  # noqa: ANN001, ANN202
            return super().predict(truth, prompts) if len(self.opened) % 3 != 0 else [0 * t for t in truth]

    out2 = evaluate_dataset(
        data, tmp_path / "b", [TwoOfThree("oracle")], EvalConfig(axes=("axial", "coronal", "sagittal"))
    )
    fused = [r for r in _rows(out2) if r.axis == "fusion"]
    assert fused and all(r.dice == 1.0 for r in fused)  # mean of 1, 1, 0 > 0.5


def test_one_prompt_2d_stream(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cases = {}
    for i in range(5):
        label = np.zeros((24, 20), np.uint8)
        label[3 + i : 12 + i, 4:14] = 1
        cases[f"img{i}"] = ((label * 100 + rng.normal(0, 3, label.shape)).astype(np.float32), label)
    ds = write_dataset(tmp_path / "ds2", cases, spacing=(0.5, 0.7))
    cfg = EvalConfig(protocol="one-prompt-2d", stream_every=2, classes=(1,), save_predictions=True)
    out = evaluate_dataset(ds, tmp_path / "o", [StubSegmenter("oracle")], cfg)
    rows = _rows(out)
    assert [r.prompted_image for r in rows] == [True, False, True, False, True]
    assert all(r.dice == 1.0 and r.hd95 == 0.0 for r in rows)
    assert out.summary["per_class"][0]["n_valid"] == 2  # prompted images are left out
    saved = sorted(p.name for p in (tmp_path / "o" / "predictions" / "oracle" / "image").iterdir())
    assert saved == [f"img{i}__class1.nii.gz" for i in range(5)]


def test_paired_ablation_and_distance_bins(data: Path, tmp_path: Path) -> None:
    segs = [StubSegmenter("oracle"), StubSegmenter("shift", 1)]
    out = evaluate_dataset(data, tmp_path, segs, EvalConfig(classes=(1,)))
    by = {(r.model, r.case): r for r in _rows(out)}
    diffs = [by[("shift1", c)].dice - by[("oracle", c)].dice for c in ("c0", "c1")]
    pair = out.summary["paired_differences"][0]
    assert pair["model"] == "shift1" and pair["n"] == 2
    assert pair["dice"]["mean"] == pytest.approx(np.mean(diffs))
    lo, hi = pair["dice"]["ci95"]
    assert lo <= np.mean(diffs) <= hi and (lo, hi) == bootstrap_ci(diffs, 0)
    rows = [
        SliceRow("c", 1, "m", "axial", t, d, d == 0, v, 1, 1)
        for t, (d, v) in enumerate([(0, 1.0), (-3, 0.5), (3, 0.7), (25, 0.1)])
    ]
    bins = {(b["direction"], b["bin"]): b["dice"] for b in distance_bins(rows)}
    assert bins == {
        ("prompt", "0"): 1.0,
        ("backward", "1-5"): 0.5,
        ("forward", "1-5"): 0.7,
        ("forward", ">20"): 0.1,
    }


def test_resume_skips_done_cases(data: Path, tmp_path: Path) -> None:
    stub = StubSegmenter("oracle")
    evaluate_dataset(data, tmp_path, [stub], EvalConfig())
    first = (tmp_path / "per_case.csv").read_text()
    runs = stub.runs
    evaluate_dataset(data, tmp_path, [stub], EvalConfig())
    assert stub.runs == runs and (tmp_path / "per_case.csv").read_text() == first
    evaluate_dataset(data, tmp_path, [stub], EvalConfig(slice_rule="center"))  # changed -> redone
    assert stub.runs > runs


def test_memory_policies_get_identical_prompts(data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny")).eval()
    segs = [
        ModelSegmenter(model, "fifo", 7),
        ModelSegmenter(model, "self-sorting", 4),
        StubSegmenter("oracle"),
    ]
    out = evaluate_dataset(
        data, tmp_path, segs, EvalConfig(box_jitter=2.0, cases=("c0",), save_predictions=True)
    )
    rows = _rows(out)
    assert {r.model for r in rows} == {"fifo/7", "self-sorting/4", "oracle"}
    for value in (1, 2):
        assert len({r.prompted_slices for r in rows if r.class_value == value}) == 1
    assert all(0.0 <= r.dice <= 1.0 and not math.isnan(r.dice) for r in rows)
    saved = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "predictions").rglob("*.nii.gz"))
    assert saved == ["predictions/fifo_7/axial/c0.nii.gz", "predictions/oracle/axial/c0.nii.gz",
                     "predictions/self-sorting_4/axial/c0.nii.gz"]  # fmt: skip


def test_trackers_are_compared_as_models(data: Path, tmp_path: Path) -> None:
    """A tracker other than the memory shows in the label; None means the model's own (its
    config's), and a One-Prompt stream (unordered images) always reads the memory."""
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny")).eval()
    segs = [
        ModelSegmenter(model, "self-sorting", 4),
        ModelSegmenter(model, "self-sorting", 4, tracker="box-chain"),
    ]
    assert [s.label for s in segs] == ["self-sorting/4", "self-sorting/4+box-chain"]
    chaining = Sam2Model(get_preset("tiny").replace(tracker="box-chain")).eval()
    assert ModelSegmenter(chaining, "fifo").label == "fifo+box-chain"
    assert ModelSegmenter(chaining, "fifo", tracker="memory").label == "fifo"
    assert (
        ModelSegmenter(chaining, "self-sorting", unordered=True, tracker="box-chain").tracker_used == "memory"
    )
    out = evaluate_dataset(data, tmp_path, segs, EvalConfig(cases=("c0",)))
    assert {r.model for r in _rows(out)} == {"self-sorting/4", "self-sorting/4+box-chain"}


def test_baselines_as_models(data: Path, tmp_path: Path) -> None:
    from medsam2.evaluation import BASELINES, BaselineSegmenter

    out = evaluate_dataset(
        data, tmp_path, [BaselineSegmenter(k) for k in BASELINES], EvalConfig(classes=(2,))
    )
    rows = {(r.model, r.case): r for r in _rows(out)}
    for case in ("c0", "c1"):  # the plate is one rectangular slice: box and copy are exact
        assert rows[("box-fill", case)].dice == 1.0 and rows[("copy-mask", case)].dice == 1.0
        assert 0.0 <= rows[("otsu-in-box", case)].dice <= 1.0
    blob = evaluate_dataset(data, tmp_path / "b", [BaselineSegmenter("copy-mask")], EvalConfig(classes=(1,)))
    for r in _rows(blob):  # slices 5-6 are larger than the others: the copy over-covers them
        assert 0.5 < r.dice < 1.0 and r.over_propagation_voxels == 0 and r.prompted_dice == 1.0


def test_cli_errors_are_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medsam2.cli.main import main

    base = ["evaluate", "--data", str(data), "--out", str(tmp_path), "--no-model"]
    for extra, words in (
        (["--protocol", "nope"], "--protocol nope: choose one of"),
        (["--protocol", "one-prompt-2d"], "holds 3D cases"),
        (["--axis", "oblique"], "--axis oblique"),
        (["--classes", "7"], "--classes [7]"),
        (["--tracker", "memory,boxes"], "--tracker boxes: choose auto, memory or box-chain"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err
    assert main([*base, "--baselines"]) == 0
    assert "box-fill" in (tmp_path / "per_case.csv").read_text()
