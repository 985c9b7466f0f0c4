"""Sampling a slab of slices out of a 3D source at a random pose: the geometry half of synthesis.

A *source* is a label map (X, Y, Z) with its spacing, optionally real intensities on the same grid.
:func:`sample_slab` picks a slicing axis, a slice thickness, a field of view around the foreground,
an in-plane rotation, flips and a smooth non-linear warp, and resamples ``depth`` slices of
``size`` x ``size`` pixels: labels by nearest neighbour, intensities linearly. A 2D source (Z = 1)
becomes a pseudo-volume whose slices drift by a smooth, slowly growing displacement, so real 2D
textures still move coherently from slice to slice as anatomy does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = ["Source", "Slab", "sample_slab", "smooth_field"]


@dataclass(frozen=True)
class Source:
    """labels (X, Y, Z) int; spacing (3,) mm; image (X, Y, Z) float32 in [0, 1] or None (labels only);
    groups: named compound objects (sets of label values, e.g. "brain"); extra: float maps on the
    same grid resampled with the slab (e.g. a distance map); name: for logs."""

    name: str
    labels: np.ndarray
    spacing: tuple[float, float, float]
    image: np.ndarray | None = None
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    axes: tuple[int, ...] = (0, 1, 2)  # slicing axes this source may be cut along

    @property
    def is_2d(self) -> bool:
        return self.labels.shape[2] == 1


@dataclass
class Slab:
    """labels (D, S, S) int; image (D, S, S) float32 or None; extra maps (D, S, S)."""

    labels: np.ndarray
    image: np.ndarray | None
    extra: dict[str, np.ndarray]
    info: dict[str, object]


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], grid: tuple[int, ...], sigma: float
) -> np.ndarray:
    """A smooth random field of ``shape``: normal noise on a coarse ``grid``, cubic-upsampled, scaled by sigma."""
    coarse = rng.standard_normal(grid).astype(np.float32) * np.float32(sigma)
    zoom = [s / g for s, g in zip(shape, grid, strict=True)]
    out = ndimage.zoom(coarse, zoom, order=3, mode="nearest", grid_mode=True)
    return out[tuple(slice(0, s) for s in shape)]


def _pose(src: Source, axis: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(perm, centre voxel) for the slab: the axis order with the slice axis last, a foreground centre."""
    perm = np.array([a for a in range(3) if a != axis] + [axis])
    fg = np.argwhere(src.labels > 0)
    if len(fg) == 0:
        return perm, (np.array(src.labels.shape, float) - 1) / 2
    centre = fg[int(rng.integers(len(fg)))].astype(float)
    return perm, centre


def _fov(src: Source, perm: np.ndarray, centre: np.ndarray, rng: np.random.Generator) -> float:
    """In-plane field of view (mm) around the foreground of the centre slice, zoomed at random."""
    sp = np.asarray(src.spacing, float)[perm]
    lab = np.moveaxis(src.labels, list(perm), [0, 1, 2])
    z = int(np.clip(round(centre[perm[2]]), 0, lab.shape[2] - 1))
    fg = np.argwhere(lab[:, :, z] > 0)
    if len(fg) == 0:
        extent = np.array(lab.shape[:2], float) * sp[:2]
    else:
        extent = (fg.max(0) - fg.min(0) + 1) * sp[:2]
    full = float(np.max(np.array(lab.shape[:2]) * sp[:2]))
    if src.is_2d:  # stay mostly inside the picture whatever the rotation (mirrored beyond it)
        full = float(np.min(np.array(lab.shape[:2]) * sp[:2])) * 0.75
    return float(min(full, max(extent) * rng.uniform(0.5, 1.6)))


def _coords(
    src: Source, perm: np.ndarray, centre: np.ndarray, size: int, depth: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, object]]:
    """Source voxel coordinates (3, D, S, S) of every output pixel."""
    sp = np.asarray(src.spacing, float)
    fov = _fov(src, perm, centre, rng)
    px = fov / size
    theta = rng.uniform(-0.35, 0.35) if not src.is_2d else rng.uniform(-np.pi, np.pi)
    flips = rng.random(2) < 0.5
    thick = 0.0 if src.is_2d else max(rng.uniform(1.0, 5.0), sp[perm[2]] * 0.5)
    w, v, u = np.meshgrid(
        np.arange(depth) - (depth - 1) / 2,
        np.arange(size) - (size - 1) / 2,
        np.arange(size) - (size - 1) / 2,
        indexing="ij",
    )
    v = -v if flips[0] else v
    u = -u if flips[1] else u
    c, s = np.cos(theta), np.sin(theta)
    a_mm, b_mm = (c * v - s * u) * px, (s * v + c * u) * px
    warp = rng.uniform(0.0, 3.0)  # output pixels
    shape = (depth, size, size)
    grid = (max(2, depth // 4), 5, 5)
    da = smooth_field(rng, shape, grid, warp) * px
    db = smooth_field(rng, shape, grid, warp) * px
    if src.is_2d:  # a pseudo-volume: the drift grows from the middle slice outwards
        drift = rng.uniform(0.0, 1.5) * px
        da += w * smooth_field(rng, shape, (2, 4, 4), drift)
        db += w * smooth_field(rng, shape, (2, 4, 4), drift)
    out = np.empty((3, *shape), np.float32)
    out[perm[0]] = centre[perm[0]] + (a_mm + da) / sp[perm[0]]
    out[perm[1]] = centre[perm[1]] + (b_mm + db) / sp[perm[1]]
    out[perm[2]] = centre[perm[2]] + w * thick / sp[perm[2]]
    info = {"fov_mm": round(fov, 1), "thickness_mm": round(thick, 2), "rotation": round(theta, 3)}
    return out, info


def sample_slab(src: Source, size: int, depth: int, rng: np.random.Generator) -> Slab:
    """``depth`` slices of ``size`` x ``size`` pixels from ``src`` at a random pose (see module doc)."""
    axis = int(rng.choice(src.axes)) if not src.is_2d else 2
    perm, centre = _pose(src, axis, rng)
    coords, info = _coords(src, perm, centre, size, depth, rng)
    # a 2D picture continues as its mirror image (no smeared edges); a volume ends in background
    mode = "mirror" if src.is_2d else "constant"
    labels = ndimage.map_coordinates(src.labels, coords, order=0, mode=mode, cval=0)
    image = None
    if src.image is not None:
        image = ndimage.map_coordinates(src.image, coords, order=1, mode=mode, cval=0.0).astype(np.float32)
    extra = {k: ndimage.map_coordinates(m, coords, order=1, mode="nearest") for k, m in src.extra.items()}
    info.update(source=src.name, axis=axis)
    return Slab(labels.astype(np.int64), image, extra, info)
