"""Where a user puts a box or a corrective click, given the truth.

Used by tests/test_box_chain.py and benchmarks/corrections.py (docs/embedded_model.md,
"Corrections and stage 7h")."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["tight_box", "user_click"]


def tight_box(mask: np.ndarray) -> list[float]:
    """x0, y0, x1, y1 of a non-empty (H, W) mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def user_click(pred: np.ndarray, truth: np.ndarray) -> tuple[list[float], int] | None:
    """Where a user clicks to fix ``pred``: the most interior point of the largest connected error
    region (missed structure if it is at least as large as the spill, else the spill), with label
    1 (add) or 0 (remove); None when there is no error."""
    missed, spill = truth & ~pred, pred & ~truth
    error, label = (missed, 1) if missed.sum() >= spill.sum() else (spill, 0)
    regions, n = ndimage.label(error)
    if n == 0:
        return None
    sizes = ndimage.sum(error, regions, range(1, n + 1))
    largest = regions == 1 + int(np.argmax(sizes))
    depth = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return [float(x), float(y)], label
