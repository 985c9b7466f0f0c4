"""`ImageSetPredictor`: One-Prompt 2D segmentation of a set of unrelated images.

Prompt one or a few images of a set; the others are segmented from memory. Unrelated images
have no temporal order, so the self-sorting bank runs with temporal encodings off
(`temporal="none"`, docs/memory.md) and the images are processed in a canonical order:
prompted images first, then the rest sorted by a fingerprint of their pixels. Results are
therefore identical whatever order the files are given in; the only randomness is the bank's
seeded sampling (`seed`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medsam2.engine.frames import ArrayFrames, FrameSource, ImageListFrames
from medsam2.engine.session import FrameOutput
from medsam2.engine.video_predictor import VideoPredictor, as_frame_source
from medsam2.errors import PromptError
from medsam2.model.sam2_model import Sam2Model

__all__ = ["ImageSetPredictor", "PermutedFrames", "fingerprint"]


class PermutedFrames:
    """A view of `source` in another order: frame i of the view is `source[order[i]]`."""

    def __init__(self, source: FrameSource, order: Sequence[int]) -> None:
        self.source = source
        self.order = list(order)

    def __len__(self) -> int:
        return len(self.order)

    def frame_size(self, index: int) -> tuple[int, int]:
        return self.source.frame_size(self.order[index])

    def load(self, index: int, image_size: int) -> Tensor:
        return self.source.load(self.order[index], image_size)


def fingerprint(source: FrameSource, index: int) -> str:
    """A content hash of one image (file bytes for files, pixels for arrays)."""
    if isinstance(source, ImageListFrames):
        return hashlib.sha1(Path(source.paths[index]).read_bytes()).hexdigest()
    if isinstance(source, ArrayFrames):
        return hashlib.sha1(np.ascontiguousarray(source.frames[index]).tobytes()).hexdigest()
    return hashlib.sha1(source.load(index, 64).numpy().tobytes()).hexdigest()


class ImageSetPredictor:
    """Segment every image of a set from prompts on a few of them (MedSAM-2's One-Prompt).

    images: a list of image files (any sizes) or an array (N, H, W[, 3]). memory_options go to
    the self-sorting policy (capacity, retrieval, k, seed, ...). Prompts refer to images by
    their position in the list given to `start` (or by file name). speed: "exact" or "fast"
    (see `VideoPredictor`).
    """

    def __init__(
        self,
        model: Sam2Model,
        memory: str = "self-sorting",
        progress: bool = False,
        speed: str = "exact",
        **memory_options: Any,
    ) -> None:
        if memory == "self-sorting":
            memory_options = {"temporal": "none", **memory_options}
        self._video = VideoPredictor(  # unrelated images: no previous slice to chain a box from
            model,
            memory=memory,
            progress=progress,
            speed=speed,
            one_shot=True,
            tracker="memory",
            **memory_options,
        )
        self.model = model
        self.source: FrameSource | None = None
        self._prompts: list[tuple[int, int, dict[str, Any]]] = []

    def start(self, images: Sequence[str | Path] | np.ndarray) -> None:
        self.source = as_frame_source(images)
        self._prompts = []

    def _index(self, image: int | str) -> int:
        src = self._require()
        if isinstance(image, str) and isinstance(src, ImageListFrames):
            names = [p.name for p in src.paths]
            matches = [i for i, p in enumerate(src.paths) if image in (p.name, str(p), p.stem)]
            if len(matches) != 1:
                raise PromptError(f"image {image!r} is not one of the {len(names)} images given")
            return matches[0]
        if not isinstance(image, (int, np.integer)) or not 0 <= int(image) < len(src):
            raise PromptError(f"image {image!r} does not exist (0..{len(src) - 1})")
        return int(image)

    def _require(self) -> FrameSource:
        if self.source is None:
            raise RuntimeError("call start(images) first")
        return self.source

    def add_prompt(self, image: int | str, obj_id: int = 1, **prompt: Any) -> None:
        """Prompt `obj_id` on one image: points/labels, box or mask in that image's pixels."""
        self._prompts.append((self._index(image), int(obj_id), prompt))

    def canonical_order(self) -> list[int]:
        """Prompted images first, then the others, each group sorted by content fingerprint."""
        src = self._require()
        prompted = {i for i, _, _ in self._prompts}
        keys = {i: fingerprint(src, i) for i in range(len(src))}
        first = sorted(prompted, key=lambda i: (keys[i], i))
        rest = sorted((i for i in range(len(src)) if i not in prompted), key=lambda i: (keys[i], i))
        return first + rest

    def segment(self) -> dict[int, FrameOutput]:
        """Masks of every object on every image, keyed by the image's position in `start`."""
        src = self._require()
        if not self._prompts:
            raise PromptError("no prompts: prompt at least one image")
        order = self.canonical_order()
        position = {orig: i for i, orig in enumerate(order)}
        self._video.start(PermutedFrames(src, order))
        for orig, obj_id, prompt in self._prompts:
            self._video.add_prompt(position[orig], obj_id, **prompt)
        results: dict[int, FrameOutput] = {}
        with torch.no_grad():
            for out in self._video.propagate(direction="forward", start=0):
                orig = order[out.frame_idx]
                results[orig] = FrameOutput(orig, out.obj_ids, out.logits, out.object_scores, out.ious)
        return results
