"""Slice axis in patient space and the mapping between a volume and its stack of 2D frames.

SAM 2 treats a 3D volume as a video: one index axis becomes time (the frame index ``t``), the
other two become frame rows and columns.  Which index axis is sliced is chosen in *patient*
space from the direction cosines (``Volume.direction``, LPS world), never from storage order.

Display convention (radiological, as 3D Slicer / ITK-SNAP / most PACS show slices).
World is LPS: +x = patient Left, +y = Posterior, +z = Superior.

==========  ===========================  ================================
plane       frame rows, top -> bottom    frame columns, left -> right
==========  ===========================  ================================
axial       anterior -> posterior (+y)   patient right -> left (+x)
coronal     superior -> inferior (-z)    patient right -> left (+x)
sagittal    superior -> inferior (-z)    anterior -> posterior (+y)
==========  ===========================  ================================

So axial frames show anterior up and the patient's right on the image left; coronal frames are
seen from the front; sagittal frames face the image left.  Rows and columns are flipped as
needed to honour this.  The slice axis itself is *never* flipped: frame ``t`` is voxel index
``t`` along the slice axis, so users' slice numbers (as their viewer shows them) are frame numbers.

A 2D image (``Volume.ndim == 2``, array ``(i, j)`` = (column, row)) is a single frame shown as
stored: ``frames[0] = array.T`` (rows = j, columns = i); its direction cosines are ignored.
The default plane ("auto") is axial for 3D volumes, except a single-slice 3D volume (one index
axis of size 1), which is sliced across that axis so it stays one full frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

from medsam2.errors import InputError
from medsam2.types import Volume

__all__ = [
    "PLANES",
    "Plane",
    "SliceGeometry",
    "auto_axis",
    "frames_to_volume",
    "slice_geometry",
    "slice_geometry_from_direction",
    "volume_to_frames",
]

Plane = Literal["axial", "coronal", "sagittal", "image"]
PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")

# plane -> (world axis sliced, (world axis of rows, wanted sign), (world axis of columns, wanted sign))
_PLANE_AXES: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    "axial": (2, (1, +1), (0, +1)),
    "coronal": (1, (2, -1), (0, +1)),
    "sagittal": (0, (2, -1), (1, +1)),
}


@dataclass(frozen=True)
class SliceGeometry:
    """How a volume's index space maps to a stack of frames ``(T, H, W)``.

    Attributes:
        plane: "axial", "coronal", "sagittal", or "image" for a 2D input.
        shape: the volume's index shape ``(n_i, n_j[, n_k])``.
        slice_axis: index axis that becomes the frame index ``t`` (None for a 2D image).
        row_axis: index axis that becomes frame rows (``y``, size H).
        col_axis: index axis that becomes frame columns (``x``, size W).
        flip_rows: row ``y`` is index ``n_row - 1 - y`` (else ``y``).
        flip_cols: column ``x`` is index ``n_col - 1 - x`` (else ``x``).
    """

    plane: Plane
    shape: tuple[int, ...]
    slice_axis: int | None
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_frames(self) -> int:
        return 1 if self.slice_axis is None else self.shape[self.slice_axis]

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of one frame."""
        return self.shape[self.row_axis], self.shape[self.col_axis]

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the frame stack."""
        return (self.num_frames, *self.frame_size)

    def describe(self) -> str:
        """One line for logs, e.g. ``axial: slice axis k (40 frames of 256x256 rows j, cols i)``."""
        names = "ijk"
        rows = names[self.row_axis] + (" flipped" if self.flip_rows else "")
        cols = names[self.col_axis] + (" flipped" if self.flip_cols else "")
        t, h, w = self.frame_shape
        sl = "none (one frame)" if self.slice_axis is None else names[self.slice_axis]
        return f"{self.plane}: slice axis {sl} ({t} frames of {h}x{w}; rows {rows}, cols {cols})"


def _auto_plane(shape: tuple[int, ...], direction: np.ndarray) -> str:
    """ "axial", unless exactly one index axis has a single voxel: then the plane it is normal to."""
    singles = [ax for ax, n in enumerate(shape) if n == 1]
    if len(singles) != 1:
        return "axial"
    world = int(np.argmax(np.abs(np.asarray(direction, np.float64)[:, singles[0]])))
    return ("sagittal", "coronal", "axial")[world]


def auto_axis(volume: Volume) -> Plane:
    """Default plane: "image" for a 2D image (a 2D image is one frame); "axial" for a 3D volume,
    except a single-slice 3D volume (exactly one index axis of size 1), which gets the plane
    that axis is normal to so that it stays one full frame."""
    if volume.ndim == 2:
        return "image"
    if volume.ndim == 3:
        _check_direction(volume.direction, 3)
        return cast(Plane, _auto_plane(volume.shape, volume.direction))
    raise InputError(f"{volume.source}: expected a 2D or 3D image, got {volume.ndim} dimensions")


def _check_direction(direction: np.ndarray, ndim: int) -> np.ndarray:
    d = np.asarray(direction, dtype=np.float64)
    if d.shape != (ndim, ndim) or not np.all(np.isfinite(d)):
        raise InputError(f"direction: expected a finite {ndim}x{ndim} matrix, got shape {d.shape}")
    if abs(np.linalg.det(d)) < 1e-6:
        raise InputError(f"direction: matrix is singular (determinant {np.linalg.det(d):.3g})")
    return d


def _parse_plane(axis: str, allowed: tuple[str, ...] = ("auto", *PLANES)) -> str:
    name = str(axis).strip().lower()
    if name not in allowed:
        raise InputError(f"axis: unknown plane {axis!r}; expected one of {', '.join(allowed)}")
    return name


def slice_geometry_from_direction(
    shape: tuple[int, ...], direction: np.ndarray, axis: str = "auto"
) -> SliceGeometry:
    """Choose the slice axis for ``axis`` from direction cosines (column d = world dir of index axis d).

    The slice axis is the index axis most aligned with the plane's normal (axial: world z,
    coronal: y, sagittal: x); of the two remaining axes, rows/columns take the assignment that
    best matches the display convention (module docstring), flipped where their sign disagrees.
    "auto" is :func:`auto_axis`.  For a 2D shape a plane name is accepted and ignored (a 2D image
    is one frame, shown as stored).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        _parse_plane(axis, ("auto", "image", *PLANES))
        _check_direction(direction, 2)
        return SliceGeometry("image", shape, None, 1, 0, False, False)
    if len(shape) != 3:
        raise InputError(f"shape: expected a 2D or 3D image, got {len(shape)} dimensions {shape}")
    d = _check_direction(direction, 3)
    plane = _parse_plane(axis)
    plane = _auto_plane(shape, d) if plane == "auto" else plane
    normal, (w_row, s_row), (w_col, s_col) = _PLANE_AXES[plane]
    a = np.abs(d)
    slice_axis = int(np.argmax(a[normal]))
    p, q = (ax for ax in range(3) if ax != slice_axis)
    if a[w_row, p] + a[w_col, q] >= a[w_row, q] + a[w_col, p]:
        row_axis, col_axis = p, q
    else:
        row_axis, col_axis = q, p
    flip_rows = bool(s_row * d[w_row, row_axis] < 0)
    flip_cols = bool(s_col * d[w_col, col_axis] < 0)
    return SliceGeometry(cast(Plane, plane), shape, slice_axis, row_axis, col_axis, flip_rows, flip_cols)


