"""What an evaluation runs: a model with a memory policy, or a trivial baseline, behind one interface.

A :class:`Segmenter` opens a :class:`SegmentSession` on one object's frame stack; prompts are
added one at a time (corrections accumulate) and ``run`` returns per-frame foreground
probabilities. Models drive :class:`~medsam2.engine.video_predictor.VideoPredictor` (the same
engine as ``medsam2 segment``); probabilities are ``sigmoid(logits)`` of its frame outputs.

Baselines (DESIGN.md section 10) see the truth, as a user who drew the prompt would know the
object's extent; they say how much of a score the prompt alone explains:

* ``box-fill``: the prompted slice's box (or the tight box of a point/mask prompt's slice)
  filled and extruded over the object's true slice range (the nearest prompt per slice);
* ``mask-copy``: the true mask of the nearest prompted slice copied over the true slice range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from medsam2.engine.frames import FrameSource
from medsam2.engine.propagation import Direction
from medsam2.engine.video_predictor import VideoPredictor
from medsam2.evaluation.prompting import SimPrompt
from medsam2.model.sam2_model import Sam2Model

__all__ = [
    "SegmentSession",
    "Segmenter",
    "ModelSegmenter",
    "BaselineSegmenter",
    "BASELINES",
    "memory_label",
]

BASELINES = ("box-fill", "mask-copy")


class SegmentSession(Protocol):
    def add(self, prompt: SimPrompt) -> None: ...

    def run(self, direction: Direction) -> list[np.ndarray]: ...


class Segmenter(Protocol):
    """``label`` names it in tables; ``memory``/``memory_size`` are empty for baselines."""

    label: str
    memory: str
    memory_size: int | None

    def open(self, frames: FrameSource, truth: Sequence[np.ndarray]) -> SegmentSession: ...


def memory_label(memory: str, size: int | None) -> str:
    return memory if size is None else f"{memory}/{size}"


class _ModelSession:
    def __init__(self, vp: VideoPredictor) -> None:
        self.vp = vp

    def add(self, p: SimPrompt) -> None:
        if p.mask is not None:
            self.vp.add_prompt(p.frame, 1, mask=p.mask)
            return
        pts = list(p.points) if p.points else None
        labels = list(p.labels) if p.points else None
        self.vp.add_prompt(p.frame, 1, points=pts, labels=labels, box=p.box)

    def run(self, direction: Direction) -> list[np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for fo in self.vp.propagate(direction=direction):
            out[fo.frame_idx] = torch.sigmoid(fo.logits[0]).numpy().astype(np.float32)
        session = self.vp.session
        assert session is not None
        sizes = [session.source.frame_size(t) for t in range(session.num_frames)]
        return [out.get(t, np.zeros(sizes[t], np.float32)) for t in range(len(sizes))]


@dataclass
class ModelSegmenter:
    """A model with a memory policy: ``memory_size`` is the self-sorting bank's capacity, or fifo's
    number of memory slots (``num_maskmem``: the prompted slot + the most recent frames)."""

    model: Sam2Model
    memory: str
    memory_size: int | None = None
    seed: int = 0
    unordered: bool = False  # 2D streams of unrelated images: no temporal encodings (self-sorting)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return memory_label(self.memory, self.memory_size)

    def policy_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.memory == "self-sorting":
            opts["seed"] = self.seed
            if self.memory_size is not None:
                opts["capacity"] = self.memory_size
            if self.unordered:
                opts["temporal"] = "none"
        elif self.memory_size is not None:
            opts["num_maskmem"] = self.memory_size
        return {**opts, **self.options}

    def open(self, frames: FrameSource, truth: Sequence[np.ndarray]) -> SegmentSession:
        vp = VideoPredictor(self.model, memory=self.memory, cache_size=16, **self.policy_options())
        vp.start(frames)
        return _ModelSession(vp)


def _true_range(truth: Sequence[np.ndarray]) -> range:
    present = [t for t, m in enumerate(truth) if np.any(m)]
    return range(present[0], present[-1] + 1) if present else range(0)


class _BaselineSession:
    def __init__(self, kind: str, truth: Sequence[np.ndarray]) -> None:
        self.kind = kind
        self.truth = truth
        self.prompts: dict[int, SimPrompt] = {}

    def add(self, p: SimPrompt) -> None:
        if p.frame not in self.prompts or p.box is not None or p.mask is not None:
            self.prompts[p.frame] = p

    def _fill(self, frame: int) -> np.ndarray:
        src = np.asarray(self.truth[frame], bool)
        p = self.prompts[frame]
        if self.kind == "mask-copy":
            return src
        out = np.zeros(src.shape, bool)
        if p.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in p.box)
        elif src.any():
            rows, cols = np.flatnonzero(src.any(axis=1)), np.flatnonzero(src.any(axis=0))
            x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
        else:
            return out
        out[y0 : y1 + 1, x0 : x1 + 1] = True
        return out

    def run(self, direction: Direction) -> list[np.ndarray]:
        probs = [np.zeros(np.shape(m), np.float32) for m in self.truth]
        if not self.prompts:
            return probs
        frames = sorted(self.prompts)
        fills = {f: self._fill(f) for f in frames}
        for t in _true_range(self.truth):
            near = min(frames, key=lambda f: (abs(f - t), f))
            if fills[near].shape == probs[t].shape:
                probs[t] = fills[near].astype(np.float32)
        return probs


@dataclass
class BaselineSegmenter:
    """``box-fill`` or ``mask-copy`` (module docstring)."""

    kind: str
    memory: str = ""
    memory_size: int | None = None

    @property
    def label(self) -> str:
        return self.kind

    def open(self, frames: FrameSource, truth: Sequence[np.ndarray]) -> SegmentSession:
        return _BaselineSession(self.kind, truth)
