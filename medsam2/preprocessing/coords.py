"""Prompt coordinates: voxel indices / world mm <-> frame space ``(t, x, y)`` of a SliceGeometry.

Voxel prompts are indices ``(i, j, k)`` in the file's own index order (as 3D Slicer / ITK-SNAP
show them); ``world=True`` reads the same numbers as millimetres (LPS) and converts them with the
volume's origin, spacing and direction.  Frame space: ``t`` = frame (slice) index, ``x`` = column,
``y`` = row, in the frames produced by :func:`medsam2.preprocessing.axes.volume_to_frames`.

Conventions:
* Integer indices are voxel centres; a coordinate is inside the image when it lies within the
  voxel extent, ``-0.5 <= c <= n - 0.5`` on every index axis (so integer voxel prompts must be
  ``0..n-1``).  Outside -> PromptError naming the argument and the bounds.
* A point's slice coordinate is rounded to the nearest frame; in-plane ``x, y`` stay continuous.
* Boxes are two corners.  Voxel corners must be ordered (``i0 <= i1``, ``j0 <= j1``, ``k0 <= k1``);
  world corners are ordered per index axis after conversion.  Flips of the frame display are
  normalised here, so frame boxes always have ``x0 <= x1`` and ``y0 <= y1``.  Corners on the same
  frame give a box on that frame; otherwise the box spans frames ``t_range`` (inclusive) and is
  prompted on its middle frame ``(t_first + t_last) // 2`` with its in-plane projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medsam2.errors import PromptError
from medsam2.preprocessing.axes import SliceGeometry
from medsam2.types import Volume

__all__ = [
    "FrameBox",
    "FramePoint",
    "box_to_frame",
    "check_frame_box",
    "check_frame_point",
    "frame_box_to_index",
    "frame_point_to_index",
    "frame_point_to_world",
    "frame_to_index",
    "index_to_frame",
    "point_to_frame",
]

_AXIS_NAMES = "ijk"


@dataclass(frozen=True)
class FramePoint:
    """A point on frame ``t`` at column ``x`` and row ``y`` (pixel units, pixel centres at integers)."""

    t: int
    x: float
    y: float


@dataclass(frozen=True)
class FrameBox:
    """A box on frame ``t`` (``x0 <= x1`` columns, ``y0 <= y1`` rows) and the frames it spans."""

    t: int
    x0: float
    y0: float
    x1: float
    y1: float
    t_range: tuple[int, int]


def _fmt(values: np.ndarray | Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def _as_vector(value: Sequence[float] | np.ndarray, ndim: int, name: str) -> np.ndarray:
    try:
        vec = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError(f"{name}: expected {ndim} numbers, got {value!r}") from None
    if vec.shape != (ndim,):
        raise PromptError(f"{name}: expected {ndim} coordinates for a {ndim}D image, got {value!r}")
    if not np.all(np.isfinite(vec)):
        raise PromptError(f"{name}: coordinates must be finite numbers, got {_fmt(vec)}")
    return vec


def index_to_frame(index: np.ndarray, geom: SliceGeometry) -> np.ndarray:
    """Continuous voxel indices ``(..., D)`` -> continuous frame coordinates ``(..., 3)`` = (t, x, y)."""
    idx = np.asarray(index, dtype=np.float64)
    n_row, n_col = geom.frame_size
    row = idx[..., geom.row_axis]
    col = idx[..., geom.col_axis]
    y = (n_row - 1) - row if geom.flip_rows else row
    x = (n_col - 1) - col if geom.flip_cols else col
    t = np.zeros_like(x) if geom.slice_axis is None else idx[..., geom.slice_axis]
    return np.stack([t, x, y], axis=-1)


def frame_to_index(txy: np.ndarray, geom: SliceGeometry) -> np.ndarray:
    """Continuous frame coordinates ``(..., 3)`` = (t, x, y) -> voxel indices ``(..., D)``.

    Exact inverse of :func:`index_to_frame` (``t`` is ignored for a 2D image).
    """
    f = np.asarray(txy, dtype=np.float64)
    n_row, n_col = geom.frame_size
    out = np.empty((*f.shape[:-1], geom.ndim), dtype=np.float64)
    out[..., geom.row_axis] = (n_row - 1) - f[..., 2] if geom.flip_rows else f[..., 2]
    out[..., geom.col_axis] = (n_col - 1) - f[..., 1] if geom.flip_cols else f[..., 1]
    if geom.slice_axis is not None:
        out[..., geom.slice_axis] = f[..., 0]
    return out


def _to_index(
    value: Sequence[float] | np.ndarray, geom: SliceGeometry, volume: Volume | None, world: bool, name: str
) -> np.ndarray:
    vec = _as_vector(value, geom.ndim, name)
    if not world:
        return vec
    if volume is None:
        raise PromptError(f"{name}: world coordinates need the volume's geometry (volume=None)")
    if volume.shape != geom.shape:
        raise PromptError(
            f"{name}: volume shape {volume.shape} does not match the slice geometry {geom.shape}"
        )
    return np.asarray(volume.world_to_index(vec), dtype=np.float64)


def _check_inside(index: np.ndarray, value: object, geom: SliceGeometry, world: bool, name: str) -> None:
    for axis, (c, n) in enumerate(zip(index, geom.shape, strict=True)):
        if not -0.5 <= c <= n - 0.5:
            what = (
                f"world {_fmt(np.asarray(value, float))} mm = voxel {_fmt(index)}" if world else _fmt(index)
            )
            role = " (the slice axis)" if axis == geom.slice_axis else ""
            raise PromptError(
                f"{name}: {what} is outside the image: index {_AXIS_NAMES[axis]}{role} = {c:g} "
                f"not in 0..{n - 1} (image shape {_fmt(geom.shape)})"
            )


def _frame_of(t: float, geom: SliceGeometry) -> int:
    """Nearest frame to a continuous slice coordinate already known to lie in the volume."""
    return int(min(max(np.floor(t + 0.5), 0), geom.num_frames - 1))


def point_to_frame(
    point: Sequence[float] | np.ndarray,
    geom: SliceGeometry,
    *,
    volume: Volume | None = None,
    world: bool = False,
    name: str = "point",
) -> FramePoint:
    """Voxel index ``(i, j[, k])`` (or world mm with ``world=True``, needs ``volume``) -> FramePoint.

    The slice coordinate is rounded to the nearest frame; raises PromptError outside the image.
    """
    index = _to_index(point, geom, volume, world, name)
    _check_inside(index, point, geom, world, name)
    t, x, y = index_to_frame(index, geom)
    return FramePoint(_frame_of(t, geom), float(x), float(y))


def _box_corners(
    corner0: Sequence[float] | np.ndarray,
    corner1: Sequence[float] | np.ndarray,
    geom: SliceGeometry,
    volume: Volume | None,
    world: bool,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    c0 = _to_index(corner0, geom, volume, world, f"{name} corner 1")
    c1 = _to_index(corner1, geom, volume, world, f"{name} corner 2")
    _check_inside(c0, corner0, geom, world, f"{name} corner 1")
    _check_inside(c1, corner1, geom, world, f"{name} corner 2")
    if world:
        return np.minimum(c0, c1), np.maximum(c0, c1)
    for axis in range(geom.ndim):
        if c1[axis] < c0[axis]:
            a = _AXIS_NAMES[axis]
            raise PromptError(
                f"{name}: corners {_fmt(c0)} and {_fmt(c1)} are in the wrong order: "
                f"{a}1 = {c1[axis]:g} < {a}0 = {c0[axis]:g}; give the low corner first"
            )
    return c0, c1


def box_to_frame(
    corner0: Sequence[float] | np.ndarray,
    corner1: Sequence[float] | np.ndarray,
    geom: SliceGeometry,
    *,
    volume: Volume | None = None,
    world: bool = False,
    name: str = "box",
) -> FrameBox:
    """Two voxel corners ``(i0, j0[, k0])``, ``(i1, j1[, k1])`` (or world mm) -> FrameBox.

    Corners on the same frame give a box on that frame; a 3D box gives its middle frame
    ``(t_first + t_last) // 2``, the projected in-plane box and ``t_range = (t_first, t_last)``.
    """
    c0, c1 = _box_corners(corner0, corner1, geom, volume, world, name)
    f0, f1 = index_to_frame(np.stack([c0, c1]), geom)
    t_first, t_last = sorted((_frame_of(f0[0], geom), _frame_of(f1[0], geom)))
    x0, x1 = sorted((float(f0[1]), float(f1[1])))
    y0, y1 = sorted((float(f0[2]), float(f1[2])))
    return FrameBox((t_first + t_last) // 2, x0, y0, x1, y1, (t_first, t_last))


def check_frame_point(point: FramePoint, frame_shape: tuple[int, int, int], name: str = "point") -> None:
    """Frame-space prompt check: ``0 <= t < T`` and ``x``, ``y`` within the frame (PromptError)."""
    num_frames, height, width = frame_shape
    if not 0 <= point.t < num_frames:
        raise PromptError(f"{name}: frame {point.t} does not exist (frames 0..{num_frames - 1})")
    for label, value, n in (("x", point.x, width), ("y", point.y, height)):
        if not (np.isfinite(value) and -0.5 <= value <= n - 0.5):
            raise PromptError(f"{name}: {label} = {value:g} is outside the frame ({label} in 0..{n - 1})")


def check_frame_box(box: FrameBox, frame_shape: tuple[int, int, int], name: str = "box") -> None:
    """Frame-space box check: frame exists, corners inside, ``x0 <= x1`` and ``y0 <= y1``."""
    check_frame_point(FramePoint(box.t, box.x0, box.y0), frame_shape, name)
    check_frame_point(FramePoint(box.t, box.x1, box.y1), frame_shape, name)
    if box.x1 < box.x0 or box.y1 < box.y0:
        raise PromptError(
            f"{name}: corners ({box.x0:g}, {box.y0:g}) and ({box.x1:g}, {box.y1:g}) are in the wrong order; "
            "expected x0 <= x1 and y0 <= y1"
        )
    first, last = box.t_range
    if not 0 <= first <= box.t <= last < frame_shape[0]:
        raise PromptError(
            f"{name}: frame range {box.t_range} does not contain frame {box.t} or leaves the frames"
        )


def frame_point_to_index(point: FramePoint, geom: SliceGeometry, name: str = "point") -> np.ndarray:
    """FramePoint -> continuous voxel index ``(D,)`` (checked against the frame stack)."""
    check_frame_point(point, geom.frame_shape, name)
    return frame_to_index(np.array([point.t, point.x, point.y], dtype=np.float64), geom)


def frame_point_to_world(
    point: FramePoint, geom: SliceGeometry, volume: Volume, name: str = "point"
) -> np.ndarray:
    """FramePoint -> world position ``(D,)`` in mm (LPS)."""
    return np.asarray(volume.index_to_world(frame_point_to_index(point, geom, name)), dtype=np.float64)


def frame_box_to_index(
    box: FrameBox, geom: SliceGeometry, name: str = "box"
) -> tuple[np.ndarray, np.ndarray]:
    """FrameBox -> two voxel corners ``(D,)`` on frame ``box.t``, each axis ordered low -> high."""
    check_frame_box(box, geom.frame_shape, name)
    f = np.array([[box.t, box.x0, box.y0], [box.t, box.x1, box.y1]], dtype=np.float64)
    c = frame_to_index(f, geom)
    return c.min(axis=0), c.max(axis=0)
