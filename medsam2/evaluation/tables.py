"""Typed rows of the output tables and their CSV/JSON forms.

``per_case.csv``: one row per (case, class, model, axis); ``per_slice.csv``: per-slice Dice with
the signed distance (in slices) from the nearest prompted slice; ``interactive.csv``: one row per
corrective-click step.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from medsam2.io.atomic import atomic_output

__all__ = [
    "safe_name",
    "CaseRow",
    "SliceRow",
    "StepRow",
    "CaseResults",
    "write_csv",
    "rows_from_dicts",
    "csv_text",
]


@dataclass(frozen=True)
class CaseRow:
    """Scores of one object (a class in a case) under one model, on one axis (or their fusion)."""

    case: str
    class_value: int
    class_name: str
    protocol: str
    model: str
    memory: str
    memory_size: int | None
    axis: str
    seed: int
    prompted_slices: str
    prompt_kinds: str
    dice: float
    iou: float
    nsd: float
    hd95: float
    volume_true_ml: float
    volume_pred_ml: float
    volume_error_ml: float
    truth_empty: bool
    pred_empty: bool
    excluded: bool
    prompted_dice: float
    propagated_dice: float
    slice_avg_dice: float
    over_propagation_voxels: int
    over_propagation_ml: float
    dice_auc: float
    nsd_auc: float
    noc85: float
    noc90: float
    comparable: bool
    prompted_image: bool
    seconds: float


@dataclass(frozen=True)
class SliceRow:
    case: str
    class_value: int
    model: str
    axis: str
    slice: int
    distance: int
    prompted: bool
    dice: float
    truth_pixels: int
    pred_pixels: int


@dataclass(frozen=True)
class StepRow:
    case: str
    class_value: int
    model: str
    axis: str
    step: int
    click_slice: int | None
    click_x: float | None
    click_y: float | None
    click_label: int | None
    dice: float
    nsd: float


@dataclass
class CaseResults:
    """Everything one case contributes to the tables."""

    cases: list[CaseRow]
    slices: list[SliceRow]
    steps: list[StepRow]

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": [_jsonable(asdict(r)) for r in self.cases],
            "slices": [_jsonable(asdict(r)) for r in self.slices],
            "steps": [_jsonable(asdict(r)) for r in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResults:
        return cls(
            rows_from_dicts(CaseRow, data["cases"]),
            rows_from_dicts(SliceRow, data["slices"]),
            rows_from_dicts(StepRow, data["steps"]),
        )


def safe_name(case: str) -> str:
    """A case name as a file name (the names of dataset unions contain '/')."""
    return case.replace("/", "__").replace("\\", "__")


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf as strings: strict JSON has neither."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def rows_from_dicts(cls: type, items: Sequence[dict[str, Any]]) -> list[Any]:
    floats = {f.name for f in fields(cls) if f.type in ("float", float)}
    return [
        cls(**{k: (float(v) if k in floats and v is not None else v) for k, v in d.items()}) for d in items
    ]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.6g}")
    return str(v)


def csv_text(rows: Sequence[Any], cls: type) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = [f.name for f in fields(cls)]
    w.writerow(names)
    for r in rows:
        w.writerow([_cell(getattr(r, n)) for n in names])
    return buf.getvalue()


def write_csv(path: Path, rows: Sequence[Any], cls: type) -> None:
    """Write ``rows`` (dataclass instances of ``cls``) as CSV, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(csv_text(rows, cls))
