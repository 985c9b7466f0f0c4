"""Summaries of the tables: per-class statistics, the memory ablation, distance bins, clicks.

Rows with ``excluded`` (truth and prediction empty) are left out of every mean and counted as
``n_empty``; rows with exactly one empty mask are kept (Dice 0) and counted as ``n_inf`` (their
HD95 is inf; HD95 statistics are over finite values). Prompted images of ``one-prompt-2d`` are
left out. Paired differences compare each model with the first one on the same (case, class,
axis), with a percentile bootstrap 95% interval of the mean (2000 resamples, seeded).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from medsam2.evaluation.tables import CaseRow, SliceRow, StepRow

__all__ = ["summarize", "class_stats", "paired_differences", "distance_bins", "bootstrap_ci", "DISTANCE_BINS"]

DISTANCE_BINS = ((0, 0, "0"), (1, 5, "1-5"), (6, 10, "6-10"), (11, 20, "11-20"), (21, 10**9, ">20"))


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return {"mean": None, "sd": None, "median": None}
    a = np.asarray(v, np.float64)
    return {
        "mean": float(a.mean()),
        "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "median": float(np.median(a)),
    }


def _scored(rows: Sequence[CaseRow]) -> list[CaseRow]:
    return [r for r in rows if not r.prompted_image]


def class_stats(rows: Sequence[CaseRow]) -> list[dict[str, Any]]:
    """Per (model, axis, class): mean/sd/median of each metric, n_valid, n_empty, n_inf."""
    groups: dict[tuple[str, str, int, str], list[CaseRow]] = defaultdict(list)
    for r in _scored(rows):
        groups[(r.model, r.axis, r.class_value, r.class_name)].append(r)
    out = []
    for (model, axis, value, name), rs in groups.items():
        kept = [r for r in rs if not r.excluded]
        entry: dict[str, Any] = {"model": model, "axis": axis, "class_value": value, "class_name": name}
        entry.update(
            n_valid=len(kept), n_empty=len(rs) - len(kept), n_inf=sum(math.isinf(r.hd95) for r in kept)
        )
        for metric in ("dice", "iou", "nsd", "hd95", "volume_error_ml", "slice_avg_dice", "seconds"):
            entry[metric] = _stats([getattr(r, metric) for r in kept])
        for metric in ("prompted_dice", "propagated_dice", "dice_auc", "nsd_auc", "noc85", "noc90"):
            s = _stats([getattr(r, metric) for r in kept])
            if s["mean"] is not None:
                entry[metric] = s
        out.append(entry)
    return out


def bootstrap_ci(diffs: Sequence[float], seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of ``diffs``."""
    a = np.asarray(diffs, np.float64)
    if a.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_differences(rows: Sequence[CaseRow], seed: int = 0) -> list[dict[str, Any]]:
    """Each model minus the first model, per metric, over the objects both scored."""
    models = list(dict.fromkeys(r.model for r in rows))
    if len(models) < 2:
        return []
    key = {(r.model, r.case, r.class_value, r.axis): r for r in _scored(rows) if not r.excluded}
    ref = models[0]
    out = []
    for other in models[1:]:
        pairs = [(key[k], key[(other, *k[1:])]) for k in key if k[0] == ref and (other, *k[1:]) in key]
        entry: dict[str, Any] = {"model": other, "reference": ref, "n": len(pairs)}
        for metric in ("dice", "nsd", "hd95", "over_propagation_ml", "seconds"):
            d = [getattr(b, metric) - getattr(a, metric) for a, b in pairs]
            d = [x for x in d if math.isfinite(x)]
            lo, hi = bootstrap_ci(d, seed)
            entry[metric] = {"mean": float(np.mean(d)) if d else None, "ci95": [lo, hi], "n": len(d)}
        out.append(entry)
    return out


def _bin(distance: int) -> str:
    d = abs(distance)
    return next(label for lo, hi, label in DISTANCE_BINS if lo <= d <= hi)


def distance_bins(slices: Sequence[SliceRow]) -> list[dict[str, Any]]:
    """Mean slice Dice per (model, direction, |distance| bin); direction forward = after the prompt."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for s in slices:
        direction = "prompt" if s.distance == 0 else "forward" if s.distance > 0 else "backward"
        groups[(s.model, direction, _bin(s.distance))].append(s.dice)
    order = {label: i for i, (_, _, label) in enumerate(DISTANCE_BINS)}
    keys = sorted(groups, key=lambda k: (k[0], k[1], order[k[2]]))
    return [
        {
            "model": m,
            "direction": d,
            "bin": b,
            "n": len(groups[(m, d, b)]),
            "dice": float(np.mean(groups[(m, d, b)])),
        }
        for m, d, b in keys
    ]


def click_curve(steps: Sequence[StepRow]) -> list[dict[str, Any]]:
    """Mean Dice and NSD per (model, step) over the objects of the interactive protocol."""
    groups: dict[tuple[str, int], list[StepRow]] = defaultdict(list)
    for s in steps:
        groups[(s.model, s.step)].append(s)
    return [
        {
            "model": m,
            "step": k,
            "n": len(v),
            "dice": float(np.mean([s.dice for s in v])),
            "nsd": float(np.nanmean([s.nsd for s in v])) if v else None,
        }
        for (m, k), v in sorted(groups.items())
    ]


def per_model(rows: Sequence[CaseRow]) -> list[dict[str, Any]]:
    """Mean Dice/NSD, over-propagation and runtime per (model, axis) over all classes."""
    groups: dict[tuple[str, str], list[CaseRow]] = defaultdict(list)
    for r in _scored(rows):
        if not r.excluded:
            groups[(r.model, r.axis)].append(r)
    return [
        {
            "model": m,
            "axis": a,
            "n": len(rs),
            "dice": _stats([r.dice for r in rs]),
            "nsd": _stats([r.nsd for r in rs]),
            "over_propagation_ml": _stats([r.over_propagation_ml for r in rs]),
            "seconds": _stats([r.seconds for r in rs]),
        }
        for (m, a), rs in groups.items()
    ]


def summarize(
    rows: Sequence[CaseRow], slices: Sequence[SliceRow], steps: Sequence[StepRow], seed: int = 0
) -> dict[str, Any]:
    """The statistics part of ``summary.json``."""
    return {
        "per_class": class_stats(rows),
        "per_model": per_model(rows),
        "paired_differences": paired_differences(rows, seed),
        "distance_bins": distance_bins(slices),
        "clicks": click_curve(steps),
    }
