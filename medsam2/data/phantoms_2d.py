"""Synthetic 2D image sets for One-Prompt segmentation: fundus-like photographs and fluorescent cells.

Unlike `medsam2.types.Volume` (index order (i, j) = (column, row)), these are ordinary picture
arrays in row-major order: images (H, W, 3) RGB or (H, W) grey, labels (H, W), all uint8. Image
``t`` of a set depends only on ``(seed, t)``, so ``fundus_set(5, seed=s)[:3] == fundus_set(3, seed=s)``.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = ["CELL_LABELS", "FUNDUS_LABELS", "Sample2D", "cells_set", "fundus_set"]

FUNDUS_LABELS: dict[int, str] = {1: "optic_disc", 2: "optic_cup"}
"""Fundus label values: the cup (2) lies inside the disc; the disc label excludes the cup pixels."""

CELL_LABELS: dict[int, str] = {1: "cell"}
"""Semantic cell label (instance masks number the cells 1..n instead)."""


class Sample2D(NamedTuple):
    """One 2D sample: ``image`` uint8 (H, W, 3) or (H, W) and ``label`` uint8 (H, W), row-major."""

    image: np.ndarray
    label: np.ndarray


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, zlib.crc32(kind.encode()), index])


def _check(n: int, size: tuple[int, int]) -> tuple[int, int]:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"size must be (height, width) of at least 32 pixels, got {size}")
    return int(size[0]), int(size[1])


def _unit_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Centred row (h, 1) and column (1, w) coordinates in units of half the smaller side, and that
    unit in pixels."""
    s = min(h, w) / 2.0
    y = ((np.arange(h, dtype=np.float32) - (h - 1) / 2.0) / s)[:, None]
    x = ((np.arange(w, dtype=np.float32) - (w - 1) / 2.0) / s)[None, :]
    return y, x, s


