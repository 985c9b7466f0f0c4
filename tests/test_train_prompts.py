"""Prompt simulation: clicks fall inside/outside the object, boxes contain it within the jitter."""

from __future__ import annotations

import numpy as np
import pytest

from medsam2.data.prompts import PromptSampler, sample_box, sample_clicks, tight_box
from medsam2.errors import ConfigError
from medsam2.training.synthetic import ellipsoid


def _masks(n: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        radii = rng.uniform(2, np.array(shape) / 4)
        center = rng.uniform(radii, np.array(shape) - radii)
        out.append(ellipsoid(shape, center, radii))
    return [m for m in out if m.any()]


def _at(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """mask value at each (x, y) point."""
    xy = points.astype(int)
    return mask[xy[:, 1], xy[:, 0]]


def test_clicks_positive_inside_negative_outside() -> None:
    rng = np.random.default_rng(1)
    for mask in _masks():
        points, labels = sample_clicks(mask, 3, 2, rng)
        assert points.dtype == np.float32 and labels.dtype == np.int32
        assert list(labels) == [1] * min(3, int(mask.sum())) + [0] * 2
        assert _at(mask, points[labels == 1]).all()
        assert not _at(mask, points[labels == 0]).any()
        # negatives are near the object (inside its box grown by half its size)
        x0, y0, x1, y1 = tight_box(mask)
        neg = points[labels == 0]
        assert (neg[:, 0] >= x0 - (x1 - x0) // 2 - 1).all() and (neg[:, 0] <= x1 + (x1 - x0) // 2 + 1).all()


def test_clicks_are_distinct_and_deterministic() -> None:
    mask = _masks(1)[0]
    a = sample_clicks(mask, 5, 3, np.random.default_rng(7))
    b = sample_clicks(mask, 5, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    assert len({tuple(p) for p in a[0]}) == len(a[0])


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.3])
def test_boxes_contain_the_object_within_the_jitter(jitter: float) -> None:
    rng = np.random.default_rng(2)
    grown = []
    for mask in _masks():
        h, w = mask.shape
        tight = tight_box(mask)
        box = sample_box(mask, jitter, rng)
        bw, bh = tight[2] - tight[0] + 1, tight[3] - tight[1] + 1
        assert box[0] <= tight[0] and box[1] <= tight[1] and box[2] >= tight[2] and box[3] >= tight[3]
        limit = np.array(
            [tight[0] - jitter * bw, tight[1] - jitter * bh, tight[2] + jitter * bw, tight[3] + jitter * bh]
        )
        assert box[0] >= max(0, limit[0]) - 1e-4 and box[1] >= max(0, limit[1]) - 1e-4
        assert box[2] <= min(w - 1, limit[2]) + 1e-4 and box[3] <= min(h - 1, limit[3]) + 1e-4
        grown.append(float((box[2] - box[0]) - (tight[2] - tight[0])))
    if jitter == 0.0:
        assert max(grown) == 0.0
    else:
        assert np.mean(grown) > 0.0  # the jitter is used, not just allowed


def test_sampler_kinds_and_empty_mask() -> None:
    mask = _masks(1)[0]
    rng = np.random.default_rng(3)
    kinds = {"click": 0, "box": 0, "mask": 0}
    sampler = PromptSampler(click=1, box=1, mask=1, max_clicks=2, max_negative_clicks=1)
    for _ in range(300):
        p = sampler(mask, rng)
        if p.mask is not None:
            kinds["mask"] += 1
            np.testing.assert_array_equal(p.mask, mask)
        elif p.box is not None:
            kinds["box"] += 1
            assert len(p.points) == 0
        else:
            kinds["click"] += 1
            assert 1 <= int((p.labels == 1).sum()) <= 2 and int((p.labels == 0).sum()) <= 1
    assert all(60 < n < 140 for n in kinds.values()), kinds
    absent = sampler(np.zeros_like(mask), rng)
    assert absent.mask is not None and not absent.mask.any() and absent.mask.shape == mask.shape
    only_boxes = PromptSampler(click=0, box=1)
    assert all(only_boxes(mask, rng).box is not None for _ in range(20))


def test_sampler_rejects_bad_options() -> None:
    with pytest.raises(ConfigError):
        PromptSampler(click=0, box=0, mask=0)
    with pytest.raises(ConfigError):
        PromptSampler(box_jitter=2.0)
    with pytest.raises(ConfigError):
        PromptSampler(max_clicks=0)
