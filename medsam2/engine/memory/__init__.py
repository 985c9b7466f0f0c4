"""Memory policies: which stored frames a tracked object attends to (see ``docs/memory.md``).

``fifo`` is SAM 2's rule; ``self-sorting`` is MedSAM-2's self-sorting memory bank. Both are
pure bookkeeping over :class:`MemoryEntry` records and share the :class:`MemoryPolicy`
interface; :func:`make_policy` builds one by name.
"""

from __future__ import annotations

import inspect
from typing import Any

from medsam2.engine.memory.base import (
    EMPTY_SELECTION,
    MemoryEntry,
    MemoryPolicy,
    MemorySelection,
    SelectedMemory,
    SelectedPointer,
    pointer_tdiff_max,
)
from medsam2.engine.memory.fifo import FifoPolicy
from medsam2.engine.memory.self_sorting import Admission, SelfSortingPolicy
from medsam2.errors import ConfigError

__all__ = [
    "EMPTY_SELECTION",
    "POLICIES",
    "Admission",
    "FifoPolicy",
    "MemoryEntry",
    "MemoryPolicy",
    "MemorySelection",
    "SelectedMemory",
    "SelectedPointer",
    "SelfSortingPolicy",
    "make_policy",
    "pointer_tdiff_max",
]

POLICIES: dict[str, type[MemoryPolicy]] = {
    FifoPolicy.name: FifoPolicy,
    SelfSortingPolicy.name: SelfSortingPolicy,
}


def make_policy(name: str, **kwargs: Any) -> MemoryPolicy:
    """Build a fresh memory policy by name (``"fifo"`` or ``"self-sorting"``).

    Names are case-insensitive and ``_`` is accepted for ``-``. Keyword arguments go to the
    policy's constructor. Raises ``ConfigError`` (a ``ValueError``) for an unknown name, an
    unknown argument or an invalid value.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in POLICIES:
        raise ConfigError(f"unknown memory policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    cls = POLICIES[key]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"memory policy {key!r} got unknown argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    return cls(**kwargs)