def _curve(
    rng: np.random.Generator, y0: float, x0: float, a: float, curve: float, length: float, s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth random curve from (y0, x0) at angle ``a`` bending ``curve`` rad per unit: (ys, xs, angles)."""
    steps = int(length * s / 0.5) + 2
    tt = np.linspace(0.0, length, steps)
    theta = a + curve * tt + np.cumsum(rng.normal(0, 0.02, steps))
    ys = y0 + np.concatenate([[0.0], np.cumsum(np.sin(theta[:-1]) * np.diff(tt))])
    xs = x0 + np.concatenate([[0.0], np.cumsum(np.cos(theta[:-1]) * np.diff(tt))])
    return ys, xs, theta


def _vessel_tree(
    rng: np.random.Generator, h: int, w: int, s: float, cy: float, cx: float, r0: float
) -> np.ndarray:
    """Vessel opacity (h, w) float32 in [0, 1]: 5-7 curved, tapering, once-branching vessels leaving
    the disc centre (cy, cx) from ``r0`` out (all in units of ``s`` pixels)."""
    centre = np.zeros((h, w), bool)
    radius = np.zeros((h, w), np.float32)
    n = int(rng.integers(5, 8))
    angles = (np.arange(n) + rng.uniform(0.2, 0.8, n)) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)
    curves = []
    for a in angles:
        length, w0 = rng.uniform(0.7, 1.4), rng.uniform(0.010, 0.018)
        ys, xs, theta = _curve(
            rng, cy + r0 * np.sin(a), cx + r0 * np.cos(a), a, rng.uniform(-1.2, 1.2), length, s
        )
        curves.append((ys, xs, np.linspace(w0, 0.4 * w0, ys.size)))
        i = int(rng.uniform(0.3, 0.6) * (ys.size - 1))
        bend = rng.uniform(0.4, 0.9) * rng.choice([-1.0, 1.0])
        by, bx, _ = _curve(rng, ys[i], xs[i], theta[i] + bend, rng.uniform(-1.2, 1.2), 0.5 * length, s)
        curves.append((by, bx, np.linspace(0.6 * w0, 0.3 * w0, by.size)))
    for ys, xs, r in curves:
        rows = np.rint(ys * s + (h - 1) / 2.0).astype(int)
        cols = np.rint(xs * s + (w - 1) / 2.0).astype(int)
        ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        centre[rows[ok], cols[ok]] = True
        np.maximum.at(radius, (rows[ok], cols[ok]), (r[ok] * s).astype(np.float32))
    if not centre.any():
        return np.zeros((h, w), np.float32)
    dist, (ir, ic) = ndimage.distance_transform_edt(~centre, return_indices=True)
    return np.clip(radius[ir, ic] + 0.5 - dist, 0.0, 1.0).astype(np.float32)


def _fundus(size: tuple[int, int], rng: np.random.Generator) -> Sample2D:
    """One fundus-like RGB image (H, W, 3) and its disc (1) / cup (2) label (H, W)."""
    h, w = size
    y, x, s = _unit_grid(h, w)
    rho = np.sqrt(x * x + y * y)
    base = np.array([rng.uniform(185, 225), rng.uniform(70, 105), rng.uniform(25, 50)], np.float32)
    shade = 1.0 - 0.5 * np.clip(rho / 0.97, 0, 1) ** 2.5
    for _ in range(3):
        k, ph = rng.normal(0, 3, 2), rng.uniform(0, 2 * np.pi)
        shade = shade * (1.0 + 0.03 * np.sin(k[0] * x + k[1] * y + ph))
    side = float(rng.choice([-1.0, 1.0]))
    cy, cx = rng.uniform(-0.12, 0.12), side * rng.uniform(0.25, 0.42)
    my, mx = cy + rng.uniform(-0.05, 0.05), cx - side * rng.uniform(0.4, 0.5)
    shade = shade * (1.0 - rng.uniform(0.15, 0.3) * np.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * 0.1**2)))
    img = base * shade[..., None]
    ry = rng.uniform(0.11, 0.17)
    rx, ang = ry * rng.uniform(0.85, 1.0), rng.uniform(-0.3, 0.3)
    dx, dy = x - cx, y - cy
    xr, yr = (dx * np.cos(ang) + dy * np.sin(ang)) / rx, (-dx * np.sin(ang) + dy * np.cos(ang)) / ry
    r_disc = np.sqrt(xr * xr + yr * yr)
    cdr = rng.uniform(0.3, 0.65)
    off = rng.normal(0, 1, 2)
    off *= rng.uniform(0, 0.5 * (1 - cdr)) / np.linalg.norm(off)
    r_cup = np.sqrt((xr - off[0]) ** 2 + (yr - off[1]) ** 2) / cdr  # <= 1 implies r_disc <= 1
    disc_rgb = np.array([rng.uniform(235, 255), rng.uniform(180, 215), rng.uniform(110, 150)], np.float32)
    wd = (1.0 / (1.0 + np.exp(-(1.0 - r_disc) / 0.06)))[..., None]
    img = img * (1 - wd) + disc_rgb * rng.uniform(0.85, 1.05) * wd
    wc = (rng.uniform(0.5, 0.8) / (1.0 + np.exp(-(1.0 - r_cup) / 0.12)))[..., None]
    img = img * (1 - wc) + np.array([255, 240, 215], np.float32) * wc
    vessels = _vessel_tree(rng, h, w, s, cy, cx, 0.3 * rx)
    img = img * (1.0 - vessels[..., None] * np.array([0.45, 0.75, 0.6], np.float32))
    img = img * np.clip((0.97 - rho) * s / 1.5 + 0.5, 0, 1)[..., None] + rng.normal(0, 2.5, img.shape)
    label = np.zeros((h, w), np.uint8)
    label[r_disc <= 1.0] = 1
    label[r_cup <= 1.0] = 2
    return Sample2D(np.clip(np.rint(img), 0, 255).astype(np.uint8), label)


def fundus_set(n: int, size: tuple[int, int] = (256, 256), seed: int = 0) -> list[Sample2D]:
    """``n`` fundus-like images: RGB (H, W, 3) uint8 with an orange-red vignetted retina in a black
    field, a bright optic disc with a paler cup (cup-to-disc ratio 0.3-0.65), vessels radiating from
    the disc, a darker macula; disc position (left or right eye), size and brightness vary. Labels
    (H, W) uint8: `FUNDUS_LABELS` (1 disc rim, 2 cup; the disc is ``label >= 1``)."""
    hw = _check(n, size)
    return [_fundus(hw, _rng(seed, "fundus", t)) for t in range(n)]


def _cells(size: tuple[int, int], rng: np.random.Generator, instance: bool) -> Sample2D:
    """One grey fluorescence-like image (H, W) and its cell mask (semantic 1, or instances 1..n)."""
    h, w = size
    scale = min(h, w) / 256.0
    target = min(255, int(rng.integers(12, 30) * h * w / min(h, w) ** 2))
    cells: list[tuple[float, float, float]] = []
    for _ in range(target * 20):
        if len(cells) >= target:
            break
        r = rng.uniform(7, 15) * scale
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        if all(np.hypot(cy - oy, cx - ox) >= 0.9 * (r + orr) for oy, ox, orr in cells):
            cells.append((cy, cx, r))
    img = np.zeros((h, w), np.float32)
    label = np.zeros((h, w), np.uint8)
    for n, (cy, cx, r) in enumerate(cells, start=1):
        a, b, ang = r, r * rng.uniform(0.65, 1.0), rng.uniform(0, np.pi)
        r0, r1 = max(0, int(cy - r) - 1), min(h, int(cy + r) + 2)
        c0, c1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
        dy, dx = np.arange(r0, r1)[:, None] - cy, np.arange(c0, c1)[None, :] - cx
        q = ((dx * np.cos(ang) + dy * np.sin(ang)) / a) ** 2 + (
            (-dx * np.sin(ang) + dy * np.cos(ang)) / b
        ) ** 2
        inside = q <= 1.0
        img[r0:r1, c0:c1][inside] = (rng.uniform(90, 220) * (0.8 + 0.2 * (1.0 - q)))[inside]
        label[r0:r1, c0:c1][inside] = n if instance else 1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), 2.0 * scale)
    img *= 1.0 + 0.5 * texture / max(float(texture.std()), 1e-6) * 0.3
    img = ndimage.gaussian_filter(img, 1.2 * scale)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    img += 12.0 + 6.0 * yy * rng.uniform(-1, 1)
    img += rng.normal(0, 1, (h, w)).astype(np.float32) * np.sqrt(np.maximum(img, 0) + 4.0)
    return Sample2D(np.clip(np.rint(img), 0, 255).astype(np.uint8), label)


def cells_set(
    n: int, size: tuple[int, int] = (256, 256), seed: int = 0, *, instance: bool = False
) -> list[Sample2D]:
    """``n`` fluorescence-like cell images: grey (H, W) uint8, dark background, bright textured elliptical
    cells with soft edges, few touching: radius 7-15 px per 256 px of the smaller side, 12-30 cells
    per square of that side (fewer where they do not fit). Labels (H, W) uint8:
    semantic 1 = cell (`CELL_LABELS`), or with ``instance`` the cells numbered 1..n (at most 255)."""
    hw = _check(n, size)
    return [_cells(hw, _rng(seed, "cells", t), instance) for t in range(n)]
