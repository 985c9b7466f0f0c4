"""Prompts from the browser (world millimetres) -> prompts on one slice (frame pixels).

A box is two opposite corners on the slice being viewed; clicks are points with labels 1
(positive) / 0 (negative). All corners and points must lie on one slice of the volume's slicing
axis: a box drawn in another view would span slices and is refused with a hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medsam2.errors import PromptError
from medsam2.preprocessing import SliceGeometry, box_to_frame, point_to_frame
from medsam2.types import Volume
from medsam2.web.coords import WorldMap

__all__ = ["PromptAction", "WorldPrompt", "to_frame_action"]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class WorldPrompt:
    """A prompt as sent by a client: world mm in `space` ("ras" from NiiVue, or "lps")."""

    box: tuple[Vec3, Vec3] | None = None
    points: tuple[Vec3, ...] = ()
    labels: tuple[int, ...] = ()
    space: str = "ras"
    slice: int | None = None  # when given, the prompt must land on this slice


@dataclass(frozen=True)
class PromptAction:
    """One prompt on frame `frame`, in frame pixels (x column, y row); `voxels`: where the world
    coordinates landed, as continuous voxel indices (i, j, k), for the client to check."""

    frame: int
    box: tuple[float, float, float, float] | None
    points: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]
    voxels: tuple[tuple[float, ...], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "box": self.box, "points": [list(p) for p in self.points],
                "labels": list(self.labels)}  # fmt: skip

    @staticmethod
    def from_json(data: dict[str, Any]) -> PromptAction:
        box = data.get("box")
        return PromptAction(
            int(data["frame"]),
            None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            tuple((float(x), float(y)) for x, y in data.get("points", [])),
            tuple(int(v) for v in data.get("labels", [])),
        )


def _clip(value: float, n: int) -> float:
    """Voxel-extent coordinates (-0.5..n-0.5) onto pixel centres 0..n-1, as the engine wants."""
    return float(min(max(value, 0.0), n - 1.0))


def _the_slice(frames: list[int], geom: SliceGeometry, expected: int | None) -> int:
    if len(set(frames)) != 1:
        raise PromptError(
            f"the prompt spans slices {min(frames)}..{max(frames)} of the {geom.plane} axis: "
            f"draw boxes and click in the {geom.plane} view, on one slice"
        )
    if expected is not None and expected != frames[0]:
        raise PromptError(
            f"the prompt's millimetres fall on slice {frames[0]}, not the given slice {expected}"
        )
    return frames[0]


def to_frame_action(prompt: WorldPrompt, geom: SliceGeometry, volume: Volume) -> PromptAction:
    """Map `prompt` to its slice through SimpleITK (see `medsam2.web.coords`)."""
    if prompt.box is None and not prompt.points:
        raise PromptError("give a box and/or points")
    if len(prompt.labels) != len(prompt.points):
        raise PromptError(f"{len(prompt.labels)} labels for {len(prompt.points)} points")
    wmap = WorldMap(volume)
    h, w = geom.frame_size
    frames, voxels = [], []
    box = None
    if prompt.box is not None:
        c0, c1 = (wmap.world_to_index(c, prompt.space) for c in prompt.box)
        lo, hi = np.minimum(c0, c1), np.maximum(c0, c1)
        fb = box_to_frame(lo, hi, geom, name="box")
        frames += list(fb.t_range)
        voxels += [tuple(c0.round(3).tolist()), tuple(c1.round(3).tolist())]
        box = (_clip(fb.x0, w), _clip(fb.y0, h), _clip(fb.x1, w), _clip(fb.y1, h))
    points = []
    for n, p in enumerate(prompt.points):
        index = wmap.world_to_index(p, prompt.space)
        fp = point_to_frame(index, geom, name=f"point {n + 1}")
        frames.append(fp.t)
        voxels.append(tuple(index.round(3).tolist()))
        points.append((_clip(fp.x, w), _clip(fp.y, h)))
    frame = _the_slice(frames, geom, prompt.slice)
    return PromptAction(frame, box, tuple(points), tuple(prompt.labels), tuple(voxels))
