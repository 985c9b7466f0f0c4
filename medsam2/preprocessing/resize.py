"""Frames in [0, 1] -> model input tensors, and low-resolution logits -> frame size.

Model input: grey frames ``(T, H, W)`` (or RGB ``(T, H, W, 3)``) in [0, 1] are resized to
``S x S`` (aspect ratio not kept, as in SAM 2), repeated to 3 channels and normalised with the
ImageNet mean/std.  Resizing uses ``torch.nn.functional.interpolate(..., align_corners=False,
antialias=True)``; with ``antialias=True`` torch's bilinear and bicubic kernels are PIL's (the same
filter support when downsampling, PIL's bicubic a = -0.5), so ``mode="bicubic"`` reproduces SAM 2's
video loader (PIL bicubic) except for its 8-bit quantisation of the input.  The default is
``"bilinear"`` (no overshoot, slightly smoother).  The result is clamped to [0, 1] before the
mean/std step, as PIL's 8-bit resize clamps.

Chunking: pass ``start``/``stop`` (or use :class:`ModelFrames`) so that a long volume is never held
at model size all at once; chunked results equal the full conversion exactly (frames are independent).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from medsam2.errors import InputError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelFrames",
    "ResizeMode",
    "to_model_frames",
    "upsample_logits",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
ResizeMode = Literal["bilinear", "bicubic"]
_MODES = ("bilinear", "bicubic")


def _check_frames(frames01: np.ndarray | torch.Tensor) -> tuple[int, int, int]:
    shape = tuple(frames01.shape)
    grey = len(shape) == 3
    rgb = len(shape) == 4 and shape[3] == 3
    if not (grey or rgb) or min(shape) == 0:
        raise InputError(
            f"frames01: expected shape (T, H, W) or (T, H, W, 3) with no empty axis, got {shape}"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def _check_options(image_size: int, mode: str) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise InputError(f"image_size: expected a positive integer, got {image_size!r}")
    if mode not in _MODES:
        raise InputError(f"mode: unknown resize mode {mode!r}; expected one of {', '.join(_MODES)}")


def _check_range(start: int, stop: int | None, num_frames: int) -> tuple[int, int]:
    stop = num_frames if stop is None else stop
    if not 0 <= start < stop <= num_frames:
        raise InputError(f"frames: slice range [{start}, {stop}) is not inside [0, {num_frames}) or is empty")
    return int(start), int(stop)


def to_model_frames(
    frames01: np.ndarray | torch.Tensor,
    image_size: int,
    *,
    start: int = 0,
    stop: int | None = None,
    mode: ResizeMode = "bilinear",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Frames ``[start, stop)`` of ``frames01`` ``(T, H, W)`` / ``(T, H, W, 3)`` in [0, 1]
    -> float32 tensor ``(stop - start, 3, S, S)`` with ``S = image_size``, ImageNet-normalised.

    Only the requested frames are converted (and copied to ``device``).
    """
    num_frames, height, width = _check_frames(frames01)
    _check_options(image_size, mode)
    start, stop = _check_range(start, stop, num_frames)
    chunk = frames01[start:stop]
    if isinstance(chunk, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
    else:
        x = chunk.to(torch.float32)
    x = x.to(device) if device is not None else x
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if (height, width) != (image_size, image_size):
        size = (image_size, image_size)
        x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp_(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ModelFrames:
    """Lazy view of ``frames01`` ``(T, H, W)`` at model size: converts frames only when asked.

    ``len(mf)`` is T, ``mf[t]`` is one ``(3, S, S)`` tensor, ``mf.get(a, b)`` frames ``[a, b)`` and
    ``mf.chunks(n)`` yields ``(start, tensor)`` pieces of at most ``n`` frames.
    """

    def __init__(
        self,
        frames01: np.ndarray | torch.Tensor,
        image_size: int,
        *,
        mode: ResizeMode = "bilinear",
        device: torch.device | str | None = None,
    ) -> None:
        num_frames, height, width = _check_frames(frames01)
        _check_options(image_size, mode)
        self.frames01 = frames01
        self.image_size = image_size
        self.mode: ResizeMode = mode
        self.device = device
        self.num_frames = num_frames
        self.frame_size = (height, width)

    def __len__(self) -> int:
        return self.num_frames

    def get(self, start: int, stop: int) -> torch.Tensor:
        """Frames ``[start, stop)`` -> ``(stop - start, 3, S, S)``."""
        return to_model_frames(
            self.frames01, self.image_size, start=start, stop=stop, mode=self.mode, device=self.device
        )

    def __getitem__(self, t: int) -> torch.Tensor:
        """Frame ``t`` (negative counts from the end) -> ``(3, S, S)``."""
        if not -self.num_frames <= t < self.num_frames:
            raise IndexError(f"frame {t} is outside [0, {self.num_frames})")
        t = t % self.num_frames
        return self.get(t, t + 1)[0]

    def chunks(self, chunk_size: int = 16) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, (n, 3, S, S))`` for consecutive chunks of at most ``chunk_size`` frames."""
        if chunk_size <= 0:
            raise InputError(f"chunk_size: expected a positive integer, got {chunk_size}")
        for start in range(0, self.num_frames, chunk_size):
            yield start, self.get(start, min(start + chunk_size, self.num_frames))


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Low-res logits ``(N, C, h, w)`` -> ``(N, C, H, W)`` with ``(H, W) = size``.

    Bilinear, ``align_corners=False``, as SAM 2 post-processing; dtype kept.
    """
    if logits.ndim != 4:
        raise InputError(f"logits: expected shape (N, C, h, w), got {tuple(logits.shape)}")
    height, width = (int(s) for s in size)
    if height <= 0 or width <= 0:
        raise InputError(f"size: expected a positive (H, W), got {tuple(size)}")
    if tuple(logits.shape[-2:]) == (height, width):
        return logits
    return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
