"""Validation through the real inference path: prompt once, propagate, Dice per class.

3D: for every class present in a case, one prompt (``val_prompt``: a tight box, a click at the
object pixel nearest its centroid, or the mask) on the slice where the class is largest, then
:class:`~medsam2.engine.video_predictor.VideoPredictor` propagates through the whole volume;
Dice is computed on the volume at its own resolution. 2D one-prompt: per class, the first
validation image containing it is prompted and the prediction propagates over the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from medsam2.data.prompts import tight_box
from medsam2.data.union import CaseSource
from medsam2.engine.video_predictor import VideoPredictor
from medsam2.model.sam2_model import Sam2Model
from medsam2.training.config import TrainConfig
from medsam2.training.recipes import ImageStack, policy_options

__all__ = ["ValidationResult", "validate", "dice_score", "central_click"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationResult:
    """Mean Dice over classes and per class name (classes never seen are absent)."""

    dice: float
    per_class: dict[str, float] = field(default_factory=dict)
    cases: int = 0

    def record(self) -> dict[str, float]:
        out = {"dice": self.dice}
        out.update({f"dice_{k}": v for k, v in self.per_class.items()})
        return out


def dice_score(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice of two boolean arrays; 1.0 when both are empty."""
    total = int(pred.sum()) + int(target.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & target).sum()) / total


def central_click(mask: np.ndarray) -> np.ndarray:
    """(1, 2) x, y: the object pixel nearest the centroid of a non-empty (H, W) mask."""
    rc = np.argwhere(mask)
    d = ((rc - rc.mean(axis=0)) ** 2).sum(axis=1)
    r, c = rc[int(np.argmin(d))]
    return np.array([[c, r]], np.float32)


def _prompt(predictor: VideoPredictor, frame: int, obj_id: int, mask: np.ndarray, kind: str) -> None:
    if kind == "box":
        predictor.add_prompt(frame, obj_id, box=tight_box(mask))
    elif kind == "click":
        predictor.add_prompt(frame, obj_id, points=central_click(mask), labels=[1])
    else:
        predictor.add_prompt(frame, obj_id, mask=mask)


def _predictor(model: Sam2Model, cfg: TrainConfig, frames: int, tracker: str = "memory") -> VideoPredictor:
    opts = policy_options(model.config, cfg, cfg.seed)
    cache = max(1, min(frames, 64))
    return VideoPredictor(model, memory=cfg.memory, cache_size=cache, tracker=tracker, **opts)


def _validate_3d(
    model: Sam2Model, data: CaseSource, cases: list[int], cfg: TrainConfig, tracker: str
) -> dict[int, list[float]]:
    axis = "axial" if cfg.axis == "random" else cfg.axis
    scores: dict[int, list[float]] = {}
    for i in cases:
        cf = data.frames(i, axis)
        if not cf.classes:
            continue
        predictor = _predictor(model, cfg, cf.num_frames, tracker)
        predictor.start(cf.image)
        for v in cf.classes:
            area = (cf.labels == v).reshape(cf.num_frames, -1).sum(axis=1)
            f = int(np.argmax(area))
            _prompt(predictor, f, v, cf.labels[f] == v, cfg.val_prompt)
        outputs = predictor.segment()
        for v in cf.classes:
            n = outputs[0].obj_ids.index(v)
            pred = np.stack([outputs[t].masks[n].numpy() for t in range(cf.num_frames)])
            scores.setdefault(v, []).append(dice_score(pred, cf.labels == v))
    return scores


def _validate_2d(
    model: Sam2Model, data: CaseSource, cases: list[int], cfg: TrainConfig
) -> dict[int, list[float]]:
    members = [data.frames(i) for i in cases]
    scores: dict[int, list[float]] = {}
    for v in data.classes:
        chosen = [m for m in members if v in m.presence]
        if not chosen:
            continue
        predictor = _predictor(model, cfg, len(chosen))
        predictor.start(ImageStack([m.image[0] for m in chosen]))
        _prompt(predictor, 0, v, chosen[0].labels[0] == v, cfg.val_prompt)
        outputs = predictor.segment()
        for t in range(1, len(chosen)):
            pred = outputs[t].masks[0].numpy()
            scores.setdefault(v, []).append(dice_score(pred, chosen[t].labels[0] == v))
    return scores


def validate(
    model: Sam2Model, data: CaseSource, cases: list[int], cfg: TrainConfig, *, tracker: str = "memory"
) -> ValidationResult:
    """Dice per class on ``cases`` (indices into ``data``); the model is left in its prior mode.
    ``tracker``: how 3D volumes propagate (``"memory"``, or ``"box-chain"``:
    :mod:`medsam2.engine.box_chain`); 2D One-Prompt sets always read the memory."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if cfg.recipe == "3d":
                scores = _validate_3d(model, data, cases, cfg, tracker)
            else:
                scores = _validate_2d(model, data, cases, cfg)
    finally:
        model.train(was_training)
    names = data.classes
    per_class = {names[v]: float(np.mean(s)) for v, s in sorted(scores.items()) if s}
    mean = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return ValidationResult(mean, per_class, len(cases))
