"""Combine per-object logits into one label map (label value = object id) and keep statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["combine_objects", "LabelAccumulator", "ObjectStats"]


def combine_objects(logits: Tensor, obj_ids: tuple[int, ...]) -> np.ndarray:
    """(N, H, W) logits of N objects -> (H, W) label map.

    A pixel takes the id of the object with the highest logit among those above 0; where two
    objects overlap, the more confident one wins, so every pixel has at most one label.
    Returns uint8, or uint16 when an id exceeds 255.
    """
    if logits.ndim != 3 or logits.shape[0] != len(obj_ids):
        raise ValueError(f"expected ({len(obj_ids)}, H, W) logits, got {tuple(logits.shape)}")
    dtype = np.uint16 if max(obj_ids, default=0) > 255 else np.uint8
    if not obj_ids:
        return np.zeros(tuple(logits.shape[1:]), dtype)
    best = torch.argmax(logits, dim=0)
    inside = logits.max(dim=0).values > 0
    ids = torch.tensor(obj_ids, dtype=torch.int64)[best]
    return torch.where(inside, ids, 0).numpy().astype(dtype)


@dataclass
class ObjectStats:
    """Running statistics of one object over the frames it appears in."""

    obj_id: int
    pixels: int = 0
    frames: list[int] = field(default_factory=list)
    score_sum: float = 0.0
    iou_sum: float = 0.0

    def add(self, frame: int, pixels: int, score: float, iou: float) -> None:
        if pixels <= 0:
            return
        self.pixels += pixels
        self.frames.append(frame)
        self.score_sum += score
        self.iou_sum += iou

    @property
    def mean_object_score(self) -> float | None:
        return self.score_sum / len(self.frames) if self.frames else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / len(self.frames) if self.frames else None


class LabelAccumulator:
    """Collects label frames (T, H, W) from propagation outputs, one frame at a time.

    Holds only the combined uint8/uint16 labels, never every object's full-resolution logits.
    bounds: optional frame range (first, last) per object outside which it is removed (a 3D
    box prompt bounds its object along the slice axis).
    """

    def __init__(
        self,
        num_frames: int,
        frame_size: tuple[int, int],
        obj_ids: tuple[int, ...],
        bounds: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        self.bounds = dict(bounds or {})
        dtype = np.uint16 if max(obj_ids, default=0) > 255 else np.uint8
        self.labels = np.zeros((num_frames, *frame_size), dtype)
        self.obj_ids = obj_ids
        self.stats = {oid: ObjectStats(oid) for oid in obj_ids}

    def add(self, frame: int, logits: Tensor, obj_ids: tuple[int, ...], scores: Tensor, ious: Tensor) -> None:
        """Store one frame: logits (N, H, W) for `obj_ids`, scores/ious (N,)."""
        outside = [n for n, oid in enumerate(obj_ids) if not self._inside(oid, frame)]
        if outside:
            logits = logits.clone()
            logits[outside] = -1024.0
        label = combine_objects(logits, obj_ids)
        self.labels[frame] = label
        for n, oid in enumerate(obj_ids):
            self.stats[oid].add(frame, int((label == oid).sum()), float(scores[n]), float(ious[n]))

    def _inside(self, obj_id: int, frame: int) -> bool:
        first, last = self.bounds.get(obj_id, (0, self.labels.shape[0] - 1))
        return first <= frame <= last
