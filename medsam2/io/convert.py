"""SimpleITK image <-> `Volume` conversion, frame selection and the checks every reader shares.

`Volume.array` is in the file's index order (i, j, k): the transpose of SimpleITK's
``GetArrayFromImage`` (which is k, j, i), with a trailing component axis kept last.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from medsam2.errors import InputError
from medsam2.types import Volume

__all__ = [
    "array_to_image",
    "check_geometry",
    "image_geometry",
    "image_to_array",
    "quiet_itk",
    "select_frame",
    "sitk_reason",
    "validate_volume",
]


def sitk_reason(exc: BaseException) -> str:
    """The useful last line of a SimpleITK/ITK exception, without file/line prefixes."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    text = re.sub(r"^(sitk::ERROR:|ITK ERROR:)\s*", "", text)
    text = re.sub(r"^\w+ImageIO\(0x[0-9a-f]+\):\s*", "", text)
    if "Refusing to change spacing" in text:
        text = f"the header gives a zero or negative voxel spacing ({text})"
    return text[:300]


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """Silence ITK's warning printouts (they go to stderr from C++) during a read or write."""
    before = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(before)


def image_geometry(image: sitk.Image) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
    """(spacing, origin, direction (D, D) with column d = world direction of axis d)."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    spacing = tuple(float(s) for s in image.GetSpacing())
    origin = tuple(float(o) for o in image.GetOrigin())
    return spacing, origin, direction


def image_to_array(image: sitk.Image) -> np.ndarray:
    """Pixel array in index order (i, j[, k[, t]]) with components (if more than one) last."""
    arr = sitk.GetArrayFromImage(image)
    dim = image.GetDimension()
    spatial = tuple(range(dim))[::-1]
    if arr.ndim > dim:
        if arr.shape[-1] == 1:
            return arr[..., 0].transpose(spatial)
        return arr.transpose(spatial + (dim,))
    return arr.transpose(spatial)


def select_frame(
    array: np.ndarray,
    geometry: tuple[tuple[float, ...], tuple[float, ...], np.ndarray],
    ndim: int,
    frame: int | None,
    source: str,
) -> tuple[np.ndarray, tuple[tuple[float, ...], tuple[float, ...], np.ndarray]]:
    """Reduce a 4D (i, j, k, t) image to the 3D frame ``frame``; other dimensions pass through.

    A 4D image with a single frame is taken as 3D without asking. A 4D image whose direction
    mixes time and space cannot be reduced and is refused.
    """
    spacing, origin, direction = geometry
    if ndim > 4:
        raise InputError(f"{source}: {ndim}D images are not supported (only 2D, 3D and 4D with frame=)")
    if ndim < 4:
        if frame is not None:
            raise InputError(f"{source}: frame={frame} was given but the image is {ndim}D, not 4D")
        return array, geometry
    n_frames = int(array.shape[3])
    if frame is None:
        if n_frames != 1:
            raise InputError(
                f"{source}: is a 4D image with {n_frames} frames (volumes); choose one with "
                f"frame=INDEX (0..{n_frames - 1}; CLI: --frame INDEX)"
            )
        frame = 0
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < n_frames:
        raise InputError(f"{source}: frame={frame!r} is out of range; the image has frames 0..{n_frames - 1}")
    if not (np.allclose(direction[:3, 3], 0, atol=1e-6) and np.allclose(direction[3, :3], 0, atol=1e-6)):
        raise InputError(f"{source}: the 4D direction matrix mixes time and space; cannot take a 3D frame")
    sub = (tuple(spacing[:3]), tuple(origin[:3]), np.array(direction[:3, :3]))
    return np.ascontiguousarray(array[:, :, :, int(frame)]), sub


def check_geometry(volume: Volume) -> None:
    """Refuse zero/negative/non-finite spacing, non-finite origin/direction and a singular direction."""
    sp = np.asarray(volume.spacing, dtype=np.float64)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(
            f"{volume.source}: voxel spacing {tuple(volume.spacing)} has a zero, negative or non-finite "
            "value; fix the header (every spacing must be > 0 mm)"
        )
    origin = np.asarray(volume.origin, dtype=np.float64)
    direction = np.asarray(volume.direction, dtype=np.float64)
    if not np.all(np.isfinite(origin)) or not np.all(np.isfinite(direction)):
        raise InputError(f"{volume.source}: origin or direction contains NaN/Inf; fix the header")
    if abs(float(np.linalg.det(direction))) < 1e-6:
        raise InputError(f"{volume.source}: direction matrix is singular; fix the header")


def validate_volume(volume: Volume) -> Volume:
    """Refuse zero-size images, bad spacing/direction and NaN/Inf voxels (each with a clear message)."""
    if any(s == 0 for s in volume.array.shape):
        raise InputError(f"{volume.source}: image has zero size (shape {tuple(volume.array.shape)})")
    check_geometry(volume)
    arr = volume.array
    if arr.dtype.kind == "c":
        raise InputError(f"{volume.source}: complex-valued images are not supported (take magnitude first)")
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(v) for v in bad[0][: volume.ndim])
            raise InputError(
                f"{volume.source}: {len(bad)} voxel(s) are NaN or infinite (first at index {first}); "
                "replace them with a finite value (e.g. 0) before segmenting"
            )
    return volume


def array_to_image(
    array: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
) -> sitk.Image:
    """A scalar SimpleITK image from an index-order array (i, j[, k]) and its geometry."""
    ndim = len(spacing)
    if array.ndim != ndim:
        raise InputError(f"array has {array.ndim} dimensions but the geometry has {ndim}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(tuple(range(ndim))[::-1])))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(v) for v in np.asarray(direction, dtype=np.float64).reshape(-1)))
    return image
