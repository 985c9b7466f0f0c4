"""Prompts simulated from ground truth for evaluation (exact definitions in docs/evaluate.md).

Coordinates are frame pixels (x = column, y = row) on a (T, H, W) stack, as the engine takes them.

* slice choice: ``largest`` (most object pixels; ties -> lowest index), ``median-z`` (the median
  of the slice indices containing the object, rounded down to a present slice), ``center`` (the
  middle of the object's first..last slice, or the nearest present slice);
* ``box``: the tight box, each side moved outwards by U(0, ``jitter``) pixels (clipped to the frame);
* ``point``: a positive click at the maximum of the Euclidean distance transform of the
  largest connected component (its "centre", always inside the object);
* ``mask``: the slice's ground-truth mask;
* corrective click: the maximum of the distance transform (in mm) inside the largest 3D
  connected component of the error ``prediction XOR truth``; positive where the object was
  missed, negative where the prediction leaked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from medsam2.errors import ConfigError

__all__ = [
    "SimPrompt",
    "SLICE_RULES",
    "PROMPT_TYPES",
    "choose_slice",
    "make_prompt",
    "centre_point",
    "corrective_click",
]

SLICE_RULES = ("largest", "median-z", "center")
PROMPT_TYPES = ("box", "point", "mask")


@dataclass(frozen=True)
class SimPrompt:
    """One simulated prompt on frame ``frame``: a box, clicks (label 1/0) and/or a mask."""

    frame: int
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        return "mask" if self.mask is not None else "box" if self.box is not None else "point"

    def to_json(self) -> dict[str, Any]:
        """The prompt for tables and manifests (a mask as its pixel count)."""
        out: dict[str, Any] = {"frame": self.frame, "kind": self.kind}
        if self.box is not None:
            out["box"] = [round(v, 2) for v in self.box]
        if self.points:
            out["points"] = [[round(x, 2), round(y, 2)] for x, y in self.points]
            out["labels"] = list(self.labels)
        if self.mask is not None:
            out["mask_pixels"] = int(np.count_nonzero(self.mask))
        return out


def _present(truth: np.ndarray) -> np.ndarray:
    return np.flatnonzero(truth.reshape(truth.shape[0], -1).any(axis=1))


def choose_slice(truth: np.ndarray, rule: str) -> int:
    """The frame to prompt for a (T, H, W) truth with at least one object pixel."""
    present = _present(truth)
    if present.size == 0:
        raise ValueError("choose_slice: the object is absent")
    if rule == "largest":
        return int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    if rule == "median-z":
        return int(present[(present.size - 1) // 2])
    if rule == "center":
        mid = (int(present[0]) + int(present[-1])) / 2.0
        return int(present[np.argmin(np.abs(present - mid))])
    raise ConfigError(f"--slice {rule}: choose one of {', '.join(SLICE_RULES)}")


def centre_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the distance-transform maximum of the largest component of a 2D mask."""
    comps, n = ndimage.label(mask)
    if n == 0:
        raise ValueError("centre_point: the mask is empty")
    sizes = np.bincount(comps.ravel())[1:]
    largest = comps == (int(np.argmax(sizes)) + 1)
    dist = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(c), float(r)


def _box(mask: np.ndarray, jitter: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    pad = rng.uniform(0.0, jitter, size=4) if jitter > 0 else np.zeros(4)
    x0, y0 = max(0.0, cols[0] - pad[0]), max(0.0, rows[0] - pad[1])
    x1, y1 = min(w - 1.0, cols[-1] + pad[2]), min(h - 1.0, rows[-1] + pad[3])
    return float(x0), float(y0), float(x1), float(y1)


def make_prompt(
    truth: np.ndarray, frame: int, kind: str, jitter: float = 0.0, rng: np.random.Generator | None = None
) -> SimPrompt:
    """A ``box``/``point``/``mask`` prompt on ``frame`` of a (T, H, W) truth (object present there)."""
    mask = np.asarray(truth[frame], bool)
    if not mask.any():
        raise ValueError(f"make_prompt: the object is absent from frame {frame}")
    if kind == "box":
        return SimPrompt(frame, box=_box(mask, jitter, rng or np.random.default_rng(0)))
    if kind == "point":
        return SimPrompt(frame, points=(centre_point(mask),), labels=(1,))
    if kind == "mask":
        return SimPrompt(frame, mask=mask)
    raise ConfigError(f"--prompt {kind}: choose one of {', '.join(PROMPT_TYPES)}")


def corrective_click(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> SimPrompt | None:
    """The next corrective click for (T, H, W) masks; None when the prediction is exact.

    ``spacing``: mm per frame axis (T, H, W), so the distance transform is physical.
    """
    error = np.logical_xor(pred, truth)
    comps, n = ndimage.label(error)
    if n == 0:
        return None
    sizes = np.bincount(comps.ravel())[1:]
    largest = comps == (int(np.argmax(sizes)) + 1)
    dist = ndimage.distance_transform_edt(np.pad(largest, 1), sampling=list(spacing))[1:-1, 1:-1, 1:-1]
    t, r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    label = 1 if truth[t, r, c] else 0
    return SimPrompt(int(t), points=((float(c), float(r)),), labels=(label,))
