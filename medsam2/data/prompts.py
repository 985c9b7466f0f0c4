"""Prompt simulation for training: clicks, jittered boxes and masks drawn from a ground-truth mask.

Every function takes a ``numpy.random.Generator`` and draws from nothing else, so a prompt
depends only on the mask and the generator's state (training seeds it from (seed, step)).
Coordinates are frame pixels, x = column and y = row, as :class:`FramePrompt` expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medsam2.engine.session import FramePrompt
from medsam2.errors import ConfigError

__all__ = ["PromptSampler", "sample_clicks", "sample_box", "tight_box", "PROMPT_KINDS"]

PROMPT_KINDS = ("click", "box", "mask")


def tight_box(mask: np.ndarray) -> np.ndarray:
    """(4,) float32 x0, y0, x1, y1: the pixel extent of a non-empty (H, W) mask (inclusive)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("tight_box: the mask is empty")
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)


def sample_box(mask: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """A box around a non-empty (H, W) mask, each side moved outwards by U(0, jitter) x the box's
    width (x sides) or height (y sides), clipped to the frame. Always contains the whole mask.

    Returns (4,) float32 x0, y0, x1, y1.
    """
    h, w = mask.shape
    x0, y0, x1, y1 = tight_box(mask).astype(np.float64)
    bw, bh = x1 - x0 + 1.0, y1 - y0 + 1.0
    dx0, dy0, dx1, dy1 = rng.uniform(0.0, jitter, size=4) * np.array([bw, bh, bw, bh])
    box = np.array([x0 - dx0, y0 - dy0, x1 + dx1, y1 + dy1])
    box = np.clip(box, 0.0, [w - 1, h - 1, w - 1, h - 1])
    return box.astype(np.float32)


def _pick(coords: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.choice(len(coords), size=min(n, len(coords)), replace=False)
    return coords[np.sort(idx)]


def sample_clicks(
    mask: np.ndarray, num_positive: int, num_negative: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Positive clicks on random object pixels, negative clicks on random background pixels.

    Negatives are drawn from the background inside the object's box grown by half its size
    (where a user would click to correct a leak), or anywhere in the background when that
    region has none. mask (H, W) bool, non-empty. Returns points (N, 2) float32 x, y and
    labels (N,) int32 (1 positive, 0 negative), positives first.
    """
    fg = np.argwhere(mask)
    pos = _pick(fg, num_positive, rng)
    neg = np.zeros((0, 2), np.int64)
    if num_negative > 0:
        x0, y0, x1, y1 = tight_box(mask).astype(int)
        mx, my = (x1 - x0) // 2 + 1, (y1 - y0) // 2 + 1
        near = np.zeros_like(mask, dtype=bool)
        near[max(0, y0 - my) : y1 + my + 1, max(0, x0 - mx) : x1 + mx + 1] = True
        bg = np.argwhere(near & ~mask)
        if len(bg) == 0:
            bg = np.argwhere(~mask)
        if len(bg):
            neg = _pick(bg, num_negative, rng)
    rc = np.concatenate([pos, neg]).astype(np.float32)
    points = rc[:, ::-1].copy()  # (row, col) -> (x, y)
    labels = np.concatenate([np.ones(len(pos), np.int32), np.zeros(len(neg), np.int32)])
    return points, labels


@dataclass(frozen=True)
class PromptSampler:
    """Draws one prompt per (object, prompted frame) from the object's ground-truth mask.

    click/box/mask: relative probabilities of the prompt kinds; clicks: 1..max_clicks positive
    and 0..max_negative_clicks negative clicks; box_jitter: see :func:`sample_box`. A frame where
    the object is absent gets an empty mask prompt (it teaches the model to answer "absent").
    """

    click: float = 0.5
    box: float = 0.5
    mask: float = 0.0
    max_clicks: int = 1
    max_negative_clicks: int = 0
    box_jitter: float = 0.1

    def __post_init__(self) -> None:
        probs = (self.click, self.box, self.mask)
        if min(probs) < 0 or sum(probs) <= 0:
            raise ConfigError(f"prompt probabilities must be >= 0 and not all 0, got {probs}")
        if self.max_clicks < 1 or self.max_negative_clicks < 0:
            raise ConfigError("max_clicks must be >= 1 and max_negative_clicks >= 0")
        if not 0.0 <= self.box_jitter <= 1.0:
            raise ConfigError(f"box_jitter must lie in [0, 1], got {self.box_jitter}")

    def kind(self, rng: np.random.Generator) -> str:
        """One of "click", "box", "mask", drawn with the configured probabilities."""
        p = np.array([self.click, self.box, self.mask], np.float64)
        return PROMPT_KINDS[int(rng.choice(3, p=p / p.sum()))]

    def __call__(self, mask: np.ndarray, rng: np.random.Generator) -> FramePrompt:
        """A prompt for the object whose (H, W) ground truth is ``mask``."""
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return FramePrompt(mask=np.zeros_like(m))
        kind = self.kind(rng)
        if kind == "mask":
            return FramePrompt(mask=m.copy())
        if kind == "box":
            return FramePrompt(box=sample_box(m, self.box_jitter, rng))
        n_pos = int(rng.integers(1, self.max_clicks + 1))
        n_neg = int(rng.integers(0, self.max_negative_clicks + 1))
        points, labels = sample_clicks(m, n_pos, n_neg, rng)
        return FramePrompt(points=points, labels=labels)
