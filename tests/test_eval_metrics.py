"""Metrics: MONAI's Dice/NSD/HD95 in millimetres against analytic answers and an independent
computation; the empty-mask rules; simulated prompts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from medsam2.evaluation.metrics import mask_metrics
from medsam2.evaluation.prompting import choose_slice, corrective_click, make_prompt

SP = (0.8, 0.9, 2.0)


def _plate(z: int, shape: tuple[int, int, int] = (12, 12, 10)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[3:8, 2:9, z] = True
    return m


def test_perfect_prediction() -> None:
    m = np.zeros((12, 10, 8), bool)
    m[2:9, 3:7, 1:6] = True
    r = mask_metrics(m, m, SP)
    assert (r.dice, r.iou, r.nsd, r.hd95) == (1.0, 1.0, 1.0, 0.0)
    assert r.volume_true_ml == pytest.approx(7 * 4 * 5 * 0.8 * 0.9 * 2.0 / 1000)
    assert r.volume_error_ml == 0.0 and not r.excluded


def test_shifted_plate_has_the_analytic_hd95_and_nsd() -> None:
    truth, pred = _plate(2), _plate(5)  # 3 slices of 2 mm apart
    r = mask_metrics(pred, truth, SP, tolerance_mm=3.0)
    assert r.hd95 == pytest.approx(6.0, abs=1e-5)
    assert r.dice == 0.0 and r.iou == 0.0
    assert r.nsd == 0.0  # every surfel is >= 2 voxels (4 mm) from the other surface
    assert mask_metrics(pred, truth, SP, tolerance_mm=6.5).nsd == pytest.approx(1.0)


def test_empty_cases_are_explicit() -> None:
    empty = np.zeros((6, 6, 4), bool)
    some = empty.copy()
    some[2:4, 2:4, 1] = True
    both = mask_metrics(empty, empty, SP[:3])
    assert both.excluded and math.isnan(both.dice) and math.isnan(both.hd95)
    missed = mask_metrics(empty, some, SP)
    leaked = mask_metrics(some, empty, SP)
    for r in (missed, leaked):
        assert r.one_empty and not r.excluded
        assert (r.dice, r.nsd) == (0.0, 0.0) and math.isinf(r.hd95)
    assert missed.truth_empty is False and missed.pred_empty is True


def _surface(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    edge = mask & ~ndimage.binary_erosion(mask)
    return np.argwhere(edge) * np.asarray(spacing)


def _independent_hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    a, b = _surface(pred, spacing), _surface(truth, spacing)
    d = cdist(a, b)
    return max(float(np.percentile(d.min(axis=1), 95)), float(np.percentile(d.min(axis=0), 95)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monai_matches_an_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (16, 14, 9) if seed < 2 else (30, 26)
    spacing = SP if len(shape) == 3 else (0.5, 1.5)
    truth = ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5
    pred = ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5
    truth[tuple(s // 2 for s in shape)] = pred[tuple(s // 2 for s in shape)] = True
    r = mask_metrics(pred, truth, spacing)
    inter, total = (pred & truth).sum(), pred.sum() + truth.sum()
    assert r.dice == pytest.approx(2 * inter / total, abs=1e-6)
    assert r.iou == pytest.approx(inter / (pred | truth).sum(), abs=1e-6)
    assert r.hd95 == pytest.approx(_independent_hd95(pred, truth, spacing), rel=1e-4, abs=1e-4)
    assert 0.0 <= r.nsd <= 1.0


def test_slice_choice_rules() -> None:
    truth = np.zeros((6, 4, 4), bool)
    for t, n in enumerate([0, 3, 5, 5, 1, 0]):
        truth[t].flat[:n] = True
    assert choose_slice(truth, "largest") == 2
    assert choose_slice(truth, "median-z") == 2
    assert choose_slice(truth, "center") == 2
    truth[5].flat[:1] = True  # present 1..5: middle 3
    assert choose_slice(truth, "center") == 3


def test_prompts_box_point_mask() -> None:
    truth = np.zeros((3, 20, 30), bool)
    truth[1, 5:10, 8:20] = True
    box = make_prompt(truth, 1, "box").box
    assert box == (8.0, 5.0, 19.0, 9.0)
    for seed in range(5):
        x0, y0, x1, y1 = make_prompt(truth, 1, "box", 3.0, np.random.default_rng(seed)).box or ()
        assert 5.0 <= x0 <= 8.0 and 2.0 <= y0 <= 5.0 and 19.0 <= x1 <= 22.0 and 9.0 <= y1 <= 12.0
    x, y = make_prompt(truth, 1, "point").points[0]
    assert truth[1, int(y), int(x)] and (y, x) in [(7.0, c) for c in range(10, 18)]
    assert make_prompt(truth, 1, "mask").mask is not None


def test_corrective_click_goes_to_the_centre_of_the_largest_error() -> None:
    truth = np.zeros((9, 20, 20), bool)
    truth[1:8, 2:17, 2:17] = True
    pred = truth.copy()
    pred[2:7, 7:12, 7:12] = False  # a missed cube, centred at (4, 9, 9)
    pred[0, 0, 0] = True  # a small leak
    click = corrective_click(pred, truth, (1.0, 1.0, 1.0))
    assert click is not None and click.labels == (1,)
    assert click.frame == 4 and click.points[0] == (9.0, 9.0)
    leak = truth.copy()
    leak[4, 17:20, :] = True
    neg = corrective_click(leak, truth, (1.0, 1.0, 1.0))
    assert neg is not None and neg.labels == (0,) and neg.frame == 4
    assert corrective_click(truth, truth, (1.0, 1.0, 1.0)) is None
