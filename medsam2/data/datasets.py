"""Training datasets in the nnU-Net v2 raw layout: 3D volumes (NIfTI/NRRD/MHA) and 2D images (PNG).

Layout (``DATASET`` is any folder)::

    DATASET/dataset.json
    DATASET/imagesTr/{case}_0000{file_ending}
    DATASET/labelsTr/{case}{file_ending}

``dataset.json`` holds ``channel_names`` (``{"0": "CT"}``; the modality chooses the intensity
normalisation), ``labels`` (``{"background": 0, "liver": 1, ...}``), ``numTraining`` and
``file_ending`` (``".nii.gz"``, ``".nrrd"``, ``".mha"``, ``".png"``...). Only channel 0 is used.
Each non-background label value is one object class; ``medsam2 check-dataset`` verifies a
dataset completely before training (:mod:`medsam2.training.check`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from medsam2.errors import InputError
from medsam2.io import read_image
from medsam2.preprocessing import normalize_intensity, slice_geometry, volume_to_frames
from medsam2.types import Volume

__all__ = [
    "DatasetSpec",
    "CaseFiles",
    "CaseFrames",
    "case_frames",
    "cache_put",
    "TrainingDataset",
    "read_dataset_json",
    "scan_cases",
    "geometry_differences",
    "image_to_unit",
    "REQUIRED_KEYS",
]

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
CHANNEL_SUFFIX = "_0000"


@dataclass(frozen=True)
class DatasetSpec:
    """The parsed ``dataset.json`` of a dataset folder."""

    root: Path
    channel_names: dict[str, str]
    labels: dict[str, int]  # name -> value, background (0) included
    num_training: int
    file_ending: str

    @property
    def modality(self) -> str | None:
        """Channel 0's name (e.g. "CT", "MRI"); chooses the intensity normalisation."""
        return self.channel_names.get("0")

    @property
    def classes(self) -> dict[int, str]:
        """Object classes: label value -> name, background excluded."""
        return {v: k for k, v in sorted(self.labels.items(), key=lambda kv: kv[1]) if v != 0}


def _bad(root: Path, message: str) -> InputError:
    return InputError(f"{root / 'dataset.json'}: {message}")


