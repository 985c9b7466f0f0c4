"""Colour overlays: the image with each object's region filled translucently and outlined.

One colour per object id (a fixed palette of 20 distinct colours for ids 1..20, then colours
spread around the hue circle), identical across frames and commands, so object 3 is always
the same colour.
"""

from __future__ import annotations

import colorsys
import os

import numpy as np

from medsam2.io.atomic import atomic_output

__all__ = ["object_colour", "contours", "render_overlay", "write_overlay_png", "to_rgb8"]

_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 255, 255),
)  # fmt: skip


def object_colour(obj_id: int) -> tuple[int, int, int]:
    """RGB colour of object ``obj_id`` (>= 1)."""
    if 1 <= obj_id <= len(_PALETTE):
        return _PALETTE[obj_id - 1]
    hue = (obj_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def contours(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Inner boundary of a boolean mask: pixels of the mask with a 4-neighbour outside it."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    for _ in range(max(thickness, 1)):
        padded = np.pad(inner, 1, mode="constant", constant_values=False)
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return m & ~inner


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3|4) image of any numeric dtype -> (H, W, 3) uint8 for display."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    x = arr.astype(np.float64)
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.clip(np.nan_to_num(scaled) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_overlay(
    image: np.ndarray, labels: np.ndarray, alpha: float = 0.4, thickness: int | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 overlay of a label map on an image of the same (H, W).

    alpha: opacity of the fill; thickness: contour width in pixels (default: 1 per 256 pixels
    of the shorter side, at least 1).
    """
    rgb = to_rgb8(image)
    lab = np.asarray(labels)
    if lab.shape != rgb.shape[:2]:
        raise ValueError(f"label map {lab.shape} does not match the image {rgb.shape[:2]}")
    if thickness is None:
        thickness = max(1, min(lab.shape) // 256)
    out = rgb.astype(np.float32)
    for obj_id in np.unique(lab):
        if obj_id == 0:
            continue
        mask = lab == obj_id
        colour = np.asarray(object_colour(int(obj_id)), dtype=np.float32)
        out[mask] = (1.0 - alpha) * out[mask] + alpha * colour
        out[contours(mask, thickness)] = colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def write_overlay_png(
    path: str | os.PathLike[str], image: np.ndarray, labels: np.ndarray, alpha: float = 0.4
) -> np.ndarray:
    """Render and write an overlay PNG atomically; returns the rendered (H, W, 3) array."""
    from PIL import Image

    rendered = render_overlay(image, labels, alpha)
    with atomic_output(path) as tmp:
        Image.fromarray(rendered).save(tmp, format="PNG")
    return rendered
