"""Evaluate one 3D (or single-image 2D) case: every class, model and axis, plus the axes' fusion."""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsam2.data.datasets import TrainingDataset
from medsam2.evaluation.config import EvalConfig
from medsam2.evaluation.metrics import dice_np, mask_metrics, slice_dice
from medsam2.evaluation.protocols import ObjectResult, auc, noc, plan_prompts, run_object
from medsam2.evaluation.segmenters import Segmenter
from medsam2.evaluation.tables import CaseResults, CaseRow, SliceRow, StepRow
from medsam2.preprocessing import SliceGeometry, frames_to_volume, slice_geometry, volume_to_frames
from medsam2.types import Volume

__all__ = ["evaluate_case", "case_rng", "frame_spacing"]

log = logging.getLogger(__name__)


def case_rng(seed: int, case: str, value: int, axis: str) -> np.random.Generator:
    """The prompt simulation's generator: the same for every model (identical prompts) and rank."""
    return np.random.default_rng([seed, zlib.crc32(case.encode()), value, zlib.crc32(axis.encode())])


def frame_spacing(volume: Volume, geom: SliceGeometry) -> tuple[float, float, float]:
    """mm per frame axis (T, H, W)."""
    sp = volume.spacing
    t = 1.0 if geom.slice_axis is None else float(sp[geom.slice_axis])
    return t, float(sp[geom.row_axis]), float(sp[geom.col_axis])


@dataclass
class _Object:
    """What the rows of one (class, model) need across axes."""

    case: str
    value: int
    name: str
    fused: np.ndarray | None = None
    geom: SliceGeometry | None = None
    axes: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _distances(n: int, prompted: Sequence[int]) -> list[int]:
    return [min((t - p for p in prompted), key=lambda d: (abs(d), -d)) for t in range(n)]


def _split_dice(pred: np.ndarray, truth: np.ndarray, prompted: set[int]) -> tuple[float, float]:
    on = sorted(prompted)
    off = [t for t in range(truth.shape[0]) if t not in prompted]
    a = dice_np(pred[on], truth[on]) if on else math.nan
    b = dice_np(pred[off], truth[off]) if off else math.nan
    return a, b


def _over_propagation(pred: np.ndarray, truth: np.ndarray) -> int:
    present = np.flatnonzero(truth.reshape(truth.shape[0], -1).any(axis=1))
    if present.size == 0:
        return int(pred.sum())
    outside = np.ones(truth.shape[0], bool)
    outside[present[0] : present[-1] + 1] = False
    return int(pred[outside].sum())


def _slice_rows(
    o: _Object, model: str, axis: str, pred: np.ndarray, truth: np.ndarray, prompted: list[int]
) -> list[SliceRow]:
    dist = _distances(truth.shape[0], prompted)
    rows = []
    for t, d in enumerate(slice_dice(pred, truth)):
        if not math.isnan(d):
            rows.append(
                SliceRow(
                    o.case,
                    o.value,
                    model,
                    axis,
                    t,
                    dist[t],
                    t in prompted,
                    d,
                    int(truth[t].sum()),
                    int(pred[t].sum()),
                )
            )
    return rows


def _step_rows(o: _Object, model: str, axis: str, res: ObjectResult) -> list[StepRow]:
    rows = []
    for s in res.steps:
        c = s.click
        x, y = c.points[0] if c is not None else (None, None)
        rows.append(
            StepRow(
                o.case, o.value, model, axis, s.step, c.frame if c else None, x, y,
                c.labels[0] if c else None, s.dice, s.nsd,
            )
        )  # fmt: skip
    return rows


def _case_row(
    o: _Object,
    seg: Segmenter,
    cfg: EvalConfig,
    axis: str,
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: tuple[float, ...],
    res: ObjectResult | None,
) -> CaseRow:
    m = mask_metrics(pred, truth, spacing, cfg.tolerance(o.value))
    prompted = {p.frame for p in res.prompts} if res else set()
    pd, qd = _split_dice(pred, truth, prompted) if res else (math.nan, math.nan)
    crop = res.crop if res else range(truth.shape[0])
    sl = [d for d in slice_dice(pred[crop.start : crop.stop], truth[crop.start : crop.stop])]
    slice_avg = float(np.mean([1.0 if math.isnan(d) else d for d in sl])) if sl else math.nan
    steps = res.steps[: cfg.clicks + 1] if res else []
    dices = [s.dice for s in res.steps] if res else []
    over = _over_propagation(pred, truth)
    return CaseRow(
        case=o.case, class_value=o.value, class_name=o.name, protocol=cfg.protocol, model=seg.label,
        memory=seg.memory, memory_size=seg.memory_size, axis=axis, seed=cfg.seed,
        prompted_slices=";".join(o.prompts) if res is None else ";".join(str(f) for f in sorted(prompted)),
        prompt_kinds=";".join(sorted({p.kind for p in res.prompts})) if res else "",
        dice=m.dice, iou=m.iou, nsd=m.nsd, hd95=m.hd95, volume_true_ml=m.volume_true_ml,
        volume_pred_ml=m.volume_pred_ml, volume_error_ml=m.volume_error_ml, truth_empty=m.truth_empty,
        pred_empty=m.pred_empty, excluded=m.excluded, prompted_dice=pd, propagated_dice=qd,
        slice_avg_dice=slice_avg, over_propagation_voxels=over,
        over_propagation_ml=over * float(np.prod(spacing)) / 1000.0,
        dice_auc=auc([s.dice for s in steps]) if steps else math.nan,
        nsd_auc=auc([s.nsd for s in steps]) if steps else math.nan,
        noc85=float(noc(dices, 0.85, cfg.noc_cap)) if steps and cfg.noc_cap else math.nan,
        noc90=float(noc(dices, 0.90, cfg.noc_cap)) if steps and cfg.noc_cap else math.nan,
        comparable=cfg.comparable, prompted_image=False, seconds=res.seconds if res else o.seconds,
    )  # fmt: skip


