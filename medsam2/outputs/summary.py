"""``summary.json``: per object, where it is present, its pixel counts and mean scores."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.io.atomic import atomic_output

__all__ = ["SegmentationSummary"]


@dataclass
class _ObjectStats:
    name: str | None
    prompted: list[int]
    pixels: dict[int, int] = field(default_factory=dict)
    ious: dict[int, float] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)


class SegmentationSummary:
    """Accumulates per-frame label maps and scores; ``to_dict`` gives the JSON document.

    An object is *present* on a frame when it owns at least one pixel of that frame's label
    map. ``mean_iou`` is the mean predicted IoU over the frames where it is present (null when
    never present); ``mean_object_score`` the mean object-score logit over all frames (> 0:
    the model considers the object present).
    """

    def __init__(
        self,
        frame_names: Sequence[str],
        objects: Mapping[int, str | None],
        prompted: Mapping[int, Sequence[int]],
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.frame_names = list(frame_names)
        self.meta = dict(meta or {})
        self._objects = {
            oid: _ObjectStats(name, sorted(prompted.get(oid, ()))) for oid, name in sorted(objects.items())
        }

    def add(
        self,
        frame_idx: int,
        labels: np.ndarray,
        obj_ids: Sequence[int],
        object_scores: Sequence[float],
        ious: Sequence[float],
    ) -> None:
        """Record one frame's label map and each object's scores."""
        counts = np.bincount(labels.ravel().astype(np.int64), minlength=max(obj_ids, default=0) + 1)
        for oid, score, iou in zip(obj_ids, object_scores, ious, strict=True):
            stats = self._objects.get(int(oid))
            if stats is None:
                continue
            stats.pixels[frame_idx] = int(counts[oid])
            stats.scores[frame_idx] = float(score)
            stats.ious[frame_idx] = float(iou)

    def object_dict(self, obj_id: int) -> dict[str, Any]:
        """The JSON record of one object."""
        s = self._objects[obj_id]
        names = self.frame_names
        present = [f for f in sorted(s.pixels) if s.pixels[f] > 0]
        return {
            "id": obj_id,
            "name": s.name,
            "prompted_frames": [names[f] for f in s.prompted],
            "frames_present": [names[f] for f in present],
            "num_frames_present": len(present),
            "pixel_counts": {names[f]: s.pixels[f] for f in present},
            "total_pixels": int(sum(s.pixels.values())),
            "mean_iou": round(float(np.mean([s.ious[f] for f in present])), 4) if present else None,
            "mean_object_score": round(float(np.mean(list(s.scores.values()))), 4) if s.scores else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole document: run metadata, frame names, objects."""
        return {
            **self.meta,
            "num_frames": len(self.frame_names),
            "frames": self.frame_names,
            "objects": [self.object_dict(oid) for oid in self._objects],
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``to_dict()`` as indented JSON, atomically."""
        with atomic_output(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return Path(path)
