"""`segment_volume`: prompts on a few slices of a 3D volume -> a label volume in its geometry.

The stages in order: intensity normalisation (CT window / percentiles) -> frames along the
slice axis chosen in patient space -> propagation with the engine -> label frames -> back to
the volume's own index order. The result has exactly the input's shape; writers copy its
origin, spacing and direction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medsam2.engine.frames import ArrayFrames
from medsam2.engine.propagation import Direction
from medsam2.engine.video_predictor import VideoPredictor
from medsam2.errors import InputError, PromptError
from medsam2.model.sam2_model import Sam2Model
from medsam2.postprocess.labels import LabelAccumulator
from medsam2.preprocessing import (
    SliceGeometry,
    box_to_frame,
    frames_to_volume,
    normalize_volume,
    point_to_frame,
    slice_geometry,
    volume_to_frames,
)
from medsam2.types import Volume

__all__ = [
    "VoxelPoint",
    "VoxelBox",
    "VolumeObject",
    "ObjectSummary",
    "VolumeSegmentation",
    "segment_volume",
    "infer_modality",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoxelPoint:
    """A click at voxel index (i, j, k) in the file's order (or world mm when the object says so)."""

    index: tuple[float, ...]
    label: int = 1


@dataclass(frozen=True)
class VoxelBox:
    """Two opposite corners. Same slice -> a box on that slice; otherwise a 3D box whose middle
    slice is prompted with its projection and which bounds the object along the slice axis."""

    corner0: tuple[float, ...]
    corner1: tuple[float, ...]


@dataclass(frozen=True)
class VolumeObject:
    """Everything the user said about one object. `masks`: label volumes of the input's shape whose
    non-zero voxels are the object (each non-empty slice becomes a mask prompt)."""

    obj_id: int
    name: str | None = None
    points: tuple[VoxelPoint, ...] = ()
    boxes: tuple[VoxelBox, ...] = ()
    masks: tuple[np.ndarray, ...] = ()
    world: bool = False


@dataclass(frozen=True)
class ObjectSummary:
    obj_id: int
    name: str | None
    voxels: int
    volume_ml: float
    slices: tuple[int, ...]  # frame (slice) indices along the slice axis where present
    prompted_slices: tuple[int, ...]
    mean_object_score: float | None
    mean_iou: float | None

    def to_json(self) -> dict[str, Any]:
        first_last = [min(self.slices), max(self.slices)] if self.slices else None
        return {
            "id": self.obj_id,
            "name": self.name,
            "voxels": self.voxels,
            "volume_ml": self.volume_ml,
            "slices_covered": len(self.slices),
            "slice_range": first_last,
            "prompted_slices": list(self.prompted_slices),
            "mean_object_score": self.mean_object_score,
            "mean_iou": self.mean_iou,
        }


@dataclass(frozen=True)
class VolumeSegmentation:
    """labels: uint8/uint16 array of the input's shape, (i, j, k) order; geometry: the slicing used."""

    labels: np.ndarray
    geometry: SliceGeometry
    objects: tuple[ObjectSummary, ...]
    window: str
    extra: dict[str, Any] = field(default_factory=dict)
    tracker: str = "memory"  # how unprompted slices were segmented: "memory" or "box-chain"


def infer_modality(volume: Volume) -> str | None:
    """The file's modality, or "CT" when the values look like Hounsfield units (air near -1000)."""
    if volume.modality:
        return volume.modality
    arr = volume.array
    if arr.size and float(np.min(arr)) <= -500 and float(np.percentile(arr, 99)) >= 0:
        return "CT"
    return None


def _check_volume(volume: Volume) -> None:
    if volume.ndim != 3:
        raise InputError(f"{volume.source}: segment needs a 3D volume, got {volume.ndim}D")
    if volume.array.ndim != 3:
        raise InputError(
            f"{volume.source}: has {volume.array.shape[3:]} components per voxel; choose a channel when reading"
        )


