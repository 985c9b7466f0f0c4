"""Write a propagation's results into an (already staged) output folder.

``masks/<stem>.png`` for every input (frames a one-way propagation did not reach get an empty
mask), ``overlays/<stem>.png``, ``propagation.gif`` and ``summary.json``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.engine.session import FrameOutput
from medsam2.errors import InputError
from medsam2.outputs import (
    GifRecorder,
    SegmentationSummary,
    label_dtype,
    labels_from_logits,
    render_overlay,
    to_rgb8,
    write_label_png,
    write_overlay_png,
)

__all__ = ["ResultWriter", "display_rgb"]


def display_rgb(path: Path) -> np.ndarray:
    """An input image as (H, W, 3) uint8 for overlays (16-bit and float images min-max scaled)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings(), Image.open(path) as img:
            warnings.simplefilter("ignore")  # Pillow warns on odd tags; the frames were checked when read
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                return to_rgb8(np.asarray(img))
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


class ResultWriter:
    """Turns ``FrameOutput``s into files under ``stage`` and a summary."""

    def __init__(
        self,
        stage: Path,
        paths: Sequence[Path],
        stems: Sequence[str],
        objects: Mapping[int, str | None],
        prompted: Mapping[int, Sequence[int]],
        meta: Mapping[str, Any],
        overlays: bool = True,
        gif: bool = False,
    ) -> None:
        self.stage = stage
        self.paths = list(paths)
        self.stems = list(stems)
        self.overlays = overlays
        self.dtype = label_dtype(list(objects))
        self.gif = GifRecorder() if gif else None
        self.summary = SegmentationSummary(self.stems, objects, prompted, meta)
        self.done: set[int] = set()
        (stage / "masks").mkdir()
        if overlays:
            (stage / "overlays").mkdir()

    def _write(self, idx: int, labels: np.ndarray) -> None:
        write_label_png(self.stage / "masks" / f"{self.stems[idx]}.png", labels)
        if self.overlays or self.gif is not None:
            image = display_rgb(self.paths[idx])
            if image.shape[:2] != labels.shape:
                raise InputError(f"{self.paths[idx]}: changed size while it was being segmented")
            if self.overlays:
                rendered = write_overlay_png(
                    self.stage / "overlays" / f"{self.stems[idx]}.png", image, labels
                )
            else:
                rendered = render_overlay(image, labels)
            if self.gif is not None:
                self.gif.add(idx, rendered)
        self.done.add(idx)

    def add(self, out: FrameOutput) -> None:
        """Write one propagated frame."""
        labels = labels_from_logits(out.logits, out.obj_ids, self.dtype)
        self._write(out.frame_idx, labels)
        self.summary.add(out.frame_idx, labels, out.obj_ids, out.object_scores.tolist(), out.ious.tolist())

    def finish(self, frame_size: Any) -> dict[str, Any]:
        """Empty masks for frames never reached, then the GIF and ``summary.json``; returns the summary."""
        for idx in range(len(self.paths)):
            if idx not in self.done:
                self._write(idx, np.zeros(frame_size(idx), dtype=self.dtype))
        if self.gif is not None:
            self.gif.write(self.stage / "propagation.gif")
        self.summary.write(self.stage / "summary.json")
        return self.summary.to_dict()