def _parse_labels(root: Path, labels: Any) -> dict[str, int]:
    if not isinstance(labels, dict) or not labels:
        raise _bad(root, '\'labels\' must be an object such as {"background": 0, "organ": 1}')
    out: dict[str, int] = {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            raise _bad(root, f"label {name!r}: region-based labels (lists) are not supported")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(root, f"label {name!r}: value must be an integer >= 0, got {value!r}")
        out[str(name)] = value
    if 0 not in out.values():
        raise _bad(root, "'labels' must map a background name to 0")
    if len(set(out.values())) != len(out):
        raise _bad(root, "'labels' gives the same value to several names")
    return out


def read_dataset_json(root: str | Path) -> DatasetSpec:
    """Parse ``root/dataset.json``; raises ``InputError`` naming the file and the problem."""
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"{r}: dataset folder not found")
    path = r / "dataset.json"
    if not path.is_file():
        raise InputError(f"{r}: no dataset.json (expected the nnU-Net v2 raw layout, see docs/training.md)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(r, f"not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _bad(r, "expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise _bad(r, f"missing key(s) {missing}")
    channels = data["channel_names"]
    if not isinstance(channels, dict) or "0" not in channels:
        raise _bad(r, "'channel_names' must be an object with at least channel \"0\"")
    n = data["numTraining"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise _bad(r, f"'numTraining' must be an integer >= 0, got {n!r}")
    ending = data["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        raise _bad(r, f"'file_ending' must look like \".nii.gz\", got {ending!r}")
    labels = _parse_labels(r, data["labels"])
    return DatasetSpec(r, {str(k): str(v) for k, v in channels.items()}, labels, n, ending)


@dataclass(frozen=True)
class CaseFiles:
    """One training case's files (``label`` is None when the label file is missing)."""

    name: str
    image: Path
    label: Path | None


def scan_cases(spec: DatasetSpec) -> list[CaseFiles]:
    """Cases found in ``imagesTr`` (channel ``_0000`` files with the dataset's ending), by name."""
    images = spec.root / "imagesTr"
    if not images.is_dir():
        raise InputError(f"{spec.root}: no imagesTr folder")
    suffix = CHANNEL_SUFFIX + spec.file_ending
    cases = []
    for p in sorted(images.iterdir()):
        if p.name.endswith(suffix):
            name = p.name[: -len(suffix)]
            label = spec.root / "labelsTr" / f"{name}{spec.file_ending}"
            cases.append(CaseFiles(name, p, label if label.is_file() else None))
    return cases


def geometry_differences(image: Volume, label: Volume, tol: float = 1e-3) -> list[str]:
    """How ``label``'s grid differs from ``image``'s (shape, spacing, origin, direction); [] if equal."""
    if image.shape != label.shape:
        return [f"shape {label.shape} vs image {image.shape}"]
    out = []
    for name, a, b in (
        ("spacing", image.spacing, label.spacing),
        ("origin", image.origin, label.origin),
        ("direction", np.ravel(image.direction), np.ravel(label.direction)),
    ):
        a_, b_ = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = 1.0 if name == "direction" else max(1.0, float(np.abs(a_).max(initial=0.0)))
        if a_.shape != b_.shape or not np.allclose(a_, b_, rtol=0.0, atol=tol * scale):
            out.append(f"{name} {_fmt(b_)} vs image {_fmt(a_)}")
    return out


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in np.ravel(values)) + ")"


def image_to_unit(volume: Volume, modality: str | None, window: str = "auto") -> np.ndarray:
    """Intensities -> float32 in [0, 1], same shape: 8-bit images / 255; CT windows; else percentiles."""
    arr = volume.array
    if window == "auto" and arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return normalize_intensity(arr, modality, None if window == "auto" else window)


@dataclass(frozen=True)
class CaseFrames:
    """A case as a stack of frames along one axis.

    image (T, H, W) or (T, H, W, 3) float32 in [0, 1]; labels (T, H, W) int64 label values;
    presence maps each class present in the case to a (T,) bool vector (frames containing it);
    box_ambiguous holds the classes whose box alone does not say them (generated "part" targets,
    `medsam2.data.synth.targets.part_labels`): training scores their box-only answers not at all.
    """

    name: str
    axis: str
    image: np.ndarray
    labels: np.ndarray
    presence: dict[int, np.ndarray]
    box_ambiguous: frozenset[int] = frozenset()

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(sorted(self.presence))


def case_frames(
    name: str,
    axis: str,
    image: np.ndarray,
    labels: np.ndarray,
    classes: dict[int, str],
    label_offset: int = 0,
) -> CaseFrames:
    """A :class:`CaseFrames` from frames (T, H, W[, 3]) and their labels (T, H, W): the labels move by
    ``label_offset`` (background stays 0) and each of ``classes`` present gets its presence vector."""
    if label_offset:
        labels = np.where(labels > 0, labels + label_offset, 0)
    flat = labels.reshape(labels.shape[0], -1)
    presence = {v: (flat == v).any(axis=1) for v in classes if (flat == v).any()}
    return CaseFrames(name, axis, image, labels, presence)


K = TypeVar("K")


def cache_put(cache: OrderedDict[K, CaseFrames], key: K, item: CaseFrames, limit: int) -> CaseFrames:
    """Store ``item`` as the newest entry of the LRU ``cache``, evict down to ``limit``, return it."""
    cache[key] = item
    while len(cache) > limit:
        cache.popitem(last=False)
    return item


def _label_array(volume: Volume) -> np.ndarray:
    arr = volume.array
    if arr.ndim != volume.ndim:
        raise InputError(f"{volume.source}: a label image must have one channel, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise InputError(f"{volume.source}: label values must be integers")
    return arr.astype(np.int64)


class TrainingDataset:
    """Cases of an nnU-Net raw dataset, loaded lazily and kept in a small LRU cache.

    cases: names of the cases to use (default: all with a label file); window: intensity
    normalisation ("auto": by modality, see :func:`image_to_unit`); label_offset: added to every
    non-background label value as cases load (how :class:`~medsam2.data.union.DatasetUnion`
    keeps the classes of several datasets apart).
    """

    def __init__(
        self,
        root: str | Path,
        cases: list[str] | None = None,
        window: str = "auto",
        cache_cases: int = 8,
        label_offset: int = 0,
    ) -> None:
        self.spec = read_dataset_json(root)
        self.label_offset = label_offset
        found = {c.name: c for c in scan_cases(self.spec) if c.label is not None}
        names = sorted(found) if cases is None else list(cases)
        unknown = [n for n in names if n not in found]
        if unknown:
            raise InputError(f"{self.spec.root}: case(s) without image+label files: {unknown[:5]}")
        if not names:
            raise InputError(f"{self.spec.root}: no training case with both image and label files")
        self.cases = [found[n] for n in names]
        self.window = window
        self.cache_cases = max(1, cache_cases)
        self._cache: OrderedDict[tuple[int, str], CaseFrames] = OrderedDict()

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cases]

    @property
    def classes(self) -> dict[int, str]:
        return {v + self.label_offset: name for v, name in self.spec.classes.items()}

    @property
    def where(self) -> str:
        """The dataset folder, for messages."""
        return str(self.spec.root)

    def load_volumes(self, index: int) -> tuple[Volume, Volume]:
        """(image, label) volumes of case ``index``; a grid mismatch raises ``InputError``."""
        case = self.cases[index]
        assert case.label is not None
        image, label = read_image(case.image), read_image(case.label)
        diffs = geometry_differences(image, label)
        if diffs:
            raise InputError(f"{case.label}: label grid differs from its image: {'; '.join(diffs)}")
        return image, label

    def is_2d(self) -> bool:
        """Whether the cases are 2D images (judged from the first case)."""
        return self.frames(0, "axial").axis == "image"

    def frames(self, index: int, axis: str = "axial") -> CaseFrames:
        """Case ``index`` sliced along ``axis`` ("axial", "coronal", "sagittal"; 2D: one frame)."""
        key = (index, axis)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        image, label = self.load_volumes(index)
        geom = slice_geometry(image, axis if image.ndim == 3 else "auto")
        unit = image_to_unit(image, self.spec.modality, self.window)
        labels = volume_to_frames(_label_array(label), geom)
        item = case_frames(
            self.cases[index].name,
            geom.plane,
            volume_to_frames(unit, geom),
            labels,
            self.classes,
            self.label_offset,
        )
        return cache_put(self._cache, key, item, self.cache_cases)