def _add_prompts(
    vp: VideoPredictor, volume: Volume, geom: SliceGeometry, obj: VolumeObject
) -> tuple[int, int] | None:
    """Feed one object's prompts to the predictor; returns the slice bounds of a 3D box, if any."""
    if not obj.points and not obj.boxes and not obj.masks:
        raise PromptError(f"object {obj.obj_id}: no prompts")
    per_frame: dict[int, dict[str, Any]] = defaultdict(lambda: {"points": [], "labels": []})
    bounds: tuple[int, int] | None = None
    for n, b in enumerate(obj.boxes):
        fb = box_to_frame(
            b.corner0,
            b.corner1,
            geom,
            volume=volume,
            world=obj.world,
            name=f"object {obj.obj_id} box {n + 1}",
        )
        per_frame[fb.t]["box"] = [fb.x0, fb.y0, fb.x1, fb.y1]
        if fb.t_range[0] != fb.t_range[1]:
            lo, hi = fb.t_range
            bounds = (lo, hi) if bounds is None else (min(bounds[0], lo), max(bounds[1], hi))
    for n, p in enumerate(obj.points):
        if p.label not in (0, 1):
            raise PromptError(f"object {obj.obj_id} point {n + 1}: label must be 1 or 0, got {p.label}")
        fp = point_to_frame(
            p.index, geom, volume=volume, world=obj.world, name=f"object {obj.obj_id} point {n + 1}"
        )
        per_frame[fp.t]["points"].append([fp.x, fp.y])
        per_frame[fp.t]["labels"].append(p.label)
    for mask in obj.masks:
        if mask.shape != volume.shape:
            raise PromptError(
                f"object {obj.obj_id} mask prompt: shape {mask.shape} differs from the image {volume.shape}"
            )
        frames = volume_to_frames(np.asarray(mask) != 0, geom)
        for nz in np.flatnonzero(frames.reshape(frames.shape[0], -1).any(axis=1)).tolist():
            vp.add_prompt(int(nz), obj.obj_id, mask=frames[nz])
    for t, prompt in sorted(per_frame.items()):
        if "box" in prompt:
            vp.add_prompt(t, obj.obj_id, box=prompt["box"])
        if prompt["points"]:
            vp.add_prompt(t, obj.obj_id, points=prompt["points"], labels=prompt["labels"])
    return bounds


def _summary(obj: VolumeObject, acc: LabelAccumulator, prompted: list[int], volume: Volume) -> ObjectSummary:
    st = acc.stats[obj.obj_id]
    return ObjectSummary(
        obj_id=obj.obj_id,
        name=obj.name,
        voxels=st.pixels,
        volume_ml=st.pixels * float(np.prod(volume.spacing)) / 1000.0,
        slices=tuple(sorted(st.frames)),
        prompted_slices=tuple(prompted),
        mean_object_score=st.mean_object_score,
        mean_iou=st.mean_iou,
    )


def segment_volume(
    model: Sam2Model,
    volume: Volume,
    objects: Sequence[VolumeObject],
    *,
    axis: str = "auto",
    window: str | None = None,
    memory: str = "self-sorting",
    memory_options: dict[str, Any] | None = None,
    direction: Direction = "both",
    progress: bool = False,
    speed: str = "exact",
    tracker: str | None = None,
) -> VolumeSegmentation:
    """Segment `objects` through `volume` from their prompts; see the module docstring.

    tracker: "memory" (SAM 2's memory path), "box-chain" (each slice boxed from the previous
    slice's mask, stopped where the answer stops looking like the object;
    `medsam2.engine.box_chain`) or None (default): the model's own, ``model.config.tracker``
    (box chaining for the embedded ``nano-track``, the memory for SAM 2 checkpoints).

    speed: "exact" (SAM 2's float32 math) or "fast" (bf16 encoder and memory modules where
    the device supports it; `medsam2.engine.speed`).
    """
    _check_volume(volume)
    if not objects:
        raise PromptError("no objects to segment: give at least one prompt")
    ids = [o.obj_id for o in objects]
    if len(set(ids)) != len(ids) or min(ids) < 1 or max(ids) > 65535:
        raise PromptError(f"object ids must be distinct integers in 1..65535, got {ids}")
    modality = infer_modality(volume)
    window_used = window or (
        "abdomen (CT default)" if modality and modality.upper() == "CT" else "percentile 0.5-99.5"
    )
    geom = slice_geometry(volume, axis)
    normalised = normalize_volume(Volume(**{**volume.__dict__, "modality": modality}), window)
    frames01 = volume_to_frames(normalised, geom)
    del normalised  # frames01 is a copy: do not hold a second float32 volume while propagating
    log.info(
        "%s: %s, %d frames of %s, intensity: %s",
        volume.source,
        geom.describe(),
        geom.num_frames,
        geom.frame_size,
        window_used,
    )
    # one prompt set, one propagation, no corrections: keep memory flat in the number of slices
    options = memory_options or {}
    vp = VideoPredictor(
        model, memory=memory, progress=progress, speed=speed, one_shot=True, tracker=tracker, **options
    )
    vp.start(ArrayFrames(frames01, name=volume.source))
    bounds = {o.obj_id: b for o in objects if (b := _add_prompts(vp, volume, geom, o)) is not None}
    acc = LabelAccumulator(geom.num_frames, geom.frame_size, tuple(sorted(ids)), bounds)
    for out in vp.propagate(direction=direction):
        acc.add(out.frame_idx, out.logits, out.obj_ids, out.object_scores, out.ious)
    labels = frames_to_volume(acc.labels, geom)
    session = vp.session
    assert session is not None
    summaries = tuple(_summary(o, acc, session.objects[o.obj_id].prompted_frames(), volume) for o in objects)
    return VolumeSegmentation(labels, geom, summaries, window_used, tracker=vp.tracker)
