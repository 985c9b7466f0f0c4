"""Where ``segment-batch`` gets its cases and prompts: a prompts file, or simulation from labels.

JSON: ``{"cases": {"NAME": {"objects": [...]}, ...}}`` (``medsam2 segment --prompts`` objects per
case; NAME is the input's file name without its extension, or the folder name) or a single
``{"objects": [...]}`` applied to every input. CSV: a header ``case,object,name,kind,coords,label``
with ``kind`` box (coords ``i0,j0,k0,i1,j1,k1``) or point (``i,j,k``; ``label`` 1 or 0), one prompt
per row. Simulated: every class of an nnU-Net dataset case gets the ``single-slice`` or
``every-k`` prompts of ``medsam2 evaluate`` (same seeds, so the same prompts).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.data.datasets import TrainingDataset
from medsam2.errors import ConfigError, InputError, PromptError
from medsam2.evaluation.batch import BatchCase
from medsam2.evaluation.cases import case_rng
from medsam2.evaluation.config import EvalConfig
from medsam2.evaluation.prompting import SimPrompt
from medsam2.evaluation.protocols import plan_prompts
from medsam2.io.atomic import full_suffix
from medsam2.preprocessing import (
    FrameBox,
    FramePoint,
    frame_box_to_index,
    frame_point_to_index,
    slice_geometry,
    volume_to_frames,
)
from medsam2.preprocessing.axes import SliceGeometry

__all__ = ["case_name", "cases_from_file", "simulated_cases"]


def case_name(path: Path) -> str:
    """``ct_001.nii.gz`` -> ``ct_001``; a folder keeps its name."""
    suffix = "" if path.is_dir() else full_suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def _csv_objects(path: Path) -> dict[str, dict[str, Any]]:
    per_case: dict[str, dict[int, dict[str, Any]]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"case", "object", "kind", "coords"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise PromptError(
                f"--prompts {path}: the header needs {', '.join(sorted(need))} (and name, label)"
            )
        for n, row in enumerate(reader, start=2):
            where = f"--prompts {path} line {n}"
            try:
                oid = int(row["object"])
                nums = [float(v) for v in row["coords"].replace(";", ",").split(",")]
            except ValueError:
                raise PromptError(f"{where}: object must be an integer and coords numbers") from None
            obj = per_case.setdefault(row["case"], {}).setdefault(oid, {"id": oid, "prompts": []})
            if row.get("name"):
                obj["name"] = row["name"]
            if row["kind"] == "box" and len(nums) == 6:
                obj["prompts"].append({"box": [nums[:3], nums[3:]]})
            elif row["kind"] == "point" and len(nums) == 3:
                obj["prompts"].append({"point": nums, "label": int(row.get("label") or 1)})
            else:
                raise PromptError(
                    f"{where}: kind box takes 6 coords, point 3; got {row['kind']} with {len(nums)}"
                )
    return {c: {"objects": list(objs.values())} for c, objs in per_case.items()}


def cases_from_file(inputs: Sequence[Path], prompts: Path) -> list[BatchCase]:
    """One case per input with its prompts from a JSON or CSV file (module docstring)."""
    if not prompts.is_file():
        raise InputError(f"--prompts {prompts}: file not found")
    if prompts.suffix.lower() == ".csv":
        table = _csv_objects(prompts)
    else:
        try:
            data = json.loads(prompts.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PromptError(f"--prompts {prompts}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise PromptError(f"--prompts {prompts}: expected a JSON object")
        cases = data.get("cases")
        table = cases if isinstance(cases, dict) else {case_name(p): data for p in inputs}
    names = [case_name(p) for p in inputs]
    if len(set(names)) != len(names):
        raise InputError("segment-batch: two inputs have the same case name; rename one")
    missing = [n for n in names if n not in table]
    if missing:
        raise PromptError(f"--prompts {prompts}: no prompts for case(s) {', '.join(missing[:5])}")
    return [BatchCase(n, p, table[n]) for n, p in zip(names, inputs, strict=True)]


def _voxel_prompt(p: SimPrompt, geom: SliceGeometry) -> dict[str, Any]:
    if p.box is not None:
        x0, y0, x1, y1 = p.box
        c0, c1 = frame_box_to_index(FrameBox(p.frame, x0, y0, x1, y1, (p.frame, p.frame)), geom)
        return {"box": [[round(float(v), 3) for v in c0], [round(float(v), 3) for v in c1]]}
    x, y = p.points[0]
    idx = frame_point_to_index(FramePoint(p.frame, x, y), geom)
    return {"point": [round(float(v), 3) for v in idx], "label": int(p.labels[0])}


def simulated_cases(data: str | Path, cfg: EvalConfig, axis: str) -> list[BatchCase]:
    """Every case of an nnU-Net dataset with prompts simulated from its labels."""
    if cfg.protocol not in ("single-slice", "every-k") or cfg.prompt == "mask":
        raise ConfigError("segment-batch simulates single-slice or every-k prompts with a box or a point")
    ds = TrainingDataset(data, cases=list(cfg.cases) if cfg.cases else None, cache_cases=1)
    out = []
    for i, name in enumerate(ds.names):
        image, label = ds.load_volumes(i)
        geom = slice_geometry(image, axis)
        labels = volume_to_frames(np.asarray(label.array).astype(np.int64), geom)
        objects = []
        for value, cls in ds.classes.items():
            truth = labels == value
            if (cfg.classes is not None and value not in cfg.classes) or not truth.any():
                continue
            plan = plan_prompts(cfg, truth, labels > 0, case_rng(cfg.seed, name, value, geom.plane))
            objects.append(
                {"id": value, "name": cls, "prompts": [_voxel_prompt(p, geom) for p in plan.prompts]}
            )
        if objects:
            out.append(BatchCase(name, ds.cases[i].image, {"objects": objects}))
    return out
