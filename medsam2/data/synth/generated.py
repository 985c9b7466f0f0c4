"""`GeneratedCases`: what every on-the-fly synthetic ``CaseSource`` shares.

Case names ``{folder}_{i:06d}``, a subset chosen by name, label values moved by ``label_offset``
(as :class:`~medsam2.data.union.DatasetUnion` requires), and a small LRU cache of generated cases.
Subclasses set ``self.spec`` (a :class:`DatasetSpec`) and build case ``i`` in :meth:`_make`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from medsam2.data.datasets import CaseFrames, DatasetSpec, cache_put
from medsam2.errors import InputError

__all__ = ["GeneratedCases", "parse_items"]


def parse_items(text: str, assign: Callable[[str, str], None]) -> None:
    """Feed each ``key=value`` of ``prefix:key=value;key=value`` to ``assign(key, raw)``.

    ``assign`` raises ValueError for an unknown key or a bad value; that, or an item without
    ``=``, becomes an InputError naming the whole text and the item.
    """
    _, _, rest = str(text).partition(":")
    for item in filter(None, (p.strip() for p in rest.split(";"))):
        key, eq, raw = item.partition("=")
        try:
            if not eq:
                raise ValueError("expected key=value")
            assign(key, raw)
        except ValueError as exc:
            raise InputError(f"training data {text!r}: {item!r}: {exc}") from None


class GeneratedCases:
    """A ``CaseSource`` of ``count`` generated cases named ``{folder}_{i:06d}``."""

    spec: DatasetSpec

    def __init__(
        self,
        folder: str,
        count: int,
        what: str,
        cases: list[str] | None,
        cache_cases: int,
        label_offset: int,
    ) -> None:
        """folder: the name prefix (also ``spec.root``); what: how errors name the data, e.g.
        ``"synthetic data (seed 0)"``."""
        self.folder = folder
        self.count = count
        self.what = what
        self.label_offset = label_offset
        all_names = [f"{folder}_{i:06d}" for i in range(count)]
        self._names = all_names if cases is None else list(cases)
        self._ids = [self._case_id(n) for n in self._names]
        self._cache: OrderedDict[int, CaseFrames] = OrderedDict()
        self.cache_cases = max(1, cache_cases)

    def _case_id(self, name: str) -> int:
        head, _, num = name.rpartition("_")
        if head != self.folder or not num.isdigit() or int(num) >= self.count:
            raise InputError(f"{self.what}: unknown case {name!r}")
        return int(num)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def classes(self) -> dict[int, str]:
        return {v + self.label_offset: n for v, n in self.spec.classes.items()}

    @property
    def where(self) -> str:
        return f"{self.what.split(' (')[0]} ({self.folder})"

    def _make(self, case: int, name: str) -> CaseFrames:
        raise NotImplementedError

    def frames(self, index: int, axis: str = "axial") -> CaseFrames:
        """Case ``index`` (generated on first use, then cached); ``axis`` is ignored."""
        case = self._ids[index]
        if case in self._cache:
            self._cache.move_to_end(case)
            return self._cache[case]
        return cache_put(self._cache, case, self._make(case, self._names[index]), self.cache_cases)
