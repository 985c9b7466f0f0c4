"""Choosing what a synthetic case asks the model to segment.

From the fine labels of a slab (D, S, S), on its middle slice: one label, a label with some of the
labels it touches, a named compound group of the source (e.g. the whole brain = CSF + GM + WM), or
the whole foreground. Compound objects made of several intensities are what real anatomy looks
like from a box (an organ with its vessels and lesions, a brain with its tissues), so they are
common. A second, disjoint label may join as another object (its own memory, as at inference).

With ``part`` > 0, that share of cases asks first for a *part*: one label whose box holds much
of other labels too (grey matter, whose box is the brain's). Its box alone cannot say which
structure is meant; the user's clicks say it, and training scores only the answers after them
(:mod:`medsam2.training.corrections`).

With ``whole`` > 0, that share of cases asks for a *whole*: a named group or the whole
foreground that fills at least ``WHOLE_FILL`` of its box (a brain in its box). Clicks must add
and remove pixels at such an object's edge, not take a click to mean a smaller structure.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "choose_targets",
    "boundary_contrast",
    "fill_of_box",
    "part_labels",
    "whole_labels",
    "TARGET",
    "OTHER",
]

TARGET, OTHER = 1, 2
MIN_AREA = 40  # pixels of the middle slice
# a part: the label fills at most PART_FILL of its box, and other labels at least PART_OTHERS
PART_FILL, PART_OTHERS = 0.6, 0.25
WHOLE_FILL = 0.6  # a whole: a group or the foreground filling at least this share of its box


def _areas(mid: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(mid, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True) if v != 0}


def _neighbours(mid: np.ndarray, value: int) -> list[int]:
    ring = ndimage.binary_dilation(mid == value, iterations=2) & (mid != value)
    return [int(v) for v in np.unique(mid[ring]) if v != 0]


def part_labels(mid: np.ndarray) -> list[int]:
    """Labels of ``mid`` (H, W) whose box does not say them: each fills at most ``PART_FILL`` of
    its own bounding box, where other (non-zero) labels fill at least ``PART_OTHERS``."""
    out = []
    for value, area in _areas(mid).items():
        if area < MIN_AREA:
            continue
        ys, xs = np.nonzero(mid == value)
        inside = mid[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        others = float(((inside != 0) & (inside != value)).mean())
        if area / inside.size <= PART_FILL and others >= PART_OTHERS:
            out.append(value)
    return out


def fill_of_box(mask: np.ndarray) -> float:
    """The share of its bounding box that a non-empty ``mask`` (H, W) bool fills."""
    ys, xs = np.nonzero(mask)
    return float(mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))


def whole_labels(mid: np.ndarray, groups: dict[str, tuple[int, ...]]) -> list[tuple[str, set[int]]]:
    """Compound objects of ``mid`` (H, W) that nearly fill their box: each named group present and
    the whole foreground, as ("group" | "foreground", labels), those of at least ``MIN_AREA``
    pixels, at most 0.7 of the slice, filling at least ``WHOLE_FILL`` of their bounding box."""
    areas = _areas(mid)
    options = [("group", set(g) & set(areas)) for g in groups.values()] + [("foreground", set(areas))]
    out = []
    for kind, labels in options:
        mask = np.isin(mid, list(labels))
        if MIN_AREA <= mask.sum() <= 0.7 * mid.size and fill_of_box(mask) >= WHOLE_FILL:
            out.append((kind, labels))
    return out


def _candidate(
    mid: np.ndarray, groups: dict[str, tuple[int, ...]], rng: np.random.Generator
) -> tuple[str, set[int]]:
    areas = _areas(mid)
    kind = rng.choice(["single", "adjacent", "group", "foreground"], p=[0.35, 0.25, 0.2, 0.2])
    present = [g for g in groups.values() if any(v in areas for v in g)]
    if kind == "group" and present:
        return "group", set(present[int(rng.integers(len(present)))])
    if kind == "foreground":
        return "foreground", set(areas)
    value = int(rng.choice(list(areas)))
    chosen = {value}
    if kind == "adjacent":
        near = _neighbours(mid, value)
        rng.shuffle(near)
        chosen.update(near[: int(rng.integers(1, 4))])
    return "single" if len(chosen) == 1 else "adjacent", chosen


def boundary_contrast(image: np.ndarray, mask: np.ndarray, width: int = 2) -> float:
    """How visible ``mask``'s edge is in ``image`` (both (H, W)): the difference of the mean
    intensities of the ``width``-pixel bands just inside and just outside the edge, over their
    pooled standard deviation (Cohen's d). Supervoxels cut through uniform tissue, or labels
    painted alike, score near 0: no image could tell where such a target ends."""
    mask = np.asarray(mask, bool)
    inner = mask & ~ndimage.binary_erosion(mask, iterations=width)
    outer = ndimage.binary_dilation(mask, iterations=width) & ~mask
    if inner.sum() < 3 or outer.sum() < 3:
        return 0.0
    a, b = image[inner].astype(np.float64), image[outer].astype(np.float64)
    return float(abs(a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2 + 1e-4))


def choose_targets(
    fine: np.ndarray,
    groups: dict[str, tuple[int, ...]],
    rng: np.random.Generator,
    tries: int = 8,
    part: float = 0.0,
    whole: float = 0.0,
) -> tuple[np.ndarray, dict[str, object]] | None:
    """(D, S, S) int64 object labels (TARGET, maybe OTHER, 0) and a description; None if nothing
    fits. With probability ``part`` a part (:func:`part_labels`) is the target when the middle
    slice has one (description ``"target": "part"``); else, with probability ``whole``, a whole
    (:func:`whole_labels`) when it has one (``"group"`` or ``"foreground"``, as other such targets)."""
    mid = fine[fine.shape[0] // 2]
    size = mid.size
    if not _areas(mid):
        return None
    parts = part_labels(mid) if part > 0 and rng.random() < part else []
    wholes = whole_labels(mid, groups) if not parts and whole > 0 and rng.random() < whole else []
    if parts:
        kind, chosen = "part", {int(rng.choice(parts))}
    elif wholes:
        kind, chosen = wholes[int(rng.integers(len(wholes)))]
    else:
        for _ in range(tries):
            kind, chosen = _candidate(mid, groups, rng)
            area = int(np.isin(mid, list(chosen)).sum())
            if MIN_AREA <= area <= 0.7 * size:
                break
        else:
            return None
    out = np.where(np.isin(fine, list(chosen)), TARGET, 0).astype(np.int64)
    others = [v for v, a in _areas(mid).items() if v not in chosen and a >= MIN_AREA]
    if others and rng.random() < 0.4:
        out[(fine == int(rng.choice(others))) & (out == 0)] = OTHER
    return out, {"target": kind, "labels": sorted(chosen)[:8]}
