"""Frame sources: what the engine propagates over (video frames, volume slices, image sets).

A source yields model-ready frames, one at a time, so a long sequence is never materialised at
model resolution. Every source reports each frame's original size, which is where output masks
are resampled to.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from torch import Tensor

from medsam2.errors import InputError
from medsam2.preprocessing.resize import to_model_frames

__all__ = ["FrameSource", "ArrayFrames", "ImageFolderFrames", "ImageListFrames", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class FrameSource(Protocol):
    """A sequence of frames for the model."""

    def __len__(self) -> int: ...

    def frame_size(self, index: int) -> tuple[int, int]:
        """(H, W) of frame `index` as the user sees it."""
        ...

    def load(self, index: int, image_size: int) -> Tensor:
        """Frame `index` as a (3, S, S) float32 tensor, ImageNet-normalised."""
        ...


def unit_float(frame: np.ndarray, where: str) -> np.ndarray:
    """(H, W) / (H, W, 3) uint8 or float [0, 1] -> float32 in [0, 1], same shape.

    uint8 is scaled by 1/255; other dtypes are refused with a message naming `where`.
    """
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3) or 0 in frame.shape:
        raise InputError(f"{where}: expected an (H, W) or (H, W, 3) array, got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    if np.issubdtype(frame.dtype, np.floating):
        return np.ascontiguousarray(frame, dtype=np.float32)
    raise InputError(f"{where}: unsupported dtype {frame.dtype}; use uint8 or float in [0, 1]")


class ArrayFrames:
    """Frames from an array (T, H, W) or (T, H, W, 3): uint8, or float already scaled to [0, 1].

    Resizing is bilinear with antialiasing (SAM 2's image transform); medical volumes reach
    here through `medsam2.preprocessing`, which windows intensities into [0, 1].
    """

    def __init__(self, frames: np.ndarray, name: str = "frames") -> None:
        arr = np.asarray(frames)
        if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] != 3) or 0 in arr.shape:
            raise InputError(f"{name}: expected an array (T, H, W) or (T, H, W, 3), got shape {arr.shape}")
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise InputError(f"{name}: contains NaN or Inf values")
            lo, hi = float(arr.min()), float(arr.max())
            if lo < 0.0 or hi > 1.0:
                raise InputError(f"{name}: float frames must lie in [0, 1], got {lo:.4g}..{hi:.4g}")
        elif arr.dtype != np.uint8:
            raise InputError(f"{name}: unsupported dtype {arr.dtype}; use uint8 or float in [0, 1]")
        self.frames = arr
        self.name = name

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def frame_size(self, index: int) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def load(self, index: int, image_size: int) -> Tensor:
        frame = unit_float(self.frames[index], f"{self.name}[{index}]")
        return to_model_frames(frame[None], image_size)[0]


def _read_pil_rgb(path: Path) -> object:
    from PIL import Image, UnidentifiedImageError

    from medsam2.io.images2d import check_image_file

    check_image_file(path)  # Pillow fills missing rows with zeros: refuse such files instead
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd tags; the error (if any) follows
            img = Image.open(path)
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    return img


class ImageListFrames:
    """Frames from image files, loaded exactly as SAM 2's video loader does.

    PIL RGB -> resize to S x S (PIL's default bicubic) -> /255 -> ImageNet mean/std. Images may
    have different sizes (an image set for One-Prompt segmentation).
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no images given")
        for p in self.paths:
            if not p.is_file():
                raise InputError(f"{p}: image file not found")
        self._sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def frame_size(self, index: int) -> tuple[int, int]:
        if index not in self._sizes:
            img = _read_pil_rgb(self.paths[index])
            w, h = img.size  # type: ignore[attr-defined]
            self._sizes[index] = (int(h), int(w))
        return self._sizes[index]

    def load(self, index: int, image_size: int) -> Tensor:
        img = _read_pil_rgb(self.paths[index])
        w, h = img.size  # type: ignore[attr-defined]
        self._sizes[index] = (int(h), int(w))
        rgb = np.array(img.convert("RGB").resize((image_size, image_size)))  # type: ignore[attr-defined]
        return to_model_frames((rgb / 255.0)[None], image_size)[0]  # already S x S: no resize


def _frame_sort_key(path: Path) -> tuple[int, int | str]:
    stem = path.stem
    return (0, int(stem)) if re.fullmatch(r"\d+", stem) else (1, stem)


class ImageFolderFrames(ImageListFrames):
    """A folder of frames (SAM 2 style `00000.jpg, 00001.jpg, ...`), in numeric order when the
    file names are integers, else in name order."""

    def __init__(self, folder: str | Path) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise InputError(f"{root}: not a folder of frames")
        paths = sorted((p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_frame_sort_key)
        if not paths:
            raise InputError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        super().__init__(paths)
        self.folder = root
