"""Bounded cache of memory-attention keys, one record per memory entry.

A memory's cross-attention keys (per layer, RoPE applied; :class:`MemoryKeys`) depend only on
the entry's features and position encoding, so they are computed the first time a frame
attends to the entry and reused by every later frame. Records are keyed by the entry's identity
(the cache holds the entry, so its identity cannot be reused while cached): a replaced memory is
a new entry and never hits the old record. After each frame :meth:`KeyCache.retain` keeps the
records of the memories that frame selected, plus up to ``spare`` other recently used records
whose entries are still in the memory policy; everything else is dropped. The engine clears
the cache whenever a propagation starts (prompts may have changed, or the model's weights).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from medsam2.engine.memory import MemoryEntry
from medsam2.model.memory_kv import MemoryKeys

__all__ = ["KeyCache"]


class KeyCache:
    """Keys of memory entries, bounded by ``len(last selection) + spare`` records.

    At 512 px a record holds about 4.3 MB (4 layers of 1024 x 256 float32 keys and the
    float32 features), at 1024 px four times that.
    """

    def __init__(self, spare: int = 2) -> None:
        if spare < 0:
            raise ValueError(f"spare must be >= 0, got {spare}")
        self.spare = spare
        self._items: OrderedDict[int, tuple[MemoryEntry, MemoryKeys]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, entry: MemoryEntry, compute: Callable[[MemoryEntry], MemoryKeys]) -> MemoryKeys:
        """The keys of ``entry``: cached, or computed by ``compute(entry)`` and recorded."""
        key = id(entry)
        found = self._items.get(key)
        if found is not None and found[0] is entry:
            self._items.move_to_end(key)
            self.hits += 1
            return found[1]
        self.misses += 1
        keys = compute(entry)
        self._items[key] = (entry, keys)
        return keys

    def retain(self, selected: Iterable[MemoryEntry], alive: Iterable[MemoryEntry]) -> None:
        """Keep the ``selected`` entries' records and up to ``spare`` most recently used records
        of other entries in ``alive`` (the policy's current entries); drop the rest."""
        chosen = {id(e) for e in selected}
        living = {id(e) for e in alive}
        spare = [k for k in reversed(self._items) if k not in chosen and k in living][: self.spare]
        keep = chosen | set(spare)
        for k in [k for k in self._items if k not in keep]:
            del self._items[k]

    def discard(self, entry: MemoryEntry) -> None:
        """Drop the record of ``entry`` (no-op if absent)."""
        found = self._items.get(id(entry))
        if found is not None and found[0] is entry:
            del self._items[id(entry)]

    def clear(self) -> None:
        self._items.clear()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached keys."""
        return sum(keys.nbytes for _, keys in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, entry: object) -> bool:
        found = self._items.get(id(entry))
        return found is not None and found[0] is entry
