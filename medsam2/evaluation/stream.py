"""``one-prompt-2d``: an ordered stream of 2D cases, a prompt every N images, one memory for all.

For each class, the stream is the selected cases containing it, in case-name order. Images
0, N, 2N, ... (N = ``stream_every``; 0: image 0 only) get the protocol's prompt (box, point or
mask, simulated as for 3D); one forward pass runs over the stream with the memory kept across
images (self-sorting without temporal encodings, since the images are unrelated). Prompted images
are reported with ``prompted_image = True`` and left out of the summaries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medsam2.data.datasets import TrainingDataset
from medsam2.evaluation.cases import case_rng, frame_spacing
from medsam2.evaluation.config import EvalConfig
from medsam2.evaluation.metrics import mask_metrics
from medsam2.evaluation.prompting import make_prompt
from medsam2.evaluation.segmenters import Segmenter
from medsam2.evaluation.tables import CaseResults, CaseRow, safe_name
from medsam2.preprocessing import frames_to_volume, slice_geometry
from medsam2.training.recipes import ImageStack
from medsam2.types import Volume

__all__ = ["evaluate_stream"]


def _row(
    name: str, value: int, cls: str, seg: Segmenter, cfg: EvalConfig, pred: np.ndarray, truth: np.ndarray,
    spacing: tuple[float, float], prompted: bool, position: int, seconds: float,
) -> CaseRow:  # fmt: skip
    m = mask_metrics(pred, truth, spacing, cfg.tolerance(value))
    nan = math.nan
    return CaseRow(
        case=name, class_value=value, class_name=cls, protocol=cfg.protocol, model=seg.label,
        memory=seg.memory, memory_size=seg.memory_size, axis="image", seed=cfg.seed,
        prompted_slices=str(position) if prompted else "", prompt_kinds=cfg.prompt if prompted else "",
        dice=m.dice, iou=m.iou, nsd=m.nsd, hd95=m.hd95, volume_true_ml=m.volume_true_ml,
        volume_pred_ml=m.volume_pred_ml, volume_error_ml=m.volume_error_ml, truth_empty=m.truth_empty,
        pred_empty=m.pred_empty, excluded=m.excluded, prompted_dice=nan, propagated_dice=nan,
        slice_avg_dice=nan, over_propagation_voxels=0, over_propagation_ml=0.0, dice_auc=nan, nsd_auc=nan,
        noc85=nan, noc90=nan, comparable=True, prompted_image=prompted, seconds=seconds,
    )  # fmt: skip


def _stream_class(
    ds: TrainingDataset,
    indices: Sequence[int],
    value: int,
    segmenters: Sequence[Segmenter],
    cfg: EvalConfig,
    save_dir: Path | None,
) -> list[CaseRow]:
    members = [(i, ds.frames(i)) for i in indices]
    members = [(i, cf) for i, cf in members if value in cf.presence]
    if not members:
        return []
    images = [cf.image[0] for _, cf in members]
    truths = [cf.labels[0] == value for _, cf in members]
    step = cfg.stream_every
    prompted = set(range(0, len(members), step)) if step else {0}
    rows = []
    for seg in segmenters:
        t0 = time.perf_counter()
        session = seg.open(ImageStack(images), truths)
        for t in sorted(prompted):
            rng = case_rng(cfg.seed, ds.names[members[t][0]], value, "image")
            stack = truths[t][None]
            p = make_prompt(stack, 0, cfg.prompt, cfg.box_jitter, rng)
            session.add(type(p)(t, p.box, p.points, p.labels, p.mask))
        probs = session.run("forward")
        seconds = (time.perf_counter() - t0) / len(members)
        for t, (i, _) in enumerate(members):
            image, _label = ds.load_volumes(i)
            _, sy, sx = frame_spacing(image, slice_geometry(image, "auto"))
            spacing = (sy, sx)
            rows.append(
                _row(ds.names[i], value, ds.classes[value], seg, cfg, probs[t] > 0.5, truths[t], spacing,
                     t in prompted, t, seconds)
            )  # fmt: skip
            if save_dir is not None:
                name = f"{safe_name(ds.names[i])}__class{value}{ds.spec.file_ending}"
                _save_2d(probs[t] > 0.5, image, save_dir / seg.label.replace("/", "_") / "image" / name)
    return rows


def _save_2d(mask: np.ndarray, image: Volume, path: Path) -> None:
    """One image's predicted mask (0/1) in the image's own geometry."""
    from medsam2.io.writers import write_mask

    path.parent.mkdir(parents=True, exist_ok=True)
    geom = slice_geometry(image, "auto")
    write_mask(frames_to_volume(mask[None].astype(np.uint8), geom), image, path)


def evaluate_stream(
    ds: TrainingDataset,
    indices: Sequence[int],
    segmenters: Sequence[Segmenter],
    cfg: EvalConfig,
    save_dir: Path | None = None,
) -> CaseResults:
    """Rows of every image of every class's stream (see the module docstring)."""
    rows: list[CaseRow] = []
    for value in ds.classes:
        if cfg.classes is None or value in cfg.classes:
            rows.extend(_stream_class(ds, indices, value, segmenters, cfg, save_dir))
    return CaseResults(rows, [], [])
