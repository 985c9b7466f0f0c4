"""``evaluate``: a dataset, models and a protocol -> tables, summary.json and report.md.

Each case's rows are written to ``OUT/cases/{case}.json`` (atomically) as soon as the case is
done, with a key of everything that shapes them; a rerun skips cases whose file matches, and
retries failed ones. Under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the environment) rank r
takes cases r, r + W, r + 2W, ... (in dataset order), writes only those cases' files, waits for
the others (a gloo barrier) and rank 0 merges every case file in dataset order, so the merged
tables do not depend on the number of processes (only the ``seconds`` column varies).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from medsam2.data.datasets import TrainingDataset
from medsam2.errors import InputError
from medsam2.evaluation.cases import evaluate_case
from medsam2.evaluation.config import EvalConfig
from medsam2.evaluation.segmenters import Segmenter
from medsam2.evaluation.stream import evaluate_stream
from medsam2.evaluation.summary import summarize
from medsam2.evaluation.tables import CaseResults, CaseRow, SliceRow, StepRow, safe_name, write_csv
from medsam2.io.atomic import atomic_output

__all__ = ["EvalOutcome", "evaluate_dataset", "shard_of", "safe_name", "write_json", "world", "rank_barrier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOutcome:
    """What a run produced (rank 0: merged results; other ranks: ``merged`` False and empty rows)."""

    out: Path
    results: CaseResults
    summary: dict[str, Any]
    failed: dict[str, str]
    merged: bool


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) without it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def shard_of(count: int, rank: int, size: int) -> list[int]:
    """Indices this rank handles: rank, rank + size, ..."""
    return list(range(rank, count, size))


def write_json(path: Path, data: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def _run_key(cfg: EvalConfig, segmenters: Sequence[Segmenter], model_id: str) -> str:
    text = json.dumps([cfg.key(), [s.label for s in segmenters], model_id])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_case(path: Path, key: str) -> CaseResults | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("key") != key or "results" not in data:
        return None
    return CaseResults.from_json(data["results"])


def _one_case(
    ds: TrainingDataset, i: int, segs: Sequence[Segmenter], cfg: EvalConfig, out: Path, key: str
) -> str | None:
    """Evaluate case ``i`` unless its file is current; returns an error message on failure."""
    name = ds.names[i]
    path = out / "cases" / f"{safe_name(name)}.json"
    if _load_case(path, key) is not None:
        log.info("%s: already evaluated, skipped", name)
        return None
    save = out / "predictions" if cfg.save_predictions else None
    try:
        res = evaluate_case(ds, i, segs, cfg, save)
    except Exception as exc:  # one bad case is reported, never stops the run
        log.error("%s: failed: %s", name, exc)
        write_json(path, {"key": key, "case": name, "error": f"{type(exc).__name__}: {exc}"})
        return f"{type(exc).__name__}: {exc}"
    write_json(path, {"key": key, "case": name, "results": res.to_json()})
    return None


def rank_barrier(size: int) -> bool:
    """Join torchrun's gloo group and wait for every rank; returns whether this call created it."""
    if size <= 1:
        return False
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=timedelta(hours=24))
    dist.barrier()
    return created


def _merge(
    ds: TrainingDataset, indices: Sequence[int], out: Path, key: str
) -> tuple[CaseResults, dict[str, str]]:
    merged = CaseResults([], [], [])
    failed: dict[str, str] = {}
    for i in indices:
        name = ds.names[i]
        path = out / "cases" / f"{safe_name(name)}.json"
        res = _load_case(path, key)
        if res is None:
            try:
                failed[name] = json.loads(path.read_text()).get("error", "no results")
            except (OSError, json.JSONDecodeError):
                failed[name] = "no results"
            continue
        merged.cases.extend(res.cases)
        merged.slices.extend(res.slices)
        merged.steps.extend(res.steps)
    return merged, failed


def _versions() -> dict[str, str]:
    import monai
    import numpy
    import torch

    from medsam2 import __version__

    return {
        "medsam2": __version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def evaluate_dataset(
    data: str | Path,
    out: str | Path,
    segmenters: Sequence[Segmenter],
    cfg: EvalConfig,
    meta: dict[str, Any] | None = None,
) -> EvalOutcome:
    """Evaluate ``segmenters`` on the dataset at ``data`` with ``cfg``; write the results to ``out``."""
    ds = TrainingDataset(data, cases=list(cfg.cases) if cfg.cases else None, cache_cases=4)
    missing = [v for v in (cfg.classes or ()) if v not in ds.classes]
    if missing:
        raise InputError(f"--classes {missing}: not in {ds.where}'s labels {sorted(ds.classes)}")
    if cfg.protocol == "one-prompt-2d" and not ds.is_2d():
        raise InputError(
            f"--protocol one-prompt-2d: {ds.where} holds 3D cases; this protocol streams 2D images"
        )
    root = Path(out)
    (root / "cases").mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    key = _run_key(cfg, segmenters, str(meta.get("model_id", "")))
    rank, size = world()
    indices = list(range(len(ds)))
    if cfg.protocol == "one-prompt-2d":
        stream_file = root / "cases" / "_stream.json"
        if rank == 0 and _load_case(stream_file, key) is None:
            save = root / "predictions" if cfg.save_predictions else None
            res = evaluate_stream(ds, indices, segmenters, cfg, save)
            write_json(stream_file, {"key": key, "results": res.to_json()})
    else:
        for i in shard_of(len(ds), rank, size):
            _one_case(ds, i, segmenters, cfg, root, key)
    created = rank_barrier(size)
    try:
        if rank != 0:
            return EvalOutcome(root, CaseResults([], [], []), {}, {}, False)
        if cfg.protocol == "one-prompt-2d":
            stream = _load_case(root / "cases" / "_stream.json", key)
            merged, failed = (stream or CaseResults([], [], [])), dict[str, str]()
        else:
            merged, failed = _merge(ds, indices, root, key)
        summary = _write_outputs(root, ds, merged, failed, cfg, segmenters, meta)
        return EvalOutcome(root, merged, summary, failed, True)
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _write_outputs(
    root: Path,
    ds: TrainingDataset,
    res: CaseResults,
    failed: dict[str, str],
    cfg: EvalConfig,
    segmenters: Sequence[Segmenter],
    meta: dict[str, Any],
) -> dict[str, Any]:
    from medsam2.evaluation.report import write_report

    write_csv(root / "per_case.csv", res.cases, CaseRow)
    write_csv(root / "per_slice.csv", res.slices, SliceRow)
    write_csv(root / "interactive.csv", res.steps, StepRow)
    summary: dict[str, Any] = {
        "dataset": str(ds.where),
        "cases": len(ds),
        "failed": failed,
        "config": cfg.to_json(),
        "models": [s.label for s in segmenters],
        "comparable": cfg.comparable,
        "note": None if cfg.comparable else "legacy-medsam2: the paper code's protocol; NOT comparable",
        **meta,
        "versions": _versions(),
        **summarize(res.cases, res.slices, res.steps, cfg.seed),
    }
    write_json(root / "summary.json", _finite(summary))
    write_report(root, summary)
    return summary


def _finite(obj: Any) -> Any:
    """NaN/inf -> None/strings so that summary.json is strict JSON."""
    if isinstance(obj, float):
        return None if obj != obj else (str(obj) if obj in (float("inf"), float("-inf")) else obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
