"""Several nnU-Net datasets trained as one (e.g. CT and MR, phantoms and real scans).

``TrainConfig.data`` / ``medsam2 train --data`` accept a comma-separated list of dataset folders.
Each dataset keeps its own ``dataset.json`` (so its own modality and intensity normalisation);
the union gives its cases unique names (``Dataset902_PhantomsCT/PhantomsCT_000``) and its classes
unique label values: dataset ``k``'s value ``v`` becomes ``offset_k + v``, where ``offset_k`` is
the sum of the largest label values of the datasets before it. A class name shared by two
datasets gets the dataset folder's name appended (``liver@Dataset903_PhantomsMR``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from medsam2.data.datasets import CaseFrames, DatasetSpec, TrainingDataset, read_dataset_json
from medsam2.data.synth.cases import PREFIX as SYNTH_PREFIX
from medsam2.data.synth.cases import SyntheticCases
from medsam2.data.synth.families import PREFIX_2D, SyntheticImageSets
from medsam2.data.synth.shapes import PREFIX as SHAPES_PREFIX
from medsam2.data.synth.shapes import ShapeCases
from medsam2.errors import InputError

__all__ = ["CaseSource", "DatasetUnion", "open_dataset", "split_roots", "is_generated", "GENERATED"]


class CaseSource(Protocol):
    """What the training recipes and validation read: cases as frames, with their classes."""

    def __len__(self) -> int: ...

    @property
    def names(self) -> list[str]: ...

    @property
    def classes(self) -> dict[int, str]: ...

    @property
    def where(self) -> str: ...

    def is_2d(self) -> bool: ...

    def frames(self, index: int, axis: str = "axial") -> CaseFrames: ...


def split_roots(data: str) -> list[str]:
    """The dataset folders of a ``data`` option: one folder, or several separated by commas."""
    roots = [r.strip() for r in data.split(",")]
    if not all(roots):
        raise InputError(f"training data {data!r}: an empty dataset folder in the comma-separated list")
    if len(set(roots)) != len(roots):
        raise InputError(f"training data {data!r}: a dataset folder is listed twice")
    return roots


Generated = SyntheticCases | SyntheticImageSets | ShapeCases
# data-string prefix -> the generated case source it names (``prefix:key=value;...``)
GENERATED: dict[str, type[Generated]] = {
    SYNTH_PREFIX: SyntheticCases,
    PREFIX_2D: SyntheticImageSets,
    SHAPES_PREFIX: ShapeCases,
}


def is_generated(root: str | Path) -> bool:
    """Whether a ``--data`` entry names generated data (``synth:``, ``synth2d:``, ``shapes:``)."""
    return str(root).split(":", 1)[0] in GENERATED


def _open_part(
    root: str | Path, cases: list[str] | None, window: str, cache_cases: int, label_offset: int = 0
) -> TrainingDataset | Generated:
    """A dataset folder, or generated data for a ``synth:...``/``synth2d:...``/``shapes:...`` entry
    (:mod:`medsam2.data.synth`)."""
    source = GENERATED.get(str(root).split(":", 1)[0])
    if source is not None:
        return source(str(root), cases, cache_cases, label_offset)
    return TrainingDataset(root, cases, window, cache_cases, label_offset)


def _spec(root: str | Path) -> DatasetSpec:
    source = GENERATED.get(str(root).split(":", 1)[0])
    return source(str(root), []).spec if source is not None else read_dataset_json(root)


def open_dataset(
    data: str, cases: list[str] | None = None, window: str = "auto", cache_cases: int = 8
) -> TrainingDataset | Generated | DatasetUnion:
    """One dataset folder (or ``synth:...``) -> that dataset; several (comma-separated) -> :class:`DatasetUnion`."""
    roots = split_roots(data)
    if len(roots) == 1:
        return _open_part(roots[0], cases, window, cache_cases)
    return DatasetUnion(roots, cases, window, cache_cases)


class DatasetUnion:
    """The cases of several datasets with unique names and label values (see the module doc).

    cases: union case names to use (default: all); window, cache_cases: as :class:`TrainingDataset`
    (the cache is per dataset).
    """

    def __init__(
        self,
        roots: Sequence[str | Path],
        cases: list[str] | None = None,
        window: str = "auto",
        cache_cases: int = 8,
    ) -> None:
        specs = [_spec(r) for r in roots]
        self.offsets = [int(v) for v in np.cumsum([0, *(max(sp.labels.values()) for sp in specs)])[:-1]]
        full = [
            _open_part(r, None, window, cache_cases, off) for r, off in zip(roots, self.offsets, strict=True)
        ]
        folders = [d.spec.root.name for d in full]
        if len(set(folders)) != len(folders):
            raise InputError(f"datasets {', '.join(map(str, roots))}: two dataset folders share a name")
        kinds = {d.is_2d() for d in full}
        if len(kinds) > 1:
            raise InputError(f"datasets {', '.join(map(str, roots))}: 2D image and 3D volume datasets mixed")
        self._index: list[tuple[int, int]] = []  # union case -> (dataset, case within it)
        self._names: list[str] = []
        for k, d in enumerate(full):
            for i, name in enumerate(d.names):
                self._index.append((k, i))
                self._names.append(f"{folders[k]}/{name}")
        if cases is not None:
            position = {n: j for j, n in enumerate(self._names)}
            unknown = [n for n in cases if n not in position]
            if unknown:
                raise InputError(f"datasets {', '.join(folders)}: unknown case(s) {unknown[:5]}")
            self._index = [self._index[position[n]] for n in cases]
            self._names = list(cases)
        self.parts = full
        seen: dict[str, int] = {}
        for d in full:
            for name in d.spec.classes.values():
                seen[name] = seen.get(name, 0) + 1
        self._classes = {
            v: (name if seen[name] == 1 else f"{name}@{folder}")
            for d, folder in zip(full, folders, strict=True)
            for v, name in d.classes.items()
        }

    def __len__(self) -> int:
        return len(self._index)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def classes(self) -> dict[int, str]:
        return dict(self._classes)

    @property
    def where(self) -> str:
        return ", ".join(str(d.spec.root) for d in self.parts)

    def is_2d(self) -> bool:
        return self.parts[0].is_2d()

    def frames(self, index: int, axis: str = "axial") -> CaseFrames:
        """Case ``index`` of the union (its dataset loaded it with the union's label values)."""
        k, i = self._index[index]
        return dataclasses.replace(self.parts[k].frames(i, axis), name=self._names[index])
