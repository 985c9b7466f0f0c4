"""The trivial baselines (medsam2.evaluation.baselines) on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medsam2.evaluation.baselines import (
    baselines_3d,
    box_fill,
    extrude,
    largest_component,
    otsu_in_box,
    otsu_threshold,
    prompt_copy,
    prompt_copy_dice,
    true_range,
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_box_fill_is_inclusive_rounded_and_clipped() -> None:
    m = box_fill((6, 8), (1.4, 2, 3.6, 4))  # columns 1..4, rows 2..4
    assert m.sum() == 4 * 3 and m[2:5, 1:5].all()
    assert box_fill((4, 4), (-3, -3, 10, 1)).sum() == 4 * 2
    with pytest.raises(ValueError):
        box_fill((4, 4), (3, 0, 1, 2))


def test_box_fill_dice_of_a_square_in_its_box_is_one_and_of_a_disc_is_known() -> None:
    sq = np.zeros((20, 20), bool)
    sq[5:11, 3:15] = True
    assert dice(box_fill(sq.shape, (3, 5, 14, 10)), sq) == 1.0
    d = disc((101, 101), 50, 50, 40)
    ratio = d.sum() / 81**2  # ~ pi/4
    assert dice(box_fill(d.shape, (10, 10, 90, 90)), d) == pytest.approx(2 * ratio / (1 + ratio))


def test_otsu_threshold_matches_skimage() -> None:
    filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(0)
    for values in (
        np.concatenate([rng.normal(10, 2, 500), rng.normal(40, 5, 300)]),
        rng.integers(0, 255, 1000).astype(np.uint8),
        np.array([0.0, 0.0, 1.0, 1.0, 1.0]),
    ):
        # the same split of the values (skimage bins integers one per value, we use 256 bins)
        assert np.array_equal(values > otsu_threshold(values), values > filters.threshold_otsu(values))
    assert otsu_threshold(np.full(5, 3.0)) == 3.0


def test_otsu_in_box_finds_a_bright_disc_on_a_dark_background() -> None:
    d = disc((64, 64), 30, 30, 12)
    img = np.where(d, 200.0, 20.0) + np.random.default_rng(1).normal(0, 3, d.shape)
    box = (14, 14, 46, 46)  # a margin of 4 pixels around the disc
    assert dice(otsu_in_box(img, box), d) == 1.0


def test_otsu_polarity_picks_the_class_touching_the_border_less() -> None:
    d = disc((64, 64), 30, 30, 12)
    img = np.where(d, 20.0, 200.0)  # a dark object on a bright background
    assert dice(otsu_in_box(img, (14, 14, 46, 46)), d) == 1.0
    rgb = np.repeat(img[..., None], 3, axis=2)
    assert dice(otsu_in_box(rgb, (14, 14, 46, 46)), d) == 1.0


def test_otsu_polarity_holds_for_an_object_that_covers_most_of_the_box_border() -> None:
    octagon = np.zeros((40, 40), bool)
    octagon[5:35, 5:35] = True
    yy, xx = np.mgrid[:40, :40]
    for cy, cx in ((5, 5), (5, 34), (34, 5), (34, 34)):
        octagon &= np.abs(yy - cy) + np.abs(xx - cx) >= 5  # cut corners: 2/3 of the box border is object
    img = np.where(octagon, 180.0, 30.0)
    assert dice(otsu_in_box(img, (5, 5, 34, 34)), octagon) == 1.0


def test_otsu_in_box_keeps_the_largest_component_and_stays_in_the_box() -> None:
    big, small = disc((64, 64), 30, 24, 10), disc((64, 64), 30, 44, 4)
    img = np.where(big | small, 100.0, 0.0)
    img[0:5, 0:5] = 100.0  # bright outside the box: never part of the answer
    got = otsu_in_box(img, (10, 16, 52, 44))
    assert dice(got, big) == 1.0 and not got[0:5, 0:5].any()


def test_otsu_in_a_constant_box_is_empty() -> None:
    assert not otsu_in_box(np.ones((10, 10)), (2, 2, 7, 7)).any()


def test_largest_component_uses_8_connectivity() -> None:
    m = np.zeros((6, 6), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal: one component of 3
    m[4:6, 4:6] = False
    m[5, 0] = m[5, 1] = True  # two pixels
    assert largest_component(m).sum() == 3
    assert not largest_component(np.zeros((3, 3), bool)).any()


def test_true_range_and_extrude() -> None:
    t = np.zeros((7, 4, 4), bool)
    t[2, 1, 1] = t[5, 2, 2] = True
    assert true_range(t) == (2, 5)
    assert true_range(np.zeros((3, 2, 2), bool)) is None
    e = extrude(np.ones((4, 4), bool), 7, (2, 5))
    assert e.sum(axis=(1, 2)).tolist() == [0, 0, 16, 16, 16, 16, 0]
    assert not extrude(np.ones((4, 4), bool), 3, None).any()


def test_baselines_3d_known_dice_on_a_cylinder_and_a_cone() -> None:
    shape = (9, 40, 40)
    cyl = np.zeros(shape, bool)
    cyl[2:7] = disc(shape[1:], 20, 20, 8)
    img = np.where(cyl, 150.0, 10.0)
    out = baselines_3d(img, cyl, 4, (12, 12, 28, 28))
    assert dice(out["copy-mask"], cyl) == 1.0  # a cylinder is its own extrusion
    assert dice(out["otsu-in-box"], cyl) == 1.0
    ratio = cyl[4].sum() / 17**2
    assert dice(out["box-fill"], cyl) == pytest.approx(2 * ratio / (1 + ratio))
    assert not any(m[[0, 1, 7, 8]].any() for m in out.values())  # nothing outside the true range
    cone = np.zeros(shape, bool)
    for k in range(2, 7):
        cone[k] = disc(shape[1:], 20, 20, 2 * k)  # radius 4..12; prompted on k = 4 (radius 8)
    copy = baselines_3d(np.where(cone, 1.0, 0.0), cone, 4, (12, 12, 28, 28))["copy-mask"]
    inter = sum(min(cone[k].sum(), cone[4].sum()) for k in range(2, 7))
    assert dice(copy, cone) == pytest.approx(2 * inter / (cone.sum() + 5 * cone[4].sum()))


def test_prompt_copy_dice_is_the_mean_over_prompted_masks() -> None:
    target = np.zeros((4, 4), bool)
    target[:2, :2] = True  # 4 pixels
    same, half, none = target.copy(), np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    half[:2, :1] = True  # 2 pixels inside the target: Dice 2*2/6
    assert prompt_copy_dice([same], target) == 1.0
    assert prompt_copy_dice([same, half, none], target) == pytest.approx((1.0 + 4 / 6 + 0.0) / 3)
    assert prompt_copy_dice([none], np.zeros((4, 4), bool)) == 1.0
    with pytest.raises(ValueError):
        prompt_copy_dice([], target)


def test_prompt_copy_votes() -> None:
    a, b, c = (np.zeros((2, 2), bool) for _ in range(3))
    a[0, 0] = b[0, 0] = c[1, 1] = True
    assert np.array_equal(prompt_copy([c]), c)
    assert prompt_copy([a, b, c]).tolist() == [[True, False], [False, False]]
    assert prompt_copy([a, c]).sum() == 2  # half of two: their union
    with pytest.raises(ValueError):
        prompt_copy([])
