"""``fifo``: SAM 2's memory rule (``SAM2Base._prepare_memory_conditioned_features``, eval mode).

For a frame ``f`` tracked forward (``reverse`` mirrors every offset):

* conditioning (prompted) entries, all of them or the ``max_cond_frames`` closest (the closest
  before ``f``, the closest at/after ``f``, then the rest by ``|t - f|``), with ``tpos = 0``;
* for ``tpos = 1 .. num_maskmem-1``: the non-conditioning entry ``t_rel = num_maskmem - tpos``
  frames back (``tpos = num_maskmem-1`` is frame ``f-1``). With ``stride`` r > 1, ``t_rel = 1``
  is still ``f-1`` and ``t_rel >= 2`` is ``floor((f-2)/r)*r - (t_rel-2)*r``. A missing frame is
  filled by an unselected conditioning entry of that frame, else skipped;
* object pointers: the selected conditioning entries (with ``only_obj_ptrs_in_the_past``, only
  those at or before ``f``), ``tdiff = (f - t) * (+1 | -1 in reverse)`` when ``use_signed_tpos``
  else ``|f - t|``; then the entries at ``f-1, f-2, ...`` (non-conditioning, or unselected
  conditioning) for ``tdiff = 1 .. min(num_frames, max_obj_ptrs) - 1``, stopping at the
  sequence's ends.

Entry order mirrors the reference's dictionaries: conditioning entries keep the order in which
they first became conditioning (re-adding a frame with the same ``prompted`` flag keeps its
place; a change of flag moves it to the end). That order only matters for the floating-point
order of attention sums and for ties in the "closest" rule when ``max_cond_frames`` is set.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from medsam2.engine.memory.base import (
    EMPTY_SELECTION,
    MemoryEntry,
    MemoryPolicy,
    MemorySelection,
    SelectedMemory,
    SelectedPointer,
    check_frame_idx,
    check_int,
)
from medsam2.errors import ConfigError

__all__ = ["FifoPolicy", "select_closest_cond"]


def select_closest_cond(
    frame_idx: int, cond: dict[int, MemoryEntry], max_cond_frames: int
) -> tuple[dict[int, MemoryEntry], dict[int, MemoryEntry]]:
    """Split conditioning entries into (selected, unselected), SAM 2's "closest" rule.

    With ``max_cond_frames == -1`` or few enough entries, all are selected in ``cond``'s order.
    Otherwise: the closest frame before ``frame_idx``, the closest at or after it, then the
    remaining frames by ``|t - frame_idx|`` (ties keep ``cond``'s order) up to the limit.
    """
    if max_cond_frames == -1 or len(cond) <= max_cond_frames:
        return dict(cond), {}
    chosen: list[int] = []
    before = [t for t in cond if t < frame_idx]
    after = [t for t in cond if t >= frame_idx]
    if before:
        chosen.append(max(before))
    if after:
        chosen.append(min(after))
    rest = sorted((t for t in cond if t not in chosen), key=lambda t: abs(t - frame_idx))
    chosen.extend(rest[: max(max_cond_frames - len(chosen), 0)])
    selected = {t: cond[t] for t in chosen}
    unselected = {t: e for t, e in cond.items() if t not in selected}
    return selected, unselected


class FifoPolicy(MemoryPolicy):
    """SAM 2's memory selection (see the module docstring for the exact rule).

    Args:
        num_maskmem: memory slots including the conditioning slot (SAM 2: 7, i.e. the 6 most
            recent non-conditioning frames). ``0`` disables memory (empty selections).
        max_obj_ptrs: SAM 2's ``max_obj_ptrs_in_encoder`` (16).
        only_obj_ptrs_in_the_past: SAM 2's ``only_obj_ptrs_in_the_past_for_eval`` (True).
        use_signed_tpos: SAM 2's ``use_signed_tpos_enc_to_obj_ptrs`` (v1: False, 2.1: True).
        max_cond_frames: SAM 2's ``max_cond_frames_in_attn``; ``-1`` = all, else ``>= 2``.
        stride: SAM 2's ``memory_temporal_stride_for_eval`` (1).
    """

    name = "fifo"

    def __init__(
        self,
        num_maskmem: int = 7,
        max_obj_ptrs: int = 16,
        only_obj_ptrs_in_the_past: bool = True,
        use_signed_tpos: bool = True,
        max_cond_frames: int = -1,
        stride: int = 1,
    ) -> None:
        self.num_maskmem = check_int("num_maskmem", num_maskmem, 0)
        self.max_obj_ptrs = check_int("max_obj_ptrs", max_obj_ptrs, 1)
        self.stride = check_int("stride", stride, 1)
        if max_cond_frames != -1 and (not isinstance(max_cond_frames, int) or max_cond_frames < 2):
            raise ConfigError(f"max_cond_frames must be -1 (all) or an int >= 2, got {max_cond_frames!r}")
        self.max_cond_frames = max_cond_frames
        self.only_obj_ptrs_in_the_past = bool(only_obj_ptrs_in_the_past)
        self.use_signed_tpos = bool(use_signed_tpos)
        self._cond: dict[int, MemoryEntry] = {}
        self._non_cond: dict[int, MemoryEntry] = {}

    @classmethod
    def from_model_config(cls, cfg: Any, **overrides: Any) -> FifoPolicy:
        """Build from a model config (``medsam2.config.ModelConfig`` or SAM 2-named attributes)."""
        kwargs: dict[str, Any] = {
            "num_maskmem": cfg.num_maskmem,
            "max_obj_ptrs": cfg.max_obj_ptrs_in_encoder,
            "only_obj_ptrs_in_the_past": cfg.only_obj_ptrs_in_the_past_for_eval,
            "use_signed_tpos": cfg.use_signed_tpos_enc_to_obj_ptrs,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def __repr__(self) -> str:
        return (
            f"FifoPolicy(num_maskmem={self.num_maskmem}, max_obj_ptrs={self.max_obj_ptrs}, "
            f"only_obj_ptrs_in_the_past={self.only_obj_ptrs_in_the_past}, "
            f"use_signed_tpos={self.use_signed_tpos}, max_cond_frames={self.max_cond_frames}, "
            f"stride={self.stride})"
        )

    def reset(self) -> None:
        self._cond.clear()
        self._non_cond.clear()

    def add(self, entry: MemoryEntry) -> None:
        """Store ``entry`` (in place if its frame already has an entry of the same kind)."""
        own, other = (self._cond, self._non_cond) if entry.prompted else (self._non_cond, self._cond)
        other.pop(entry.frame_idx, None)
        own[entry.frame_idx] = entry

    def remove(self, frame_idx: int) -> None:
        self._cond.pop(frame_idx, None)
        self._non_cond.pop(frame_idx, None)

    def entries(self) -> list[MemoryEntry]:
        return sorted([*self._cond.values(), *self._non_cond.values()], key=lambda e: e.frame_idx)

    def memory_frame(self, frame_idx: int, t_rel: int, reverse: bool) -> int:
        """The frame SAM 2 reads for the memory ``t_rel`` steps back (``t_rel >= 1``)."""
        r = self.stride
        if t_rel == 1:
            return frame_idx + 1 if reverse else frame_idx - 1
        if reverse:
            return -(-(frame_idx + 2) // r) * r + (t_rel - 2) * r
        return ((frame_idx - 2) // r) * r - (t_rel - 2) * r

    def select(
        self,
        frame_idx: int,
        reverse: bool = False,
        query_embed: Tensor | None = None,
        num_frames: int | None = None,
    ) -> MemorySelection:
        """SAM 2's memories and pointers for ``frame_idx`` (``query_embed`` is ignored)."""
        frame_idx = check_frame_idx(frame_idx)
        if num_frames is not None and (isinstance(num_frames, bool) or num_frames < 1):
            raise ValueError(f"num_frames must be None or an int >= 1, got {num_frames!r}")
        if self.num_maskmem == 0:
            return EMPTY_SELECTION
        selected, unselected = select_closest_cond(frame_idx, self._cond, self.max_cond_frames)
        memories = [SelectedMemory(e, 0) for e in selected.values()]
        for tpos, t in self._memory_slots(frame_idx, reverse):
            entry = self._non_cond.get(t, unselected.get(t))
            if entry is not None:
                memories.append(SelectedMemory(entry, tpos))
        pointers = self._pointers(frame_idx, reverse, num_frames, selected, unselected)
        return MemorySelection(tuple(memories), tuple(pointers))

    def reads(self, frame_idx: int, reverse: bool = False, num_frames: int | None = None) -> frozenset[int]:
        """The frames :meth:`select` looks up besides the conditioning entries: its memory slots
        and its pointer window (the same helpers ``select`` uses)."""
        if self.num_maskmem == 0:
            return frozenset()
        slots = (t for _, t in self._memory_slots(frame_idx, reverse))
        return frozenset((*slots, *(t for _, t in self._pointer_slots(frame_idx, reverse, num_frames))))

    def _memory_slots(self, frame_idx: int, reverse: bool) -> list[tuple[int, int]]:
        """(tpos, frame) for ``tpos = 1 .. num_maskmem-1``: the frame SAM 2 reads for each slot."""
        return [
            (tpos, self.memory_frame(frame_idx, self.num_maskmem - tpos, reverse))
            for tpos in range(1, self.num_maskmem)
        ]

    def _pointer_slots(self, frame_idx: int, reverse: bool, num_frames: int | None) -> list[tuple[int, int]]:
        """(tdiff, frame) of the non-conditioning pointer window, stopping at the sequence's ends."""
        window = self.max_obj_ptrs if num_frames is None else min(num_frames, self.max_obj_ptrs)
        slots = []
        for tdiff in range(1, window):
            t = frame_idx + tdiff if reverse else frame_idx - tdiff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            slots.append((tdiff, t))
        return slots

    def _pointers(
        self,
        frame_idx: int,
        reverse: bool,
        num_frames: int | None,
        selected: dict[int, MemoryEntry],
        unselected: dict[int, MemoryEntry],
    ) -> list[SelectedPointer]:
        sign = -1 if reverse else 1
        pointers: list[SelectedPointer] = []
        for t, entry in selected.items():
            if self.only_obj_ptrs_in_the_past and (t < frame_idx if reverse else t > frame_idx):
                continue
            tdiff = (frame_idx - t) * sign if self.use_signed_tpos else abs(frame_idx - t)
            pointers.append(SelectedPointer(entry, tdiff))
        for tdiff, t in self._pointer_slots(frame_idx, reverse, num_frames):
            found = self._non_cond.get(t, unselected.get(t))
            if found is not None:
                pointers.append(SelectedPointer(found, tdiff))
        return pointers
