"""Slice ordering and the geometry checks for a DICOM series (pure numpy, no file access).

Slices are ordered by their position along the slice normal, ``ImagePositionPatient · n`` with
``n = row x column`` of ``ImageOrientationPatient``; InstanceNumber and file names are ignored
(both are often wrong or shuffled). A series is refused, with a message saying what to do, when
its slices do not form one regular 3D grid: several orientations (localizers), several images
at one position (time points, echoes), missing slices (a gap > 1.5x the median step),
non-uniform steps, or positions that drift sideways from the normal (gantry tilt / shear).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medsam2.errors import InputError

__all__ = ["SliceStack", "order_slices", "parse_ds"]

GAP_FACTOR = 1.5
"""A step larger than this times the median step means missing slices."""


@dataclass(frozen=True)
class SliceStack:
    """The result of `order_slices`: file order and the regular grid the slices form."""

    order: tuple[int, ...]
    """Indices into the input list, in increasing position along ``normal``."""
    normal: tuple[float, float, float]
    step: float
    """Distance between consecutive slices (mm): (last - first) / (n - 1)."""
    origin: tuple[float, float, float]
    """ImagePositionPatient of the first slice in ``order``."""


def parse_ds(text: str | None, count: int, what: str, source: str) -> np.ndarray:
    """Parse a DICOM decimal-string value ``"a\\b\\c"`` with exactly ``count`` numbers."""
    if text is None or not text.strip():
        raise InputError(f"{source}: {what} is missing; cannot place the slices in space")
    try:
        values = np.array([float(v) for v in text.strip().split("\\")], dtype=np.float64)
    except ValueError:
        raise InputError(f"{source}: {what} {text!r} is not a list of numbers") from None
    if values.size != count or not np.all(np.isfinite(values)):
        raise InputError(f"{source}: {what} {text!r} should hold {count} finite numbers")
    return values


def _normal(orientations: np.ndarray, source: str) -> np.ndarray:
    first = orientations[0]
    if np.max(np.abs(orientations - first)) > 1e-4:
        raise InputError(
            f"{source}: the slices have different orientations (ImageOrientationPatient), e.g. a "
            "localizer/scout series or several stacks; put each stack in its own folder"
        )
    row, col = first[:3], first[3:]
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    if norm < 1e-3 or abs(float(np.dot(row, col))) > 1e-3:
        raise InputError(f"{source}: ImageOrientationPatient {first.tolist()} is degenerate")
    return normal / norm


def _check_duplicates(along: np.ndarray, source: str) -> None:
    steps = np.diff(along)
    dup = np.flatnonzero(steps < 1e-3)
    if dup.size:
        pos = along[dup[0]]
        count = int(np.sum(np.abs(along - pos) < 1e-3))
        raise InputError(
            f"{source}: {count} images share the slice position {pos:.3f} mm: the series holds several "
            "volumes (time points, echoes or acquisitions); split them into separate folders"
        )


def _check_steps(along: np.ndarray, source: str) -> float:
    steps = np.diff(along)
    median = float(np.median(steps))
    big = np.flatnonzero(steps > GAP_FACTOR * median)
    if big.size:
        i = int(big[0])
        missing = max(1, round(steps[i] / median) - 1)
        raise InputError(
            f"{source}: missing slices: the gap between positions {along[i]:.3f} and {along[i + 1]:.3f} mm "
            f"is {steps[i]:.3f} mm, {steps[i] / median:.1f}x the usual step of {median:.3f} mm (about "
            f"{missing} slice(s) missing, {big.size} gap(s) in all); copy the complete series into the folder"
        )
    tol = max(0.01 * median, 2e-3)
    if float(np.max(np.abs(steps - median))) > tol:
        raise InputError(
            f"{source}: non-uniform slice spacing (steps from {steps.min():.4f} to {steps.max():.4f} mm); "
            "resample the series to a regular grid first (e.g. with 3D Slicer or dcm2niix) and pass the result"
        )
    return float((along[-1] - along[0]) / (len(along) - 1))


def _check_tilt(positions: np.ndarray, normal: np.ndarray, source: str) -> None:
    offsets = positions - positions[0]
    along = offsets @ normal
    sideways = offsets - np.outer(along, normal)
    drift = np.linalg.norm(sideways, axis=1)
    limit = max(1e-3 * float(np.max(np.abs(along))), 2e-3)
    if float(drift.max()) > limit:
        i = int(np.argmax(drift))
        angle = float(np.degrees(np.arctan2(drift[i], abs(along[i]))))
        raise InputError(
            f"{source}: the slices are not stacked along their normal (gantry tilt or shear of about "
            f"{angle:.1f} degrees); resample the series to an orthogonal grid first (dcm2niix corrects "
            "gantry tilt; 3D Slicer can too) and pass the result"
        )


def order_slices(positions: np.ndarray, orientations: np.ndarray, source: str) -> SliceStack:
    """Order single-frame slices by position along the normal and check they form a regular grid.

    ``positions``: (n, 3) ImagePositionPatient; ``orientations``: (n, 6) ImageOrientationPatient.
    Needs n >= 2. Raises `InputError` naming ``source`` for every irregularity (module doc).
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    orientations = np.asarray(orientations, dtype=np.float64).reshape(-1, 6)
    if len(positions) < 2:
        raise InputError(f"{source}: a series needs at least 2 slices to form a volume")
    normal = _normal(orientations, source)
    along_raw = positions @ normal
    order = np.argsort(along_raw, kind="stable")
    along = along_raw[order]
    _check_duplicates(along, source)
    _check_tilt(positions[order], normal, source)
    step = _check_steps(along, source)
    first = positions[order[0]]
    return SliceStack(
        order=tuple(int(i) for i in order),
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        step=step,
        origin=(float(first[0]), float(first[1]), float(first[2])),
    )
