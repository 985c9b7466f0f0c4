"""Typed inference state for one sequence: frames, a bounded feature cache, prompts, outputs.

The model stays stateless; everything a propagation needs to remember lives here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from medsam2.engine.frames import FrameSource
from medsam2.engine.key_cache import KeyCache
from medsam2.engine.memory import MemoryEntry, MemoryPolicy
from medsam2.engine.speed import EXACT, SpeedPlan
from medsam2.model.sam2_model import DecoderOutput, FrameFeatures

if TYPE_CHECKING:  # box_chain's steps import this module
    from medsam2.engine.box_chain import BoxChain

__all__ = ["FramePrompt", "FrameResult", "ObjectState", "FeatureCache", "InferenceSession", "FrameOutput"]


@dataclass
class FramePrompt:
    """Prompts of one object on one frame, in the frame's own pixels (x = column, y = row).

    points (N, 2) float32 with labels (N,) int32 (1 positive, 0 negative); box (4,) x0,y0,x1,y1;
    mask (H, W) bool. A mask replaces points and box on that frame.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    box: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def num_points(self) -> int:
        """Points as the decoder sees them (box corners count as two)."""
        return len(self.points) + (2 if self.box is not None else 0)


@dataclass
class FrameResult:
    """What the engine keeps per object and frame (in a one-shot session: per prompted frame,
    and per tracked frame only until its output is made).

    low_res_logits (1, 1, 4h, 4w) float32; obj_ptr (1, C); scores stay on the device so that
    propagation needs no host read per frame; memory features are stored in
    bfloat16 like SAM 2's video predictor (half the memory; identical results).
    """

    frame_idx: int
    low_res_logits: Tensor
    score_logit: Tensor  # () object-score logit, left on the device (read it through object_score)
    iou_pred: Tensor  # () predicted IoU of the kept mask, on the device (read it through iou)
    obj_ptr: Tensor
    prompted: bool
    reverse: bool
    memory: MemoryEntry | None  # the frame's memory entry; kept for prompted frames only
    decoder: DecoderOutput | None = None  # full decoder output, kept only when training

    @property
    def object_score(self) -> float:
        """The object-score logit as a Python float (a host read)."""
        return float(self.score_logit)

    @property
    def iou(self) -> float:
        """The predicted IoU as a Python float (a host read)."""
        return float(self.iou_pred)


@dataclass
class ObjectState:
    """One tracked object: its prompts, results and memory policy instance."""

    obj_id: int
    policy: MemoryPolicy
    prompts: dict[int, FramePrompt] = field(default_factory=dict)
    results: dict[int, FrameResult] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> direction it was tracked in
    keys: KeyCache = field(default_factory=KeyCache)  # memory-attention keys of its memories (inference)
    pruned: bool = False  # a one-shot propagation dropped results/memories a correction would read

    def prompted_frames(self) -> list[int]:
        return sorted(self.prompts)


@dataclass(frozen=True)
class FrameOutput:
    """One propagation step: masks of every object on one frame, at the frame's resolution.

    logits (N, H, W) float32 (>0: inside); object_scores (N,) logits (>0: present);
    ious (N,) predicted IoU; obj_ids in the same order.
    """

    frame_idx: int
    obj_ids: tuple[int, ...]
    logits: Tensor
    object_scores: Tensor
    ious: Tensor

    @property
    def masks(self) -> Tensor:
        """(N, H, W) bool."""
        return self.logits > 0


class FeatureCache:
    """LRU cache of encoded frames, bounded by a number of frames.

    At 512 px a frame's features (with high-resolution skips) take about 4 MB; the bound keeps a
    300-slice volume from holding them all.
    """

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError("feature cache capacity must be >= 1")
        self.capacity = capacity
        self._items: OrderedDict[int, FrameFeatures] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, index: int, compute: Callable[[int], FrameFeatures]) -> FrameFeatures:
        if index in self._items:
            self._items.move_to_end(index)
            self.hits += 1
            return self._items[index]
        self.misses += 1
        feats = compute(index)
        self._items[index] = feats
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return feats

    def put(self, index: int, feats: FrameFeatures) -> None:
        """Cache features computed elsewhere (a batch encoded ahead), evicting the oldest."""
        self._items[index] = feats
        self._items.move_to_end(index)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __contains__(self, index: object) -> bool:
        return index in self._items

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[FrameFeatures]:
        """The cached frames' features, least recently used first (a snapshot, for accounting)."""
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()


@dataclass
class InferenceSession:
    """State of one sequence being segmented. Create through a predictor's `start()`."""

    source: FrameSource
    image_size: int
    policy_factory: Callable[[], MemoryPolicy]
    cache: FeatureCache
    device: torch.device
    objects: dict[int, ObjectState] = field(default_factory=dict)
    memory_dtype: torch.dtype = torch.bfloat16  # SAM 2 stores memories in bf16; training uses float32
    keep_decoder_outputs: bool = False  # training: keep every candidate mask and IoU prediction
    speed: SpeedPlan = EXACT  # exact (float32) or fast (bf16 encoder and memory modules)
    # one-shot (volumes, image sets): propagation drops each frame's result once it is output and
    # each unprompted memory once no frame still to be decoded can read it, so memory stays flat in
    # the number of frames; masks are unchanged, but frames cannot be corrected afterwards
    one_shot: bool = False
    # None: track unprompted frames through the memory (SAM 2); else box chaining
    # (`medsam2.engine.box_chain`) with these settings
    box_chain: BoxChain | None = None

    @property
    def num_frames(self) -> int:
        return len(self.source)

    def object(self, obj_id: int) -> ObjectState:
        """The state of `obj_id`, created on first use."""
        if obj_id not in self.objects:
            self.objects[obj_id] = ObjectState(obj_id, self.policy_factory())
        return self.objects[obj_id]

    def prompted_frames(self) -> list[int]:
        return sorted({f for o in self.objects.values() for f in o.prompts})

    def reset(self) -> None:
        """Forget every prompt and result (the frames and their cached features stay)."""
        self.objects.clear()

    def remove_object(self, obj_id: int) -> None:
        self.objects.pop(obj_id, None)
