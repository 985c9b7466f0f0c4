"""`VideoPredictor` and `ImageSetPredictor`: the public engine facades (each holds a model)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsam2.engine.box_chain import BoxChain, check_tracker
from medsam2.engine.frames import ArrayFrames, FrameSource, ImageFolderFrames, ImageListFrames
from medsam2.engine.memory import MemoryPolicy, make_policy
from medsam2.engine.propagation import Direction, frame_output, prompt_frame, propagate
from medsam2.engine.retention import check_correctable
from medsam2.engine.session import FeatureCache, FrameOutput, FramePrompt, InferenceSession
from medsam2.engine.speed import SpeedPlan, speed_plan
from medsam2.errors import PromptError
from medsam2.model.sam2_model import Sam2Model

__all__ = ["VideoPredictor", "as_frame_source", "check_points", "check_box"]


def as_frame_source(frames: FrameSource | np.ndarray | str | Path | Sequence[str | Path]) -> FrameSource:
    """Accept an array (T, H, W[, 3]), a folder of frames, a list of image files or a source."""
    if isinstance(frames, np.ndarray):
        return ArrayFrames(frames)
    if isinstance(frames, (str, Path)):
        return ImageFolderFrames(frames)
    if isinstance(frames, Sequence) and all(isinstance(p, (str, Path)) for p in frames):
        return ImageListFrames(list(frames))
    if hasattr(frames, "load") and hasattr(frames, "frame_size"):
        return frames  # type: ignore[return-value]
    raise TypeError(f"unsupported frames: {type(frames).__name__}")


def check_points(points: Any, labels: Any, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if labels is None:
        labs = np.ones(len(pts), np.int32)
    else:
        labs = np.asarray(labels).reshape(-1)
        if len(labs) != len(pts):
            raise PromptError(f"labels: {len(labs)} labels for {len(pts)} points")
        if not set(labs.tolist()) <= {0, 1}:
            raise PromptError(
                f"labels: must be 1 (positive) or 0 (negative), got {sorted(set(labs.tolist()))}"
            )
    for x, y in pts:
        if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= w - 1 and 0 <= y <= h - 1):
            raise PromptError(f"point ({x:g}, {y:g}) is outside the frame (x 0..{w - 1}, y 0..{h - 1})")
    return pts.astype(np.float32), labs.astype(np.int32)


def check_box(box: Any, h: int, w: int) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise PromptError(f"box: expected x0,y0,x1,y1, got {box!r}")
    if b[2] < b[0] or b[3] < b[1]:
        raise PromptError(f"box: x1 < x0 or y1 < y0 in {b.tolist()}")
    if b[0] < 0 or b[1] < 0 or b[2] > w - 1 or b[3] > h - 1:
        raise PromptError(f"box {b.tolist()} is outside the frame (x 0..{w - 1}, y 0..{h - 1})")
    return b.astype(np.float32)


class VideoPredictor:
    """Segment objects through a sequence of frames from prompts on a few of them.

    memory: "fifo" (SAM 2) or "self-sorting" (MedSAM-2); memory_options go to the policy
    (see docs/memory.md). cache_size bounds the number of encoded frames kept. speed: "exact"
    (default, SAM 2's float32 math) or "fast" (bf16 image encoder and memory modules where
    the device supports it; see `medsam2.engine.speed`). one_shot: propagate with memory flat in
    the number of frames (each frame's result and memory dropped once no later frame can read
    them; same masks), for jobs that never correct a frame afterwards (`segment_volume`); a
    prompt on an already propagated frame of the same object is then refused. tracker: how
    unprompted frames are segmented: "memory" (SAM 2's memory attention) or "box-chain" (a box
    around the previous frame's mask, for slices of a volume; a `BoxChain` gives its settings;
    see `medsam2.engine.box_chain`); None (default): the one the model's config names
    (``model.config.tracker``: "memory" for every SAM 2 checkpoint, "box-chain" for the
    embedded ``nano-track``).
    """

    def __init__(
        self,
        model: Sam2Model,
        memory: str = "fifo",
        cache_size: int = 8,
        progress: bool = False,
        speed: str | SpeedPlan = "exact",
        one_shot: bool = False,
        tracker: str | BoxChain | None = None,
        **memory_options: Any,
    ) -> None:
        self.model = model
        if tracker is None:
            tracker = model.config.tracker
        if isinstance(tracker, BoxChain):
            self.box_chain: BoxChain | None = tracker
        else:
            self.box_chain = BoxChain() if check_tracker(tracker) == "box-chain" else None
        self.one_shot = bool(one_shot)
        self.speed = speed_plan(speed, model.device)
        self.memory = memory
        self.memory_options = dict(memory_options)
        self.cache_size = cache_size
        self.progress = progress
        make_policy(memory, **self._policy_kwargs())  # validate the options now, not mid-run
        self.session: InferenceSession | None = None

    @property
    def tracker(self) -> str:
        """The tracker in use: "memory" or "box-chain"."""
        return "memory" if self.box_chain is None else "box-chain"

    def _policy_kwargs(self) -> dict[str, Any]:
        cfg = self.model.config
        kwargs: dict[str, Any] = {
            "num_maskmem": cfg.num_maskmem,
            "max_obj_ptrs": cfg.max_obj_ptrs_in_encoder,
            "only_obj_ptrs_in_the_past": cfg.only_obj_ptrs_in_the_past_for_eval,
            "use_signed_tpos": cfg.use_signed_tpos_enc_to_obj_ptrs,
        }
        kwargs.update(self.memory_options)
        return kwargs

    def _new_policy(self) -> MemoryPolicy:
        return make_policy(self.memory, **self._policy_kwargs())

    def start(self, frames: FrameSource | np.ndarray | str | Path | Sequence[str | Path]) -> InferenceSession:
        """Open a session over `frames` (array (T, H, W[, 3]), a folder, image paths or a FrameSource)."""
        source = as_frame_source(frames)
        self.session = InferenceSession(
            source=source,
            image_size=self.model.image_size,
            policy_factory=self._new_policy,
            cache=FeatureCache(self.cache_size),
            device=self.model.device,
            speed=self.speed,
            one_shot=self.one_shot,
            box_chain=self.box_chain,
        )
        return self.session

    def _require(self) -> InferenceSession:
        if self.session is None:
            raise RuntimeError("call start(frames) first")
        return self.session

    def add_prompt(
        self,
        frame: int,
        obj_id: int = 1,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask: Any = None,
        clear: bool = False,
    ) -> FrameOutput:
        """Add prompts for `obj_id` on `frame` and return that frame's masks.

        points (N, 2) x,y in frame pixels with labels (1 positive / 0 negative, default 1); box
        x0,y0,x1,y1; mask (H, W) of the frame's size. Clicks accumulate on a frame unless
        `clear`; a new box replaces the old one; a mask replaces everything on that frame.
        """
        s = self._require()
        if not isinstance(frame, (int, np.integer)) or not 0 <= frame < s.num_frames:
            raise PromptError(f"frame {frame!r} does not exist (0..{s.num_frames - 1})")
        if points is None and box is None and mask is None:
            raise PromptError("give at least one of points, box or mask")
        frame = int(frame)
        h, w = s.source.frame_size(frame)
        obj = s.object(int(obj_id))
        check_correctable(obj, frame)  # before the prompt is stored
        old = obj.prompts.get(frame)
        prompt = FramePrompt() if (old is None or clear or mask is not None or old.mask is not None) else old
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != (h, w):
                raise PromptError(f"mask: shape {m.shape} does not match frame {frame} of shape {(h, w)}")
            prompt = FramePrompt(mask=m > 0)
        else:
            if box is not None:
                prompt.box = check_box(box, h, w)
            if points is not None:
                pts, labs = check_points(points, labels, h, w)
                prompt.points = np.concatenate([prompt.points, pts])
                prompt.labels = np.concatenate([prompt.labels, labs])
        obj.prompts[frame] = prompt
        with torch.no_grad():
            prompt_frame(self.model, s, obj.obj_id, frame)
            return frame_output(s, frame, [obj.obj_id])

    def propagate(self, direction: Direction = "both", start: int | None = None) -> Iterator[FrameOutput]:
        """Yield every frame's masks (all objects), propagating from the prompted frames."""
        gen = propagate(self.model, self._require(), direction, start, progress=self.progress)
        while True:
            with torch.no_grad():
                out = next(gen, None)
            if out is None:
                return
            yield out

    def reset(self) -> None:
        """Drop all prompts and results; keep the frames."""
        self._require().reset()

    def segment(self, direction: Direction = "both") -> dict[int, FrameOutput]:
        """Propagate and collect the outputs by frame index."""
        return {out.frame_idx: out for out in self.propagate(direction)}
