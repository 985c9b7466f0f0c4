"""The copy test: can a memory path carry a mask onto identical slices?

Used by tests/test_embedded_models.py and benchmarks/memory_copy.py (docs/embedded_model.md,
"Why propagation fails").
"""

from __future__ import annotations

import numpy as np

from medsam2.evaluation.metrics import dice_np
from medsam2.model.sam2_model import Sam2Model
from medsam2.preprocessing import slice_geometry, volume_to_frames
from medsam2.types import Volume
from medsam2.volume import VolumeObject, VoxelBox, segment_volume


def copy_scores(
    model: Sam2Model, volume: Volume, truth: np.ndarray, copies: int
) -> tuple[float, list[float]]:
    """(Dice of the boxed copy, Dice of each other copy) for structure ``truth`` (bool, the
    volume's shape): its largest slice along the volume's slicing axis, repeated ``copies``
    times, boxed (tight box) on the middle copy and propagated both ways by `segment_volume`."""
    axis = slice_geometry(volume, "auto").slice_axis
    assert axis is not None
    others = tuple(a for a in range(3) if a != axis)
    k = int(truth.sum(axis=others).argmax())
    array = np.repeat(np.take(volume.array, [k], axis=axis), copies, axis=axis)
    stacked = np.repeat(np.take(truth, [k], axis=axis), copies, axis=axis)
    mid = copies // 2
    lo, hi = [mid] * 3, [mid] * 3
    for a, idx in zip(others, np.nonzero(np.take(truth, k, axis=axis)), strict=True):
        lo[a], hi[a] = int(idx.min()), int(idx.max())
    vol = Volume(**{**volume.__dict__, "array": array})
    obj = VolumeObject(1, "copy", boxes=(VoxelBox(tuple(lo), tuple(hi)),))
    res = segment_volume(model, vol, [obj], tracker="memory")  # the memory path, whatever the model's default
    geom = slice_geometry(vol, "auto")
    pred, want = volume_to_frames(res.labels == 1, geom), volume_to_frames(stacked, geom)
    return dice_np(pred[mid], want[mid]), [dice_np(pred[t], want[t]) for t in range(copies) if t != mid]
