"""`Annotator`: one volume being annotated interactively — objects, prompts, undo, propagation.

A thin stateful layer over `medsam2.engine.video_predictor.VideoPredictor` (one session per
volume, lazily encoded slices, bounded feature cache). No web framework here: the Starlette app
calls these methods from a worker thread, one at a time (`lock`).

Labels are kept as a frame stack (T, H, W) uint8 (object ids 1..255). A slice is repainted from
the engine's results of the objects that have one on it; other objects keep their pixels there
(results restored from an autosave, or left by a cancelled propagation).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medsam2.engine.frames import ArrayFrames
from medsam2.engine.propagation import Direction, frame_output
from medsam2.engine.session import FrameResult, InferenceSession
from medsam2.engine.video_predictor import VideoPredictor
from medsam2.errors import InputError, MedSam2Error, PromptError
from medsam2.model.sam2_model import Sam2Model
from medsam2.postprocess.labels import combine_objects
from medsam2.preprocessing import normalize_volume, slice_geometry, volume_to_frames
from medsam2.types import Volume
from medsam2.volume import infer_modality
from medsam2.web.prompts import PromptAction, WorldPrompt, to_frame_action

__all__ = ["Annotator", "BusyError", "ObjectInfo", "UnknownObjectError", "MAX_OBJECTS"]

log = logging.getLogger(__name__)

MAX_OBJECTS = 255  # label values fit uint8, as the viewer's overlay expects
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


class BusyError(MedSam2Error):
    """The annotator is propagating; the request must wait or cancel it."""


class UnknownObjectError(MedSam2Error):
    """No object with that id."""


@dataclass(frozen=True)
class Prior:
    """What a prompt corrected: the slice's result (None: empty) and the direction it was
    propagated in (None: never propagated)."""

    result: FrameResult | None
    reverse: bool | None


@dataclass
class ObjectInfo:
    obj_id: int
    name: str
    color: tuple[int, int, int]
    actions: list[PromptAction] = field(default_factory=list)
    # by index into `actions`: the engine's answer on the action's slice when the action came,
    # if that slice was not prompted yet (a correction of a propagated slice), so that undo can
    # decode the remaining actions as they were decoded (not kept across a server restart)
    priors: dict[int, Prior] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        r, g, b = self.color
        return {
            "id": self.obj_id,
            "name": self.name,
            "color": f"#{r:02x}{g:02x}{b:02x}",
            "prompts": len(self.actions),
        }


ProgressCallback = Callable[[int, int, int], None]  # (slice, done, total)


class Annotator:
    """Interactive segmentation of one 3D `volume` with `model` (see the module docstring)."""

    def __init__(
        self,
        model: Sam2Model,
        volume: Volume,
        *,
        axis: str = "auto",
        window: str | None = None,
        memory: str = "self-sorting",
        memory_options: dict[str, Any] | None = None,
        cache_size: int = 16,
        speed: str = "exact",
        tracker: str | None = None,
    ) -> None:
        if volume.ndim != 3 or volume.array.ndim != 3:
            raise InputError(f"{volume.source}: serve needs a single-channel 3D volume")
        self.volume = volume
        modality = infer_modality(volume)
        self.window = window or (
            "abdomen (CT default)" if modality and modality.upper() == "CT" else "percentile 0.5-99.5"
        )
        self.geom = slice_geometry(volume, axis)
        unit = normalize_volume(Volume(**{**volume.__dict__, "modality": modality}), window)
        self.display = np.rint(unit * 255).astype(np.uint8)  # what the viewer shows, index order
        self.predictor = VideoPredictor(  # tracker None: the model's own (model.config.tracker)
            model,
            memory=memory,
            cache_size=cache_size,
            speed=speed,
            tracker=tracker,
            **(memory_options or {}),
        )
        self.predictor.start(ArrayFrames(volume_to_frames(unit, self.geom), name=volume.source))
        self.labels = np.zeros(self.geom.frame_shape, np.uint8)
        self.objects: dict[int, ObjectInfo] = {}
        self.lock = threading.Lock()
        self.propagating = threading.Event()
        self.cancel_requested = threading.Event()
        self.propagated = False  # labels hold a propagation result
        self.changed = 0  # bumped on every change (autosave bookkeeping)

    # -- objects -------------------------------------------------------------------------------

    @property
    def session(self) -> InferenceSession:
        assert self.predictor.session is not None
        return self.predictor.session

    def _check_idle(self) -> None:
        if self.propagating.is_set():
            raise BusyError("a propagation is running: wait for it or cancel it first")

    def object(self, obj_id: int) -> ObjectInfo:
        if obj_id not in self.objects:
            raise UnknownObjectError(f"object {obj_id} does not exist")
        return self.objects[obj_id]

    def add_object(
        self, name: str | None = None, color: tuple[int, int, int] | None = None, obj_id: int | None = None
    ) -> ObjectInfo:
        self._check_idle()
        if len(self.objects) >= MAX_OBJECTS:
            raise PromptError(f"at most {MAX_OBJECTS} objects per volume")
        if obj_id is None:
            obj_id = next(i for i in range(1, MAX_OBJECTS + 1) if i not in self.objects)
        elif obj_id in self.objects or not 1 <= obj_id <= MAX_OBJECTS:
            raise PromptError(f"object id {obj_id}: taken or outside 1..{MAX_OBJECTS}")
        info = ObjectInfo(obj_id, name or f"object {obj_id}", color or PALETTE[(obj_id - 1) % len(PALETTE)])
        self.objects[obj_id] = info
        self.changed += 1
        return info

    def update_object(
        self, obj_id: int, name: str | None = None, color: tuple[int, int, int] | None = None
    ) -> ObjectInfo:
        self._check_idle()
        info = self.object(obj_id)
        info.name = name if name is not None else info.name
        info.color = color if color is not None else info.color
        self.changed += 1
        return info

    def delete_object(self, obj_id: int) -> None:
        self._check_idle()
        self.object(obj_id)
        del self.objects[obj_id]
        self.session.remove_object(obj_id)
        self.labels[self.labels == obj_id] = 0
        self.changed += 1

    # -- prompts -------------------------------------------------------------------------------

    def add_prompt(self, obj_id: int, prompt: WorldPrompt) -> dict[str, Any]:
        """Map a world-mm prompt to its slice, decode that slice and return its result."""
        self._check_idle()
        self.object(obj_id)
        action = to_frame_action(prompt, self.geom, self.volume)
        start = time.perf_counter()
        state = self.session.objects.get(obj_id)
        prior = None
        if state is not None and action.frame not in state.prompts:
            prior = Prior(state.results.get(action.frame), state.tracked.get(action.frame))
        self._apply(obj_id, action)
        if prior is not None:
            self.objects[obj_id].priors[len(self.objects[obj_id].actions)] = prior
        self.objects[obj_id].actions.append(action)
        self._repaint(action.frame)
        ms = (time.perf_counter() - start) * 1000
        log.info("object %d: prompt on slice %d decoded in %.0f ms", obj_id, action.frame, ms)
        self.changed += 1
        return {**self._result(obj_id, action.frame), "ms": round(ms, 1), "voxels": action.voxels}

    def _apply(self, obj_id: int, action: PromptAction) -> None:
        points = [list(p) for p in action.points] or None
        labels = list(action.labels) or None
        self.predictor.add_prompt(action.frame, obj_id, points=points, labels=labels, box=action.box)

    def _result(self, obj_id: int, frame: int) -> dict[str, Any]:
        res = self.session.objects[obj_id].results.get(frame) if obj_id in self.session.objects else None
        return {
            "object": obj_id,
            "slice": frame,
            "pixels": int((self.labels[frame] == obj_id).sum()),
            "iou": None if res is None else round(res.iou, 4),
            "object_score": None if res is None else round(res.object_score, 3),
            "patch": self.slice_patch(frame),
        }

    def undo(self, obj_id: int) -> dict[str, Any]:
        """Remove the object's last prompt; its other prompts are decoded again (propagated
        masks of this object are dropped: propagate again)."""
        self._check_idle()
        info = self.object(obj_id)
        if not info.actions:
            raise PromptError(f"object {obj_id}: nothing to undo")
        last = info.actions.pop()
        info.priors.pop(len(info.actions), None)
        self._replay(obj_id)
        self.labels[self.labels == obj_id] = 0
        frames = sorted({a.frame for a in info.actions} | {last.frame})
        for f in frames:
            self._repaint(f)
        self.changed += 1
        return {"object": obj_id, "slice": last.frame, "patches": [self.slice_patch(f) for f in frames]}

    def _replay(self, obj_id: int) -> None:
        """Decode the object's actions again on a fresh object, each from what it corrected."""
        self.session.remove_object(obj_id)
        info = self.objects[obj_id]
        for i, action in enumerate(info.actions):
            prior = info.priors.get(i)
            state = self.session.object(obj_id)
            if prior is not None and action.frame not in state.prompts:
                if prior.result is not None:
                    state.results[action.frame] = prior.result
                if prior.reverse is not None:
                    state.tracked[action.frame] = prior.reverse
            self._apply(obj_id, action)

    def reset(self) -> None:
        """Forget every object, prompt and result."""
        self._check_idle()
        self.predictor.reset()
        self.objects.clear()
        self.labels[:] = 0
        self.propagated = False
        self.changed += 1

    # -- propagation ---------------------------------------------------------------------------

    def propagate(
        self, direction: Direction = "both", on_slice: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Propagate every object from its prompted slices; `cancel_requested` stops it between slices.

        Slices not reached before a cancel keep their previous labels."""
        if not self.session.prompted_frames():
            raise PromptError("no prompts yet: draw a box or click on a slice first")
        total = self.geom.num_frames
        done, start = 0, time.perf_counter()
        self.cancel_requested.clear()
        gen = self.predictor.propagate(direction=direction)
        try:
            for out in gen:
                plane = self.labels[out.frame_idx]
                plane[:] = combine_objects(out.logits, out.obj_ids).astype(np.uint8)
                done += 1
                if on_slice is not None:
                    on_slice(out.frame_idx, done, total)
                if self.cancel_requested.is_set():
                    break
        finally:
            getattr(gen, "close", lambda: None)()  # stop the engine's generator where it is
        seconds = time.perf_counter() - start
        cancelled = done < total
        self.propagated = self.propagated or not cancelled
        self.changed += 1
        log.info("propagated %d/%d slices in %.1f s", done, total, seconds)
        return {
            "cancelled": cancelled,
            "slices": done,
            "total": total,
            "seconds": round(seconds, 3),
            "ms_per_slice": round(1000 * seconds / max(done, 1), 1),
        }

    # -- labels --------------------------------------------------------------------------------

    def _repaint(self, frame: int) -> None:
        """Recompute `frame` from the engine's results of the objects that have one there."""
        ids = [oid for oid, o in self.session.objects.items() if frame in o.results and oid in self.objects]
        plane = self.labels[frame]
        if ids:
            plane[np.isin(plane, ids)] = 0
            out = frame_output(self.session, frame, sorted(ids))
            new = combine_objects(out.logits, out.obj_ids).astype(np.uint8)
            free = plane == 0
            plane[free] = new[free]

    def slice_patch(self, frame: int) -> dict[str, Any]:
        """Slice `frame` of the labels in the file's index order, for the viewer to patch its
        overlay: `axis` is the sliced index axis, `axes` the other two (a < b), `data` base64 of
        uint8 values with `a` varying fastest."""
        g = self.geom
        assert g.slice_axis is not None
        plane = self.labels[frame]
        if g.flip_rows:
            plane = plane[::-1]
        if g.flip_cols:
            plane = plane[:, ::-1]
        ab = plane if g.row_axis < g.col_axis else plane.T  # (n_a, n_b)
        a, b = sorted((g.row_axis, g.col_axis))
        data = np.ascontiguousarray(ab.T).tobytes()  # b slowest, a fastest
        return {
            "slice": frame,
            "axis": g.slice_axis,
            "axes": [a, b],
            "shape": [int(ab.shape[0]), int(ab.shape[1])],
            "data": base64.b64encode(data).decode("ascii"),
        }

    def label_volume(self) -> np.ndarray:
        """The labels in the input's index order and shape (uint8)."""
        from medsam2.preprocessing import frames_to_volume

        return frames_to_volume(self.labels, self.geom)

    def set_label_volume(self, labels: np.ndarray) -> None:
        if labels.shape != self.volume.shape:
            raise InputError(f"labels of shape {labels.shape} do not fit the volume {self.volume.shape}")
        self.labels[:] = volume_to_frames(labels.astype(np.uint8), self.geom)

    def info(self) -> dict[str, Any]:
        v, g = self.volume, self.geom
        return {
            "source": _display_name(v.source),
            "shape": list(v.shape),
            "spacing": list(v.spacing),
            "origin_lps": list(v.origin),
            "direction": np.asarray(v.direction, np.float64).round(9).tolist(),
            "slicing": {
                "plane": g.plane,
                "axis": g.slice_axis,
                "slices": g.num_frames,
                "describe": g.describe(),
            },
            "window": self.window,
            "tracker": self.predictor.tracker,
            "objects": [o.to_json() for o in self.objects.values()],
            "propagating": self.propagating.is_set(),
            "propagated": self.propagated,
        }


def _display_name(source: str) -> str:
    """The input's file name only: the page never sees server paths."""
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
