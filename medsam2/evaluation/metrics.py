"""Segmentation metrics in physical space, computed with MONAI (DESIGN.md section 10).

Per object (one binary prediction against one binary truth, both in a case's own grid):

* Dice and IoU (``monai.metrics.compute_dice``; IoU = Dice / (2 - Dice));
* NSD, the normalised surface Dice at a tolerance in millimetres
  (``compute_surface_dice(..., use_subvoxels=True, spacing=...)``, DeepMind's surfel definition);
* HD95, the 95th percentile symmetric Hausdorff distance in millimetres
  (``compute_hausdorff_distance(percentile=95, spacing=...)``);
* volumes in mL from the voxel volume.

Empty masks are explicit, never silently averaged:

* both empty -> ``excluded`` (no score; counted as ``n_empty`` in summaries);
* exactly one empty -> Dice = IoU = NSD = 0 and HD95 = inf (kept; counted as ``n_inf``; means of
  HD95 are over the finite values).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MaskMetrics", "mask_metrics", "slice_dice", "dice_np", "DEFAULT_TOLERANCE_MM"]

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_MM = 2.0


@dataclass(frozen=True)
class MaskMetrics:
    """Scores of one predicted object against its truth (NaN where ``excluded``)."""

    dice: float
    iou: float
    nsd: float
    hd95: float
    volume_true_ml: float
    volume_pred_ml: float
    truth_empty: bool
    pred_empty: bool

    @property
    def excluded(self) -> bool:
        """Both empty: nothing to score."""
        return self.truth_empty and self.pred_empty

    @property
    def one_empty(self) -> bool:
        """Exactly one of prediction and truth is empty (Dice 0, HD95 inf)."""
        return self.truth_empty != self.pred_empty

    @property
    def volume_error_ml(self) -> float:
        """Predicted minus true volume."""
        return self.volume_pred_ml - self.volume_true_ml


def _onehot(mask: np.ndarray) -> torch.Tensor:
    """(spatial...) bool -> (1, 2, spatial...) float: background, foreground."""
    fg = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
    return torch.stack([1.0 - fg, fg])[None]


def dice_np(pred: np.ndarray, truth: np.ndarray) -> float:
    """Plain Dice of two boolean arrays; NaN when both are empty (per-slice curves skip those)."""
    total = int(pred.sum()) + int(truth.sum())
    return math.nan if total == 0 else 2.0 * int(np.logical_and(pred, truth).sum()) / total


def _monai_scores(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], tolerance_mm: float
) -> tuple[float, float, float]:
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    p, t = _onehot(pred), _onehot(truth)
    sp = [float(s) for s in spacing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty classes; we handle them before
        dice = float(compute_dice(p, t, include_background=False)[0, 0])
        nsd = float(
            compute_surface_dice(
                p, t, [float(tolerance_mm)], include_background=False, spacing=sp, use_subvoxels=True
            )[0, 0]
        )
        hd95 = float(
            compute_hausdorff_distance(p, t, include_background=False, percentile=95, spacing=sp)[0, 0]
        )
    return dice, nsd, hd95


def mask_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> MaskMetrics:
    """Score ``pred`` against ``truth`` (same shape, 2D or 3D, bool) with ``spacing`` in mm per axis."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from the truth's {truth.shape}")
    if len(spacing) != pred.ndim or pred.ndim not in (2, 3):
        raise ValueError(f"spacing {tuple(spacing)} does not fit a {pred.ndim}D mask (2D or 3D expected)")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    vt, vp = int(truth.sum()) * voxel_ml, int(pred.sum()) * voxel_ml
    t_empty, p_empty = not truth.any(), not pred.any()
    if t_empty and p_empty:
        return MaskMetrics(math.nan, math.nan, math.nan, math.nan, vt, vp, True, True)
    if t_empty or p_empty:
        return MaskMetrics(0.0, 0.0, 0.0, math.inf, vt, vp, t_empty, p_empty)
    dice, nsd, hd95 = _monai_scores(pred, truth, spacing, tolerance_mm)
    iou = dice / (2.0 - dice) if dice < 2.0 else 1.0
    return MaskMetrics(dice, iou, nsd, hd95, vt, vp, False, False)


def slice_dice(pred: np.ndarray, truth: np.ndarray) -> list[float]:
    """Dice of every frame of (T, H, W) masks; NaN where both are empty."""
    return [dice_np(pred[t], truth[t]) for t in range(truth.shape[0])]
