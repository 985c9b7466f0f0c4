"""Geometry primitives for the synthetic phantoms: a normalised grid, deformed superellipsoids, tubes.

Everything works on volumes in the file's own index order ``(i, j, k)``. Shapes are placed in
*normalised* coordinates ``(u, v, w)``: ``u = (i - (N_i - 1) / 2) / (N_i / 2)`` (and likewise v for
j, w for k), so each axis spans about [-1, 1] across the field of view whatever the shape and
spacing. Tubes (vessels) are measured in millimetres, so their cross-sections stay round under
anisotropic spacing. All functions are pure and deterministic given their arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "Shape", "bezier", "random_wobble", "rotation", "tube_stamps"]

Slices = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Grid:
    """A voxel grid of ``shape`` (i, j, k) with ``spacing`` (mm per index axis)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def half_mm(self) -> np.ndarray:
        """Half the field of view along each index axis, in mm, shape (3,)."""
        return np.asarray(self.shape, np.float64) * np.asarray(self.spacing, np.float64) / 2.0

    @property
    def inplane_mm(self) -> float:
        """The smaller in-plane (i, j) half field of view in mm: the length unit of in-plane sizes."""
        return float(min(self.half_mm[0], self.half_mm[1]))

    def to_index(self, norm: np.ndarray) -> np.ndarray:
        """Normalised coordinates (..., 3) -> continuous voxel index (..., 3)."""
        n = np.asarray(self.shape, np.float64)
        return np.asarray(norm, np.float64) * n / 2.0 + (n - 1.0) / 2.0

    def to_mm(self, norm: np.ndarray) -> np.ndarray:
        """Normalised coordinates (..., 3) -> mm from voxel 0 along the index axes (..., 3)."""
        return self.to_index(norm) * np.asarray(self.spacing, np.float64)

    def box(self, lo: np.ndarray, hi: np.ndarray) -> Slices | None:
        """Index slices covering the normalised box [lo, hi] (each (3,)), or None if it misses the grid."""
        a = np.ceil(self.to_index(np.asarray(lo, np.float64))).astype(int)
        b = np.floor(self.to_index(np.asarray(hi, np.float64))).astype(int) + 1
        a = np.clip(a, 0, self.shape)
        b = np.clip(b, 0, self.shape)
        if np.any(b <= a):
            return None
        return (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))

    def coords(self, sl: Slices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable normalised coordinates (u (n,1,1), v (1,m,1), w (1,1,p)) of a sub-box, float32."""
        out = []
        for d, s in enumerate(sl):
            n = self.shape[d]
            c = (np.arange(s.start, s.stop, dtype=np.float32) - (n - 1) / 2.0) / (n / 2.0)
            shp = [1, 1, 1]
            shp[d] = c.size
            out.append(c.reshape(shp))
        return out[0], out[1], out[2]


def rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """A (3, 3) rotation: ``yaw`` about w (in the axial plane), then ``pitch`` about v, ``roll`` about u."""
    cz, sz = np.cos(yaw), np.sin(yaw)
    cy, sy = np.cos(pitch), np.sin(pitch)
    cx, sx = np.cos(roll), np.sin(roll)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    return rz @ ry @ rx


def random_wobble(rng: np.random.Generator, n: int = 3, amp: float = 0.07) -> np.ndarray:
    """Random low-frequency surface deformation: ``n`` rows of (amplitude, kx, ky, kz, phase).

    The radial level of a shape becomes ``r / (1 + sum(a * sin(k . p + phase)))`` with p the shape's
    own unit coordinates, so |k| of about 1.5-4 rad gives one or two bumps across the shape.
    """
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = direction * rng.uniform(1.5, 4.0, size=(n, 1))
    a = amp * rng.uniform(0.5, 1.0, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    return np.concatenate([a, k, phase], axis=1)


@dataclass(frozen=True)
class Shape:
    """A deformed superellipsoid in normalised coordinates.

    ``center`` (3,), ``semi`` semi-axes (3,), ``rot`` (3, 3) rotation whose columns are the shape's
    axes, ``exponent`` (2 = ellipsoid, larger = boxier) and ``wobble`` rows from `random_wobble`.
    """

    center: np.ndarray
    semi: np.ndarray
    rot: np.ndarray
    exponent: float = 2.0
    wobble: np.ndarray | None = None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """A conservative normalised bounding box (lo, hi), each (3,)."""
        slack = 1.0 + (0.0 if self.wobble is None else float(np.abs(self.wobble[:, 0]).sum()))
        ext = np.abs(self.rot) @ (np.asarray(self.semi) * slack)
        return self.center - ext, self.center + ext

    def level(self, grid: Grid) -> tuple[Slices, np.ndarray] | None:
        """Sub-box slices and the radial level there (float32, <= 1 inside), or None if off-grid."""
        sl = grid.box(*self.bounds())
        return None if sl is None else (sl, self.level_in(grid, sl))

    def level_in(self, grid: Grid, sl: Slices) -> np.ndarray:
        """The radial level (float32, <= 1 inside) on the sub-box ``sl`` of ``grid``."""
        u, v, w = grid.coords(sl)
        du, dv, dw = u - self.center[0], v - self.center[1], w - self.center[2]
        local = []
        for a in range(3):
            r = self.rot[:, a] / self.semi[a]
            local.append(np.float32(r[0]) * du + np.float32(r[1]) * dv + np.float32(r[2]) * dw)
        e = float(self.exponent)
        if e == 2.0:
            level = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2)
        else:
            level = (np.abs(local[0]) ** e + np.abs(local[1]) ** e + np.abs(local[2]) ** e) ** (1.0 / e)
        if self.wobble is not None:
            bump = np.ones_like(level)
            for a_, kx, ky, kz, ph in self.wobble:
                arg = np.float32(kx) * local[0] + np.float32(ky) * local[1] + np.float32(kz) * local[2]
                bump += np.float32(a_) * np.sin(arg + np.float32(ph))
            level = level / bump
        return level.astype(np.float32, copy=False)


def bezier(control: np.ndarray, n: int) -> np.ndarray:
    """``n`` points (n, D) on the Bezier curve with control points (m, D)."""
    # De Casteljau on all t at once.
    level = np.repeat(np.asarray(control, np.float64)[None], n, axis=0)  # (n, m, D)
    tt = np.linspace(0.0, 1.0, n)[:, None, None]
    while level.shape[1] > 1:
        level = level[:, :-1] * (1 - tt) + level[:, 1:] * tt
    return level[:, 0]


def _resample(points_mm: np.ndarray, radii_mm: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline (n, 3) mm with radii (n,) at arc-length intervals of ``step`` * radius."""
    seg = np.linalg.norm(np.diff(points_mm, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    out_s = [0.0]
    while out_s[-1] < s[-1]:
        r = float(np.interp(out_s[-1], s, radii_mm))
        out_s.append(out_s[-1] + max(step * r, 1e-3))
    q = np.minimum(np.asarray(out_s), s[-1])
    pts = np.stack([np.interp(q, s, points_mm[:, d]) for d in range(3)], axis=1)
    return pts, np.interp(q, s, radii_mm)


def tube_stamps(
    grid: Grid, points_mm: np.ndarray, radii_mm: np.ndarray, step: float = 0.4
) -> Iterator[tuple[Slices, np.ndarray]]:
    """A tube as a union of balls along a centreline: yields (sub-box slices, bool mask) per ball.

    ``points_mm`` (n, 3) are mm from voxel 0 along the index axes, ``radii_mm`` (n,) the radius at
    each point; balls are placed every ``step`` radii of arc length (surface ripple < 2% of r).
    """
    sp = np.asarray(grid.spacing, np.float64)
    pts, radii = _resample(np.asarray(points_mm, np.float64), np.asarray(radii_mm, np.float64), step)
    for c, r in zip(pts, radii, strict=True):
        lo = np.clip(np.ceil((c - r) / sp).astype(int), 0, grid.shape)
        hi = np.clip(np.floor((c + r) / sp).astype(int) + 1, 0, grid.shape)
        if np.any(hi <= lo):
            continue
        ax = [((np.arange(lo[d], hi[d]) * sp[d] - c[d]) ** 2).astype(np.float32) for d in range(3)]
        d2 = ax[0][:, None, None] + ax[1][None, :, None] + ax[2][None, None, :]
        yield (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])), d2 <= np.float32(r * r)
