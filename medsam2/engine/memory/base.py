"""The memory-policy interface: which stored frame records a tracked object attends to.

The engine keeps one policy per tracked object. After a frame is decoded it calls
:meth:`MemoryPolicy.add` with one :class:`MemoryEntry`; before decoding frame ``f`` it calls
:meth:`MemoryPolicy.select` and builds the memory-attention input from the returned
:class:`MemorySelection`, in the order given:

* every :class:`SelectedMemory` contributes ``h*w`` tokens, ``entry.features`` flattened to
  ``(h*w, mem_dim)``, with position ``entry.pos_enc`` flattened, plus
  ``maskmem_tpos_enc[num_maskmem - tpos - 1]`` when ``tpos`` is not ``None`` (SAM 2's temporal
  slot: ``0`` for conditioning frames, ``num_maskmem - 1`` for the frame right before the
  current one); ``tpos is None`` means "add no temporal encoding" (the MedSAM-2 2D path);
* every :class:`SelectedPointer` contributes ``entry.obj_ptr`` with a temporal encoding of
  ``tdiff`` (SAM 2: sine encoding of ``tdiff / pointer_tdiff_max(max_obj_ptrs, num_frames)``).

An empty selection means "no memory": the engine then does what SAM 2 does for an initial
conditioning frame (``no_mem_embed``). Policies hold references to the entries' tensors; they
never copy or modify them.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from medsam2.errors import ConfigError

__all__ = [
    "MemoryEntry",
    "SelectedMemory",
    "SelectedPointer",
    "MemorySelection",
    "MemoryPolicy",
    "EMPTY_SELECTION",
    "pointer_tdiff_max",
]


@dataclass(frozen=True, eq=False)
class MemoryEntry:
    """What the engine keeps of one decoded frame of one object.

    Attributes:
        frame_idx: index of the frame (slice) in the sequence, ``>= 0``.
        prompted: the frame carries a user prompt (a SAM 2 "conditioning frame").
        features: ``(mem_dim, h, w)`` memory-encoder features.
        pos_enc: ``(mem_dim, h, w)`` their spatial position encoding.
        obj_ptr: ``(d_model,)`` object pointer.
        iou: predicted IoU of the mask that was kept (a float, or a 0-d tensor that the engine
            leaves on the device; policies that read it call ``float()``).
        object_score: object-score logit (``> 0``: the object is present), float or 0-d tensor.
        image_embed: ``(d,)`` or ``(d, h, w)`` image embedding of the frame, used by
            similarity-based retrieval; ``None`` when the policy does not need it.

    Entries compare by identity (tensors have no boolean equality).
    """

    frame_idx: int
    prompted: bool
    features: Tensor
    pos_enc: Tensor
    obj_ptr: Tensor
    iou: float | Tensor
    object_score: float | Tensor
    image_embed: Tensor | None = None

    def __post_init__(self) -> None:
        if not _is_index(self.frame_idx):
            raise ValueError(f"MemoryEntry.frame_idx must be an int >= 0, got {self.frame_idx!r}")
        object.__setattr__(self, "frame_idx", int(self.frame_idx))
        if tuple(self.features.shape) != tuple(self.pos_enc.shape):
            raise ValueError(
                f"MemoryEntry(frame {self.frame_idx}): features {tuple(self.features.shape)} and "
                f"pos_enc {tuple(self.pos_enc.shape)} must have the same shape"
            )


@dataclass(frozen=True)
class SelectedMemory:
    """A memory to attend to and its temporal slot.

    ``tpos`` is SAM 2's ``t_pos``: ``0`` for conditioning frames, ``1..num_maskmem-1`` for the
    others (``num_maskmem - 1`` = nearest); the engine adds ``maskmem_tpos_enc[num_maskmem -
    tpos - 1]``. ``None``: no temporal encoding is added.
    """

    entry: MemoryEntry
    tpos: int | None


@dataclass(frozen=True)
class SelectedPointer:
    """An object pointer to attend to and the temporal distance the model encodes for it."""

    entry: MemoryEntry
    tdiff: int


@dataclass(frozen=True)
class MemorySelection:
    """The memories and object pointers for decoding one frame, in attention order."""

    memories: tuple[SelectedMemory, ...] = ()
    pointers: tuple[SelectedPointer, ...] = ()

    @property
    def memory_frames(self) -> tuple[int, ...]:
        """Frame index of each selected memory (repeats possible with sampled retrieval)."""
        return tuple(m.entry.frame_idx for m in self.memories)

    @property
    def pointer_frames(self) -> tuple[int, ...]:
        """Frame index of each selected object pointer."""
        return tuple(p.entry.frame_idx for p in self.pointers)

    @property
    def is_empty(self) -> bool:
        return not self.memories and not self.pointers


EMPTY_SELECTION = MemorySelection()


def pointer_tdiff_max(max_obj_ptrs: int, num_frames: int | None) -> int:
    """The normaliser of SAM 2's object-pointer temporal encoding: ``min(num_frames, max) - 1``.

    SAM 2 divides ``tdiff`` by this value before its sine encoding. It is clamped to ``>= 1``
    here (the reference would divide by zero for a one-frame sequence, where no pointer exists).
    """
    limit = max_obj_ptrs if num_frames is None else min(num_frames, max_obj_ptrs)
    return max(limit - 1, 1)


class MemoryPolicy(ABC):
    """Stores a tracked object's per-frame records and chooses what a new frame attends to.

    Implementations are pure bookkeeping over :class:`MemoryEntry` records: no model, no
    gradients, deterministic for a given sequence of calls.
    """

    name: ClassVar[str]

    @property
    def needs_image_embed(self) -> bool:
        """Whether :meth:`select` reads the entries' ``image_embed`` (the engine stores one per
        entry only then: at 512 px it is 1 MB per frame)."""
        return False

    @abstractmethod
    def reset(self) -> None:
        """Forget every entry and restore the initial state (including any random seed)."""

    @abstractmethod
    def add(self, entry: MemoryEntry) -> None:
        """Record a decoded frame; replaces any earlier entry of the same frame."""

    @abstractmethod
    def remove(self, frame_idx: int) -> None:
        """Forget the entry of ``frame_idx`` (its output was invalidated); no-op if absent."""

    @abstractmethod
    def select(
        self,
        frame_idx: int,
        reverse: bool = False,
        query_embed: Tensor | None = None,
        num_frames: int | None = None,
    ) -> MemorySelection:
        """Choose the memories and object pointers for decoding ``frame_idx``.

        Args:
            frame_idx: the frame about to be decoded.
            reverse: propagation runs towards lower frame indices.
            query_embed: ``(d,)`` or ``(d, h, w)`` image embedding of ``frame_idx`` (needed by
                similarity-based retrieval only).
            num_frames: length of the sequence, when known (SAM 2 bounds its pointer window
                by it).
        """

    def reads(
        self, frame_idx: int, reverse: bool = False, num_frames: int | None = None
    ) -> frozenset[int] | None:
        """Frames whose non-prompted entries :meth:`select` for ``frame_idx`` may read, whatever is stored.

        The engine's one-shot propagation uses it to drop entries that no frame still to be
        decoded can read (prompted entries are never dropped). ``None`` (the default) means
        "any stored entry": nothing is dropped by position. An override must return a superset
        of what ``select(frame_idx, reverse, num_frames=num_frames)`` can ever pick.
        """
        return None

    @abstractmethod
    def entries(self) -> list[MemoryEntry]:
        """Every stored entry, sorted by frame index (for inspection and tests)."""

    def __len__(self) -> int:
        return len(self.entries())

    def __contains__(self, frame_idx: object) -> bool:
        return any(e.frame_idx == frame_idx for e in self.entries())


def check_frame_idx(frame_idx: int) -> int:
    """Return ``frame_idx`` as an int; raise ``ValueError`` unless it is an integer ``>= 0``."""
    if not _is_index(frame_idx):
        raise ValueError(f"frame_idx must be an int >= 0, got {frame_idx!r}")
    return int(frame_idx)


def _is_index(value: object) -> bool:
    """An integer (Python or NumPy/torch scalar, not bool) that is ``>= 0``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0


def check_int(name: str, value: object, minimum: int) -> int:
    """Validate an integer constructor argument; raise ``ConfigError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Validate a string option; raise ``ConfigError`` listing the accepted values."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