class _Predictions:
    """Label volumes to save, per (model, axis): class value where its probability > 0.5."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.labels: dict[tuple[str, str], np.ndarray] = {}

    def add(self, model: str, axis: str, value: int, mask: np.ndarray) -> None:
        arr = self.labels.setdefault((model, axis), np.zeros(self.shape, np.uint16))
        arr[mask] = value


def _run_axis(
    ds: TrainingDataset, index: int, image: Volume, o: _Object, seg: Segmenter, cfg: EvalConfig, axis: str
) -> tuple[CaseRow, list[SliceRow], list[StepRow], np.ndarray, SliceGeometry] | None:
    cf = ds.frames(index, axis)
    truth = cf.labels == o.value
    if not truth.any():
        return None
    geom = slice_geometry(image, axis if image.ndim == 3 else "auto")
    spacing = frame_spacing(image, geom)
    plan = plan_prompts(cfg, truth, cf.labels > 0, case_rng(cfg.seed, o.case, o.value, axis))
    res = run_object(seg, cf.image, truth, plan, cfg, spacing, cfg.tolerance(o.value))
    pred = res.probs > 0.5
    o.prompts.append(f"{axis}:{'/'.join(str(p.frame) for p in plan.prompts)}")
    o.seconds += res.seconds
    row = _case_row(o, seg, cfg, axis, pred, truth, spacing, res)
    log.info("%s %s %s %s: Dice %.3f (%.1f s)", o.case, o.name, seg.label, axis, row.dice, res.seconds)
    prompted = sorted({p.frame for p in res.prompts})
    slices = _slice_rows(o, seg.label, axis, pred, truth, prompted)
    return row, slices, _step_rows(o, seg.label, axis, res), res.probs, geom


def evaluate_case(
    ds: TrainingDataset, index: int, segmenters: Sequence[Segmenter], cfg: EvalConfig, save_dir: Path | None
) -> CaseResults:
    """Rows of case ``index`` for every class present (or ``cfg.classes``), model and axis."""
    image, label = ds.load_volumes(index)
    name = ds.names[index]
    truth_vol = np.asarray(label.array).astype(np.int64)
    values = [v for v in ds.classes if (cfg.classes is None or v in cfg.classes)]
    out = CaseResults([], [], [])
    saved = _Predictions(image.shape)
    for value in values:
        if not (truth_vol == value).any():
            log.info("%s: class %d absent, skipped", name, value)
            continue
        for seg in segmenters:
            o = _Object(name, value, ds.classes[value])
            for axis in cfg.axes:
                got = _run_axis(ds, index, image, o, seg, cfg, axis)
                if got is None:
                    continue
                row, slices, steps, probs, geom = got
                out.cases.append(row)
                out.slices.extend(slices)
                out.steps.extend(steps)
                vol = frames_to_volume(probs, geom)
                saved.add(seg.label, axis, value, vol > 0.5)
                o.fused = vol if o.fused is None else o.fused + vol
                o.geom = o.geom or geom
                o.axes.append(axis)
            if len(o.axes) > 1 and o.fused is not None and o.geom is not None:
                out.cases.append(_fusion_row(o, seg, cfg, image, truth_vol == value, o.geom))
                saved.add(seg.label, "fusion", value, o.fused / len(o.axes) > 0.5)
    if save_dir is not None:
        _save(saved, image, name, ds.spec.file_ending, save_dir)
    return out


def _fusion_row(
    o: _Object, seg: Segmenter, cfg: EvalConfig, image: Volume, truth: np.ndarray, geom: SliceGeometry
) -> CaseRow:
    """The mean of the axes' probabilities, scored in the first axis's frames (same metrics)."""
    assert o.fused is not None
    fused = volume_to_frames(o.fused / len(o.axes) > 0.5, geom)
    return _case_row(
        o, seg, cfg, "fusion", fused, volume_to_frames(truth, geom), frame_spacing(image, geom), None
    )


def _save(saved: _Predictions, image: Volume, name: str, ending: str, root: Path) -> None:
    from medsam2.io.writers import write_mask

    for (model, axis), labels in sorted(saved.labels.items()):
        folder = root / model.replace("/", "_") / axis
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ending if ending in (".nii.gz", ".nii", ".nrrd", ".mha", ".png") else ".nii.gz"
        arr = labels.astype(np.uint8) if labels.max(initial=0) < 256 else labels
        write_mask(arr, image, folder / f"{name}{suffix}")
