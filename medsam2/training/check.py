"""`medsam2 check-dataset`: verify an nnU-Net v2 raw dataset before training, listing every
problem at once (errors block training, warnings do not).

Errors: unreadable/invalid ``dataset.json``, missing ``imagesTr``/``labelsTr``, images without a
label, labels without an image, missing or unexpected channel files, ``numTraining`` differing
from the cases found, unreadable images (including NaN/Inf voxels), image/label shape or
geometry (spacing, origin, direction) mismatch, non-integer label values, label values not
declared in ``dataset.json``, cases of mixed dimensionality. Warnings: files that do not match
the layout (ignored), cases with no labelled object (empty), constant images.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam2.data.datasets import DatasetSpec, geometry_differences, read_dataset_json
from medsam2.errors import InputError
from medsam2.io import read_image
from medsam2.types import Volume

__all__ = ["Problem", "DatasetReport", "check_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One finding: severity "error" or "warning", the case it concerns (None: the dataset)."""

    severity: str
    case: str | None
    message: str

    def line(self) -> str:
        return f"{self.severity.upper():7} {self.case or '(dataset)'}: {self.message}"


@dataclass
class DatasetReport:
    """Every problem found in a dataset."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    num_cases: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def lines(self) -> list[str]:
        return [p.line() for p in self.problems]

    def summary(self) -> str:
        verdict = "ready for training" if not self.errors else "fix the errors above before training"
        return (
            f"{self.root}: {self.num_cases} case(s), {len(self.errors)} error(s), "
            f"{len(self.warnings)} warning(s): {verdict}"
        )

    def error(self, case: str | None, message: str) -> None:
        self.problems.append(Problem("error", case, message))

    def warn(self, case: str | None, message: str) -> None:
        self.problems.append(Problem("warning", case, message))


def _scan_images(spec: DatasetSpec, report: DatasetReport) -> dict[str, set[int]]:
    """case -> channel indices found in imagesTr."""
    pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(spec.file_ending) + "$")
    channels: dict[str, set[int]] = {}
    for p in sorted((spec.root / "imagesTr").iterdir()):
        m = pattern.match(p.name)
        if m is None:
            report.warn(None, f"imagesTr/{p.name}: not named CASE_XXXX{spec.file_ending}; ignored")
            continue
        channels.setdefault(m.group(1), set()).add(int(m.group(2)))
    return channels


def _check_layout(spec: DatasetSpec, report: DatasetReport) -> list[str]:
    """File-level checks; returns the cases whose image and label files both exist."""
    channels = _scan_images(spec, report)
    labels_dir = spec.root / "labelsTr"
    labels = {}
    for p in sorted(labels_dir.iterdir()):
        if p.name.endswith(spec.file_ending):
            labels[p.name[: -len(spec.file_ending)]] = p
        else:
            report.warn(None, f"labelsTr/{p.name}: not named CASE{spec.file_ending}; ignored")
    expected = {int(k) for k in spec.channel_names if k.isdigit()}
    for case, found in sorted(channels.items()):
        missing, extra = sorted(expected - found), sorted(found - expected)
        if missing:
            report.error(case, f"missing image channel file(s) {[f'{case}_{c:04d}' for c in missing]}")
        if extra:
            report.error(case, f"channel file(s) {[f'{case}_{c:04d}' for c in extra]} not in channel_names")
        if case not in labels:
            report.error(case, f"missing label: labelsTr/{case}{spec.file_ending} does not exist")
    for case in sorted(set(labels) - set(channels)):
        report.error(case, f"label without image: imagesTr/{case}_0000{spec.file_ending} does not exist")
    cases = sorted(c for c in channels if 0 in channels[c])
    report.num_cases = len(cases)
    if spec.num_training != len(cases):
        report.error(None, f"numTraining is {spec.num_training} but imagesTr holds {len(cases)} case(s)")
    return [c for c in cases if c in labels]


def _read(path: Path, case: str, report: DatasetReport) -> Volume | None:
    try:
        return read_image(path)
    except InputError as exc:
        report.error(case, str(exc))
        return None


def _check_labels(label: Volume, spec: DatasetSpec, case: str, report: DatasetReport) -> None:
    arr = label.array
    if arr.ndim != label.ndim:
        report.error(case, f"label has {arr.shape[label.ndim :]} channels; a label image must have one")
        return
    values = np.unique(arr)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        report.error(case, "label values are not integers")
        return
    declared = set(spec.labels.values())
    unexpected = sorted(int(v) for v in values if int(v) not in declared)
    if unexpected:
        report.error(
            case, f"unexpected label value(s) {unexpected}; dataset.json declares {sorted(declared)}"
        )
    if not any(int(v) != 0 for v in values):
        report.warn(case, "empty case: the label holds no object (background only)")


def _check_case(spec: DatasetSpec, case: str, report: DatasetReport) -> int | None:
    """Read and compare one case's image and label; returns its dimensionality when readable."""
    image = _read(spec.root / "imagesTr" / f"{case}_0000{spec.file_ending}", case, report)
    label = _read(spec.root / "labelsTr" / f"{case}{spec.file_ending}", case, report)
    if image is None or label is None:
        return None if image is None else image.ndim
    diffs = geometry_differences(image, label)
    if diffs:
        kind = "shape" if diffs[0].startswith("shape") else "geometry"
        report.error(case, f"label {kind} mismatch: {'; '.join(diffs)}")
    _check_labels(label, spec, case, report)
    if np.ptp(image.array) == 0:
        report.warn(case, "constant image (every voxel has the same value)")
    return image.ndim


def check_dataset(root: str | Path, check_images: bool = True) -> DatasetReport:
    """Check the dataset in ``root``; with ``check_images`` also read every image and label."""
    report = DatasetReport(Path(root))
    try:
        spec = read_dataset_json(root)
    except InputError as exc:
        report.error(None, str(exc))
        return report
    for sub in ("imagesTr", "labelsTr"):
        if not (spec.root / sub).is_dir():
            report.error(None, f"no {sub} folder")
    if report.errors:
        return report
    cases = _check_layout(spec, report)
    if not check_images:
        return report
    dims: dict[int, list[str]] = {}
    for case in cases:
        ndim = _check_case(spec, case, report)
        if ndim is not None:
            dims.setdefault(ndim, []).append(case)
        log.info("checked %s", case)
    if len(dims) > 1:
        summary = ", ".join(f"{d}D: {len(c)} (e.g. {c[0]})" for d, c in sorted(dims.items()))
        report.error(None, f"cases of mixed dimensionality: {summary}")
    return report