def slice_geometry(volume: Volume, axis: str = "auto") -> SliceGeometry:
    """The :class:`SliceGeometry` of ``volume`` for plane ``axis`` ("auto" = :func:`auto_axis`)."""
    if volume.ndim not in (2, 3):
        raise InputError(f"{volume.source}: expected a 2D or 3D image, got {volume.ndim} dimensions")
    return slice_geometry_from_direction(volume.shape, volume.direction, axis)


def _check_array(array: np.ndarray, geom: SliceGeometry) -> None:
    if array.ndim < geom.ndim or tuple(array.shape[: geom.ndim]) != geom.shape:
        raise InputError(
            f"array: shape {tuple(array.shape)} does not match the slice geometry's volume shape {geom.shape}"
        )


def volume_to_frames(array: np.ndarray, geom: SliceGeometry) -> np.ndarray:
    """Index-order array ``(n_i, n_j[, n_k], *C)`` -> frames ``(T, H, W, *C)`` (contiguous copy).

    Trailing axes beyond the geometry's dimensions (e.g. RGB channels) are carried along.
    """
    arr = np.asarray(array)
    _check_array(arr, geom)
    rest = tuple(range(geom.ndim, arr.ndim))
    if geom.slice_axis is None:
        out = np.transpose(arr, (geom.row_axis, geom.col_axis, *rest))[None]
    else:
        out = np.transpose(arr, (geom.slice_axis, geom.row_axis, geom.col_axis, *rest))
    if geom.flip_rows:
        out = out[:, ::-1]
    if geom.flip_cols:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def frames_to_volume(frames: np.ndarray, geom: SliceGeometry) -> np.ndarray:
    """Frames ``(T, H, W, *C)`` -> index-order array ``(n_i, n_j[, n_k], *C)``; exact inverse of
    :func:`volume_to_frames`."""
    f = np.asarray(frames)
    if f.ndim < 3 or tuple(f.shape[:3]) != geom.frame_shape:
        raise InputError(
            f"frames: shape {tuple(f.shape)} does not match the slice geometry's frames {geom.frame_shape}"
        )
    if geom.flip_rows:
        f = f[:, ::-1]
    if geom.flip_cols:
        f = f[:, :, ::-1]
    rest = tuple(range(3, f.ndim))
    if geom.slice_axis is None:
        order = [geom.row_axis, geom.col_axis]
        f = f[0]
        rest = tuple(r - 1 for r in rest)
    else:
        order = [geom.slice_axis, geom.row_axis, geom.col_axis]
    # frames axis n holds index axis order[n]; invert that permutation.
    inverse = tuple(int(n) for n in np.argsort(order))
    return np.ascontiguousarray(np.transpose(f, (*inverse, *rest)))
