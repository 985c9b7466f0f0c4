"""``self-sorting``: MedSAM-2's self-sorting memory bank (arXiv 2408.00874; paper code
``func_2d/function.py`` of SuperMedIntel/Medical-SAM2).

Admission (non-prompted entries; the bank holds at most ``capacity`` of them):

* while the bank has room, the newcomer is appended;
* when full: ``least`` = the stored entry least similar to the newcomer; ``neighbour`` = the
  stored entry most similar to ``least`` (other than itself). If ``sim(newcomer, least) <
  sim(least, neighbour)`` (the neighbour is redundant next to ``least``; the newcomer is not)
  and ``newcomer.iou > neighbour.iou - margin``, the neighbour is evicted and the newcomer
  stored; otherwise the newcomer is dropped. Similarity is over flattened memory features.

Prompted entries are kept apart: always stored, never evicted, not counted against
``capacity``, and selected first (all of them, or the ``max_prompted`` closest). Entries with
``object_score <= 0`` are not admitted unless ``admit_absent``.

Retrieval, for the frame being decoded (non-prompted entries of that same frame are skipped):
``"sample"`` (the paper) draws ``k`` bank entries with replacement from
``softmax(sim(query_embed, image_embed) / temperature)``; ``"topk"`` takes the ``k`` most
similar; ``"all"`` takes the whole bank. Given the bank's content the result does not depend
on insertion order: candidates are taken in frame order and ties go to the lower frame index.
The bank's content itself depends on arrival order (it is a streaming rule). Sampling uses the
policy's own generator, so results depend on the seed and on the number of earlier ``select``
calls; :meth:`SelfSortingPolicy.reset` restores the seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from medsam2.engine.memory.base import (
    MemoryEntry,
    MemoryPolicy,
    MemorySelection,
    SelectedMemory,
    SelectedPointer,
    check_choice,
    check_frame_idx,
    check_int,
)
from medsam2.engine.memory.fifo import select_closest_cond
from medsam2.errors import ConfigError

__all__ = ["SelfSortingPolicy", "Admission", "similarities"]

RETRIEVALS = ("sample", "topk", "all")
TEMPORALS = ("distance", "none")
POINTER_MODES = ("selected", "none")
SIMILARITIES = ("cosine", "dot")


@dataclass(frozen=True)
class Admission:
    """What the last :meth:`SelfSortingPolicy.add` did (for logging and tests).

    ``outcome`` is one of ``"prompted"``, ``"appended"``, ``"replaced"``, ``"absent"`` (dropped:
    object score <= 0), ``"redundant"`` (dropped: not more diverse than the neighbour),
    ``"low-iou"`` (dropped: IoU test failed), ``"full"`` (dropped: bank of capacity 1).
    """

    frame_idx: int
    outcome: str
    evicted: int | None = None


def similarities(vectors: Sequence[Tensor], query: Tensor, measure: str = "cosine") -> list[float]:
    """Similarity of ``query`` to each of ``vectors`` (all flattened, computed in float64).

    Args:
        vectors: tensors of any shape with ``query.numel()`` elements each.
        query: a tensor of any shape.
        measure: ``"cosine"`` or ``"dot"``.
    """
    q = query.detach().reshape(-1).to(torch.float64)
    for v in vectors:
        if v.numel() != q.numel():
            raise ValueError(f"cannot compare tensors of {v.numel()} and {q.numel()} elements")
    m = torch.stack([v.detach().reshape(-1).to(device=q.device, dtype=torch.float64) for v in vectors])
    if measure == "cosine":
        m = F.normalize(m, dim=1)
        q = F.normalize(q, dim=0)
    return [float(s) for s in (m @ q).cpu().tolist()]


class SelfSortingPolicy(MemoryPolicy):
    """MedSAM-2's self-sorting memory bank (see the module docstring for the exact rules).

    Args:
        capacity: bank size N for non-prompted entries (paper: 16).
        margin: IoU slack of the replacement test (paper: 0.1).
        retrieval: ``"sample"`` (paper), ``"topk"`` or ``"all"``.
        k: entries retrieved by ``"sample"``/``"topk"`` (paper: its batch size, 4 in its README).
        temperature: softmax temperature of ``"sample"`` (paper: 1, on raw cosine similarity).
        similarity: ``"cosine"`` (paper) or ``"dot"``, for admission and retrieval.
        seed: seed of the policy's own ``torch.Generator``.
        temporal: ``"distance"``: prompted memories get slot 0, others SAM 2's slot for
            ``|frame distance|`` clipped to ``[1, num_maskmem-1]``; ``"none"``: no temporal
            encoding at all (``tpos=None``, the paper's 2D path; for unordered image sets).
        num_maskmem: SAM 2's memory slot count (7), for ``temporal="distance"``.
        pointers: ``"selected"``: object pointers of the selected entries; ``"none"`` (paper).
        max_obj_ptrs: cap on the number of pointers (prompted first, then nearest).
        only_obj_ptrs_in_the_past: with ``temporal="distance"``, skip pointers of frames ahead
            in the propagation direction (as SAM 2 does for prompted frames).
        use_signed_tpos: pointer ``tdiff`` signed as SAM 2.1 (else ``|distance|``, v1);
            ``temporal="none"`` gives ``tdiff = 0``.
        admit_absent: admit entries whose ``object_score <= 0`` to the bank.
        max_prompted: prompted entries attended to: ``-1`` = all, else ``>= 2`` chosen by SAM 2's
            "closest before / after / by distance" rule (as ``fifo``'s ``max_cond_frames``).
    """

    name = "self-sorting"

    def __init__(
        self,
        capacity: int = 16,
        margin: float = 0.1,
        retrieval: str = "sample",
        k: int = 4,
        temperature: float = 1.0,
        similarity: str = "cosine",
        seed: int = 0,
        temporal: str = "distance",
        num_maskmem: int = 7,
        pointers: str = "selected",
        max_obj_ptrs: int = 16,
        only_obj_ptrs_in_the_past: bool = True,
        use_signed_tpos: bool = True,
        admit_absent: bool = False,
        max_prompted: int = -1,
    ) -> None:
        self.capacity = check_int("capacity", capacity, 1)
        self.k = check_int("k", k, 1)
        self.seed = check_int("seed", seed, 0)
        self.num_maskmem = check_int("num_maskmem", num_maskmem, 2)
        self.max_obj_ptrs = check_int("max_obj_ptrs", max_obj_ptrs, 1)
        self.retrieval = check_choice("retrieval", retrieval, RETRIEVALS)
        self.similarity = check_choice("similarity", similarity, SIMILARITIES)
        self.temporal = check_choice("temporal", temporal, TEMPORALS)
        self.pointers = check_choice("pointers", pointers, POINTER_MODES)
        self.margin = _check_float("margin", margin)
        self.temperature = _check_float("temperature", temperature)
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature!r}")
        self.only_obj_ptrs_in_the_past = bool(only_obj_ptrs_in_the_past)
        self.use_signed_tpos = bool(use_signed_tpos)
        self.admit_absent = bool(admit_absent)
        if max_prompted != -1 and (not isinstance(max_prompted, int) or max_prompted < 2):
            raise ConfigError(f"max_prompted must be -1 (all) or an int >= 2, got {max_prompted!r}")
        self.max_prompted = max_prompted
        self._prompted: dict[int, MemoryEntry] = {}
        self._bank: dict[int, MemoryEntry] = {}
        self._pair: dict[tuple[int, int], float] = {}
        self._gen = torch.Generator().manual_seed(self.seed)
        self.last_admission: Admission | None = None

    def __repr__(self) -> str:
        return (
            f"SelfSortingPolicy(capacity={self.capacity}, margin={self.margin}, "
            f"retrieval={self.retrieval!r}, k={self.k}, temperature={self.temperature}, "
            f"similarity={self.similarity!r}, seed={self.seed}, temporal={self.temporal!r}, "
            f"pointers={self.pointers!r}, admit_absent={self.admit_absent}, max_prompted={self.max_prompted})"
        )

    # ---- storage -------------------------------------------------------------------------

    @property
    def needs_image_embed(self) -> bool:
        """``"sample"`` and ``"topk"`` retrieval compare image embeddings; ``"all"`` does not."""
        return self.retrieval != "all"

    def reset(self) -> None:
        self._prompted.clear()
        self._bank.clear()
        self._pair.clear()
        self._gen.manual_seed(self.seed)
        self.last_admission = None

    def entries(self) -> list[MemoryEntry]:
        return sorted([*self._prompted.values(), *self._bank.values()], key=lambda e: e.frame_idx)

    def bank(self) -> list[MemoryEntry]:
        """The non-prompted entries held in the bank, sorted by frame index."""
        return [self._bank[t] for t in sorted(self._bank)]

    def remove(self, frame_idx: int) -> None:
        self._prompted.pop(frame_idx, None)
        if frame_idx in self._bank:
            self._evict(frame_idx)

    def add(self, entry: MemoryEntry) -> None:
        """Store a prompted entry, or run the bank's admission rule on a non-prompted one."""
        self.remove(entry.frame_idx)
        if entry.prompted:
            self._prompted[entry.frame_idx] = entry
            self._record(entry, "prompted")
        elif float(entry.object_score) <= 0 and not self.admit_absent:
            self._record(entry, "absent")
        else:
            self._admit(entry)

    def _admit(self, entry: MemoryEntry) -> None:
        frames = sorted(self._bank)
        to_new: dict[int, float] = {}
        if frames:
            feats = [self._bank[t].features for t in frames]
            to_new = dict(zip(frames, similarities(feats, entry.features, self.similarity), strict=True))
        if len(frames) < self.capacity:
            self._insert(entry, to_new)
            self._record(entry, "appended")
            return
        least = min(frames, key=lambda t: (to_new[t], t))
        others = [t for t in frames if t != least]
        if not others:
            self._record(entry, "full")
            return
        neighbour = max(others, key=lambda t: (self._pair[_key(least, t)], -t))
        if not to_new[least] < self._pair[_key(least, neighbour)]:
            self._record(entry, "redundant")
        elif not float(entry.iou) > float(self._bank[neighbour].iou) - self.margin:
            self._record(entry, "low-iou")
        else:
            self._evict(neighbour)
            self._insert(entry, to_new)
            self._record(entry, "replaced", neighbour)

    def _insert(self, entry: MemoryEntry, to_new: dict[int, float]) -> None:
        for t, s in to_new.items():
            if t in self._bank:
                self._pair[_key(t, entry.frame_idx)] = s
        self._bank[entry.frame_idx] = entry

    def _evict(self, frame_idx: int) -> None:
        del self._bank[frame_idx]
        self._pair = {p: s for p, s in self._pair.items() if frame_idx not in p}

    def _record(self, entry: MemoryEntry, outcome: str, evicted: int | None = None) -> None:
        self.last_admission = Admission(entry.frame_idx, outcome, evicted)

    # ---- selection -----------------------------------------------------------------------

    def select(
        self,
        frame_idx: int,
        reverse: bool = False,
        query_embed: Tensor | None = None,
        num_frames: int | None = None,
    ) -> MemorySelection:
        """Prompted entries (frame order), then the retrieved bank entries (frame order), and pointers.

        ``query_embed`` (``(d,)`` or ``(d, h, w)``, compared with the entries' ``image_embed``)
        is required by ``"sample"`` and ``"topk"`` once the bank holds a candidate.
        ``num_frames`` is not used.
        """
        frame_idx = check_frame_idx(frame_idx)
        by_frame = {t: self._prompted[t] for t in sorted(self._prompted)}
        prompted = list(select_closest_cond(frame_idx, by_frame, self.max_prompted)[0].values())
        retrieved = self._retrieve(frame_idx, query_embed)
        memories = tuple(SelectedMemory(e, self._tpos(e, frame_idx)) for e in (*prompted, *retrieved))
        return MemorySelection(memories, self._select_pointers(frame_idx, reverse, prompted, retrieved))

    def _retrieve(self, frame_idx: int, query_embed: Tensor | None) -> list[MemoryEntry]:
        cands = [self._bank[t] for t in sorted(self._bank) if t != frame_idx]
        if not cands or self.retrieval == "all":
            return cands
        if query_embed is None:
            raise ValueError(f"retrieval={self.retrieval!r} needs query_embed (frame {frame_idx})")
        missing = [e.frame_idx for e in cands if e.image_embed is None]
        if missing:
            raise ValueError(f"retrieval={self.retrieval!r} needs image_embed; frames {missing} lack it")
        scores = similarities(
            [e.image_embed for e in cands if e.image_embed is not None], query_embed, self.similarity
        )
        if self.retrieval == "topk":
            best = sorted(range(len(cands)), key=lambda i: (-scores[i], cands[i].frame_idx))[: self.k]
            return [cands[i] for i in sorted(best)]
        probs = torch.softmax(torch.tensor(scores, dtype=torch.float64) / self.temperature, dim=0)
        drawn = torch.multinomial(probs, self.k, replacement=True, generator=self._gen)
        return [cands[i] for i in sorted(drawn.tolist())]

    def _tpos(self, entry: MemoryEntry, frame_idx: int) -> int | None:
        if self.temporal == "none":
            return None
        if entry.prompted:
            return 0
        distance = min(max(abs(frame_idx - entry.frame_idx), 1), self.num_maskmem - 1)
        return self.num_maskmem - distance

    def _select_pointers(
        self, frame_idx: int, reverse: bool, prompted: list[MemoryEntry], retrieved: list[MemoryEntry]
    ) -> tuple[SelectedPointer, ...]:
        if self.pointers == "none":
            return ()
        timed = self.temporal == "distance"
        unique = {e.frame_idx: e for e in (*prompted, *retrieved)}
        chosen = []
        for t, e in unique.items():
            if timed and self.only_obj_ptrs_in_the_past and (t < frame_idx if reverse else t > frame_idx):
                continue
            chosen.append(e)
        chosen.sort(key=lambda e: (not e.prompted, abs(frame_idx - e.frame_idx), e.frame_idx))
        sign = -1 if reverse else 1
        out = []
        for e in chosen[: self.max_obj_ptrs]:
            d = frame_idx - e.frame_idx
            tdiff = (d * sign if self.use_signed_tpos else abs(d)) if timed else 0
            out.append(SelectedPointer(e, tdiff))
        return tuple(out)


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _check_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)
