"""Animated GIF of a propagation: overlay frames, reduced in size, played in frame order."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from medsam2.io.atomic import atomic_output

__all__ = ["GifRecorder"]


class GifRecorder:
    """Collect frames (any order, any sizes) and write them as one looping GIF.

    Each frame is shrunk on arrival so that its longer side is at most ``max_side`` and kept
    palette-quantised (one byte per pixel), so a long sequence stays small in memory. Frames of
    different sizes (an image set) are centred on a black canvas of the largest size.
    """

    def __init__(self, max_side: int = 256, duration_ms: int = 120) -> None:
        if max_side < 8 or duration_ms < 10:
            raise ValueError("max_side must be >= 8 and duration_ms >= 10")
        self.max_side = max_side
        self.duration_ms = duration_ms
        self._frames: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, index: int, rgb: np.ndarray) -> None:
        """Record frame ``index`` ((H, W, 3) uint8); a later frame with the same index replaces it."""
        img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
        scale = self.max_side / max(img.size)
        if scale < 1.0:
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(size, Image.Resampling.BILINEAR)
        self._frames[index] = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the recorded frames in index order, atomically."""
        if not self._frames:
            raise ValueError("no frames recorded")
        frames = [self._frames[i] for i in sorted(self._frames)]
        width = max(f.width for f in frames)
        height = max(f.height for f in frames)
        canvases = []
        for f in frames:
            canvas = Image.new("RGB", (width, height))
            canvas.paste(f.convert("RGB"), ((width - f.width) // 2, (height - f.height) // 2))
            canvases.append(canvas)
        with atomic_output(path) as tmp:
            canvases[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=canvases[1:],
                duration=self.duration_ms,
                loop=0,
            )
        return Path(path)
