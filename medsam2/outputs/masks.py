"""Label maps from per-object logits, written as PNG (value = object id, 0 = background).

One label PNG per frame or image: ``uint8`` when every object id is <= 255, else ``uint16``
(16-bit grey PNG). Where objects overlap, a pixel goes to the object with the highest logit
among those whose logit is positive (SAM 2's non-overlap rule picks the same winner).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from medsam2.io.atomic import atomic_output

__all__ = ["label_dtype", "labels_from_logits", "write_label_png", "read_label_png"]


def label_dtype(obj_ids: Sequence[int]) -> type[np.unsignedinteger]:
    """``np.uint8`` when every id fits in 8 bits, ``np.uint16`` up to 65535, else ValueError."""
    top = max(obj_ids, default=0)
    if min(obj_ids, default=1) < 1 or top > 65535:
        raise ValueError(f"object ids must lie in 1..65535 for a label PNG, got {sorted(obj_ids)}")
    return np.uint8 if top <= 255 else np.uint16


def labels_from_logits(
    logits: Tensor | np.ndarray,
    obj_ids: Sequence[int],
    dtype: type[np.unsignedinteger] | None = None,
) -> np.ndarray:
    """(N, H, W) logits of objects ``obj_ids`` -> (H, W) label map (0 where no logit is positive)."""
    x = torch.as_tensor(logits).detach().float().cpu()
    if x.ndim != 3 or x.shape[0] != len(obj_ids):
        raise ValueError(f"expected logits (N, H, W) for {len(obj_ids)} objects, got {tuple(x.shape)}")
    dt = label_dtype(obj_ids) if dtype is None else dtype
    out = np.zeros(tuple(x.shape[1:]), dtype=dt)
    if x.shape[0] == 0:
        return out
    best, arg = x.max(dim=0)
    ids = np.asarray(obj_ids, dtype=np.int64)[arg.numpy()]
    inside = (best > 0).numpy()
    out[inside] = ids[inside].astype(dt)
    return out


def write_label_png(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write a (H, W) uint8 / uint16 label map as an 8- / 16-bit grey PNG, atomically."""
    from PIL import Image

    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"label map must be (H, W) uint8 or uint16, got {arr.shape} {arr.dtype}")
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")
    return Path(path)


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label PNG written by :func:`write_label_png` (uint8 or uint16 array)."""
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img)
    return arr.astype(np.uint16) if arr.dtype.kind in "iu" and arr.dtype.itemsize > 1 else arr
