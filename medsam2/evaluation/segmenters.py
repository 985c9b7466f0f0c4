"""What an evaluation runs: a model with a memory policy, or a trivial baseline, behind one interface.

A :class:`Segmenter` opens a :class:`SegmentSession` on one object's frame stack; prompts are
added one at a time (corrections accumulate) and ``run`` returns per-frame foreground
probabilities. Models drive :class:`~medsam2.engine.video_predictor.VideoPredictor` (the same
engine as ``medsam2 segment``); probabilities are ``sigmoid(logits)`` of its frame outputs.

Baselines (DESIGN.md section 10, :mod:`medsam2.evaluation.baselines`) see the truth, as a user
who drew the prompt would know the object's extent; they say how much of a score the prompt
alone explains. With several prompted slices (``every-k``) each slice of the true range takes
the nearest prompted slice's mask; point and mask prompts use the prompted slice's tight box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from medsam2.engine.frames import ArrayFrames, FrameSource
from medsam2.engine.propagation import Direction
from medsam2.engine.video_predictor import VideoPredictor
from medsam2.evaluation.baselines import BASELINES_3D, Box, box_fill, otsu_in_box, prompt_copy, true_range
from medsam2.evaluation.prompting import SimPrompt
from medsam2.model.sam2_model import Sam2Model

__all__ = [
    "SegmentSession",
    "Segmenter",
    "ModelSegmenter",
    "BaselineSegmenter",
    "BASELINES",
    "BASELINES_2D",
    "memory_label",
]

BASELINES = BASELINES_3D
BASELINES_2D = ("prompt-copy",)


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
    speed: str = "exact"  # exact or fast (medsam2.engine.speed)
    tracker: str | None = None  # memory or box-chain; None: the model's own (One-Prompt: memory)

    @property
    def tracker_used(self) -> str:
        """The tracker the sessions run: One-Prompt sets (``unordered``) always read the memory."""
        return "memory" if self.unordered else (self.tracker or self.model.config.tracker)

    @property
    def label(self) -> str:
        """The memory policy (and size); ``+box-chain`` when slices are chained instead."""
        base = memory_label(self.memory, self.memory_size)
        return base if self.tracker_used == "memory" else f"{base}+{self.tracker_used}"

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
        vp = VideoPredictor(
            self.model,
            memory=self.memory,
            cache_size=16,
            speed=self.speed,
            tracker=self.tracker_used,
            **self.policy_options(),
        )
        vp.start(frames)
        return _ModelSession(vp)


def _intensities(frames: FrameSource) -> list[np.ndarray] | None:
    if isinstance(frames, ArrayFrames):
        return list(frames.frames)
    return None


def _prompt_box(p: SimPrompt, truth: np.ndarray) -> Box | None:
    """The prompt's box, or the tight box of the prompted slice's truth (point/mask prompts)."""
    if p.box is not None:
        return p.box
    if not truth.any():
        return None
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


class _BaselineSession:
    def __init__(self, kind: str, truth: Sequence[np.ndarray], image: list[np.ndarray] | None) -> None:
        self.kind = kind
        self.truth = [np.asarray(t, bool) for t in truth]
        self.image = image
        self.prompts: dict[int, SimPrompt] = {}

    def add(self, p: SimPrompt) -> None:
        if p.frame not in self.prompts or p.box is not None or p.mask is not None:
            self.prompts[p.frame] = p

    def _slice_mask(self, frame: int) -> np.ndarray:
        truth = self.truth[frame]
        if self.kind == "copy-mask":
            return truth
        box = _prompt_box(self.prompts[frame], truth)
        if box is None:
            return np.zeros(truth.shape, bool)
        if self.kind == "otsu-in-box" and self.image is not None:
            return otsu_in_box(self.image[frame], box)
        return box_fill(truth.shape, box)

    def run(self, direction: Direction) -> list[np.ndarray]:
        probs = [np.zeros(t.shape, np.float32) for t in self.truth]
        frames = sorted(self.prompts)
        if not frames:
            return probs
        if self.kind == "prompt-copy":
            vote = prompt_copy(
                [self.truth[f] for f in frames if self.truth[f].shape == self.truth[frames[0]].shape]
            )
            return [vote.astype(np.float32) if p.shape == vote.shape else p for p in probs]
        span = true_range(np.stack(self.truth))
        masks = {f: self._slice_mask(f) for f in frames}
        for t in range(span[0], span[1] + 1) if span else ():
            probs[t] = masks[min(frames, key=lambda f: (abs(f - t), f))].astype(np.float32)
        return probs


@dataclass
class BaselineSegmenter:
    """A baseline of :mod:`medsam2.evaluation.baselines`: ``box-fill``, ``otsu-in-box``,
    ``copy-mask`` (3D: the nearest prompted slice's mask over the true slice range) or
    ``prompt-copy`` (One-Prompt 2D: the prompted images' true masks voted onto the others)."""

    kind: str
    memory: str = ""
    memory_size: int | None = None

    @property
    def label(self) -> str:
        return self.kind

    def open(self, frames: FrameSource, truth: Sequence[np.ndarray]) -> SegmentSession:
        return _BaselineSession(self.kind, truth, _intensities(frames))
