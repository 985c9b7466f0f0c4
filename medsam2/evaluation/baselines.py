"""Trivial baselines that every published Dice stands next to (DESIGN.md section 10).

They answer "how much of this score does the prompt alone explain?". Each sees exactly the prompt
the model got, plus what a user who drew that prompt knows: the object's true slice range for the
3D extrusions, and (``copy-mask``, ``prompt-copy``) the true mask of the prompted slice or image.

Frame conventions are the engine's: a stack is ``(T, H, W)``; a box is ``(x0, y0, x1, y1)`` in
pixel centres, ``x`` = column, ``y`` = row, both corners inclusive (as ``box_to_frame`` and the
predictors take it); box corners are rounded to the nearest pixel and clipped to the frame.

* ``box-fill``: the prompt box filled on the prompted slice.
* ``otsu-in-box``: Otsu's threshold of the intensities inside the box (a 256-bin histogram, the
  same definition as ``skimage.filters.threshold_otsu``; RGB is averaged to grey). Polarity: of
  the two classes (``> t`` bright, ``<= t`` dark), the object is the one that **touches the box
  border less**: the smaller fraction of the class's own pixels lying on the box's border ring
  (a tight box meets its object only where the object is widest, while the background sits in
  the box's corners and edges; this also holds for objects that fill most of their box; ties go
  to bright). Then the largest 8-connected component of that class. A constant box gives an
  empty mask (no contrast to separate). Give it the intensities the model sees (the same CT
  window or percentile normalisation): Otsu on raw CT splits bone from soft tissue.
* 3D: the slice mask (box-fill, otsu-in-box, or the true prompted-slice mask for ``copy-mask``)
  copied to every slice of the structure's **true** slice range, empty elsewhere.
* One-Prompt 2D ``prompt-copy``: a prompted image's true mask copied onto an unprompted image.
  With several prompted images, :func:`prompt_copy_dice` scores the mean over them (the expected
  Dice of copying one of them); :func:`prompt_copy` gives one mask, their pixel-wise vote (a
  pixel is foreground where at least half of them are; one prompted image: a copy). The vote
  punishes scattered targets (nuclei) as k grows, which the mean does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "Box",
    "BASELINES_3D",
    "box_pixels",
    "box_fill",
    "otsu_threshold",
    "otsu_in_box",
    "largest_component",
    "true_range",
    "extrude",
    "baselines_3d",
    "prompt_copy",
    "prompt_copy_dice",
]

Box = tuple[float, float, float, float]
BASELINES_3D = ("box-fill", "otsu-in-box", "copy-mask")


def box_pixels(box: Box, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Row and column slices of ``box`` in a frame of ``shape`` (H, W), corners inclusive."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {box}: expected x0 <= x1 and y0 <= y1")
    h, w = shape
    return slice(max(y0, 0), min(y1, h - 1) + 1), slice(max(x0, 0), min(x1, w - 1) + 1)


def box_fill(shape: tuple[int, int], box: Box) -> np.ndarray:
    """A boolean (H, W) mask, True inside ``box``."""
    out = np.zeros(shape, bool)
    out[box_pixels(box, shape)] = True
    return out


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (foreground is ``values > threshold``), as skimage defines it."""
    v = np.asarray(values, np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2.0
    w1 = np.cumsum(hist).astype(np.float64)
    w2 = np.cumsum(hist[::-1])[::-1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = np.cumsum(hist * centres) / w1
        m2 = (np.cumsum((hist * centres)[::-1]) / w2[::-1])[::-1]
    between = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(centres[int(np.nanargmax(between))])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected (2D) / 26-connected (3D) component of ``mask`` (ties: the first)."""
    mask = np.asarray(mask, bool)
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def _grey(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, np.float64)
    return img.mean(axis=-1) if img.ndim == 3 else img


def otsu_in_box(image: np.ndarray, box: Box) -> np.ndarray:
    """Otsu inside ``box`` of a (H, W) or (H, W, 3) image; polarity and component as the module says."""
    grey = _grey(image)
    rows, cols = box_pixels(box, grey.shape)
    crop = grey[rows, cols]
    bright = crop > otsu_threshold(crop)
    border = np.ones(crop.shape, bool)
    border[1:-1, 1:-1] = False
    on_border = [float(c[border].sum()) / max(float(c.sum()), 1.0) for c in (bright, ~bright)]
    fg = bright if on_border[0] <= on_border[1] else ~bright
    out = np.zeros(grey.shape, bool)
    if crop.max() > crop.min():
        out[rows, cols] = largest_component(fg)
    return out


def true_range(truth: np.ndarray) -> tuple[int, int] | None:
    """First and last frame of a (T, H, W) stack where ``truth`` is present (None if nowhere)."""
    present = np.flatnonzero(np.asarray(truth).reshape(len(truth), -1).any(axis=1))
    return (int(present[0]), int(present[-1])) if present.size else None


def extrude(mask: np.ndarray, num_frames: int, frames: tuple[int, int] | None) -> np.ndarray:
    """A (T, H, W) stack with the 2D ``mask`` on frames ``first..last`` (inclusive), empty elsewhere."""
    out = np.zeros((num_frames, *np.shape(mask)), bool)
    if frames is not None:
        out[frames[0] : frames[1] + 1] = np.asarray(mask, bool)
    return out


def baselines_3d(image: np.ndarray, truth: np.ndarray, frame: int, box: Box) -> dict[str, np.ndarray]:
    """The three 3D baselines for one structure prompted with ``box`` on ``frame``.

    image: (T, H, W[, 3]) intensities; truth: (T, H, W) boolean. Returns (T, H, W) boolean stacks
    keyed by :data:`BASELINES_3D`, each extruded over ``truth``'s true slice range.
    """
    truth = np.asarray(truth, bool)
    num, size = truth.shape[0], truth.shape[1:]
    span = true_range(truth)
    slice_masks = {
        "box-fill": box_fill((size[0], size[1]), box),
        "otsu-in-box": otsu_in_box(image[frame], box),
        "copy-mask": truth[frame],
    }
    return {name: extrude(m, num, span) for name, m in slice_masks.items()}


def prompt_copy(masks: Sequence[np.ndarray]) -> np.ndarray:
    """One-Prompt 2D baseline mask: the prompted images' true masks, voted pixel-wise (>= half)."""
    if not masks:
        raise ValueError("prompt_copy needs at least one prompted mask")
    stack = np.stack([np.asarray(m, bool) for m in masks])
    return np.asarray(stack.mean(axis=0) >= 0.5)


def prompt_copy_dice(prompted: Sequence[np.ndarray], target: np.ndarray) -> float:
    """Mean Dice of each prompted image's true mask copied onto ``target`` (both empty: 1)."""
    if not prompted:
        raise ValueError("prompt_copy_dice needs at least one prompted mask")
    t = np.asarray(target, bool)
    scores = []
    for m in prompted:
        m = np.asarray(m, bool)
        total = float(m.sum() + t.sum())
        scores.append(1.0 if total == 0 else 2.0 * float(np.logical_and(m, t).sum()) / total)
    return float(np.mean(scores))
