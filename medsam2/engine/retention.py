"""One-shot propagation: which per-frame state can be dropped, and when.

An interactive session keeps every frame's result (its low-resolution logits seed a correction
on that frame) and every memory entry (a correction, or the next propagation's first frames,
may read any of them). A one-shot propagation (a volume segmented from one set of prompts,
nothing corrected afterwards; `InferenceSession.one_shot`) needs far less: a tracked frame's
result only until its output is made, and an unprompted memory entry only until the last step
of the propagation whose memory rule can read it. The plan (frames in decoding order, each
with its direction) is fixed when propagation starts, so the step after which each entry is
dead is known up front, from the policy's own rule (:meth:`MemoryPolicy.reads`). Prompted
frames keep their result and memory. Dropping only what no later step reads leaves every
mask bit-identical (tests/test_engine_memory.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from medsam2.engine.memory import MemoryPolicy
from medsam2.engine.session import ObjectState
from medsam2.errors import PromptError

__all__ = ["Plan", "expiry_schedule", "release", "check_correctable"]

log = logging.getLogger(__name__)

Plan = Sequence[tuple[int, bool]]  # (frame, reverse) in decoding order, one step each


def expiry_schedule(policy: MemoryPolicy, plan: Plan, num_frames: int) -> dict[int, list[int]] | None:
    """Step -> frames whose unprompted entry can be dropped once that step is done.

    A frame's entry exists from the step that decodes it; it expires after the later of that
    step and the last step whose ``policy.reads`` includes the frame. None when the policy may
    read any stored entry (``reads`` is None, e.g. self-sorting, whose bank is bounded by its
    capacity instead): then no entry is dropped by position.
    """
    last: dict[int, int] = {}
    for step, (frame, _) in enumerate(plan):
        last[frame] = step
    for step, (frame, reverse) in enumerate(plan):
        reads = policy.reads(frame, reverse, num_frames)
        if reads is None:
            return None
        for t in reads:
            if t in last and last[t] < step:
                last[t] = step
    schedule: dict[int, list[int]] = {}
    for frame, step in last.items():
        schedule.setdefault(step, []).append(frame)
    return schedule


def release(obj: ObjectState, frame: int, expired: Sequence[int]) -> None:
    """After a step of a one-shot propagation: drop ``obj``'s result on ``frame`` (its output is
    made) and the entries of the ``expired`` frames, keeping everything of prompted frames."""
    if frame not in obj.prompts and obj.results.pop(frame, None) is not None:
        obj.pruned = True
    for t in expired:
        if t not in obj.prompts and t in obj.policy:
            obj.policy.remove(t)
            obj.pruned = True


def check_correctable(obj: ObjectState, frame: int) -> None:
    """Refuse a prompt on a frame whose state a one-shot propagation dropped (a correction there
    would read memories and logits that are gone and silently give different masks)."""
    if obj.pruned and frame in obj.tracked:
        raise PromptError(
            f"object {obj.obj_id}: frame {frame} was propagated one-shot, which keeps no state to "
            "correct it from; use a session with one_shot=False to correct masks"
        )
