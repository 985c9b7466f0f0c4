"""The 3D protocols: where prompts go, which way propagation runs, and the interactive loop.

* ``single-slice``: one prompt on the slice chosen by ``slice_rule``; bidirectional.
* ``every-k``: a prompt on slices f0, f0+k, f0+2k, ... of the object's first..last slice (only
  where it is present); bidirectional from f0.
* ``iterative``: the single-slice box, then corrective clicks (one per step, at the distance
  transform maximum of the largest 3D error component), re-propagating after each.
* ``legacy-medsam2``: the MedSAM-2 paper code's behaviour: the stack is cropped to the slices
  containing any label, then to the first quarter of those (at least one slice); every 2nd
  slice of the crop is prompted (box or point; an empty mask where the object is absent); one
  forward pass; scored by the slice-averaged Dice over the crop (both empty -> 1). Not
  comparable to volume Dice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from medsam2.engine.frames import ArrayFrames
from medsam2.engine.propagation import Direction
from medsam2.evaluation.config import EvalConfig
from medsam2.evaluation.metrics import mask_metrics
from medsam2.evaluation.prompting import SimPrompt, choose_slice, corrective_click, make_prompt
from medsam2.evaluation.segmenters import Segmenter, SegmentSession

__all__ = ["Plan", "StepResult", "ObjectResult", "plan_prompts", "run_object", "auc", "noc"]


@dataclass(frozen=True)
class Plan:
    """Initial prompts (frame indices of the cropped stack), direction and the crop of the stack."""

    prompts: tuple[SimPrompt, ...]
    direction: Direction
    crop: range


@dataclass(frozen=True)
class StepResult:
    """Scores after ``step`` corrective clicks (``click``: the click added at this step)."""

    step: int
    click: SimPrompt | None
    dice: float
    nsd: float


@dataclass
class ObjectResult:
    """One object under one segmenter: probabilities over the whole (T, H, W) stack."""

    probs: np.ndarray
    prompts: list[SimPrompt]
    crop: range
    seconds: float
    steps: list[StepResult] = field(default_factory=list)


def _present(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))


def _legacy_plan(cfg: EvalConfig, truth: np.ndarray, any_label: np.ndarray, rng: np.random.Generator) -> Plan:
    present = _present(any_label)
    first, last = int(present[0]), int(present[-1])
    length = max(1, (last - first + 1) // 4)
    crop = range(first, first + length)
    prompts = []
    for t in range(0, length, 2):
        if truth[crop[t]].any():
            p = make_prompt(truth, crop[t], cfg.prompt, cfg.box_jitter, rng)
            prompts.append(SimPrompt(t, box=p.box, points=p.points, labels=p.labels))
        else:
            prompts.append(SimPrompt(t, mask=np.zeros(truth.shape[1:], bool)))
    return Plan(tuple(prompts), "forward", crop)


def plan_prompts(cfg: EvalConfig, truth: np.ndarray, any_label: np.ndarray, rng: np.random.Generator) -> Plan:
    """The protocol's initial prompts for one object's (T, H, W) truth (present somewhere)."""
    full = range(truth.shape[0])
    if cfg.protocol == "legacy-medsam2":
        return _legacy_plan(cfg, truth, any_label, rng)
    if cfg.protocol == "every-k":
        present = set(_present(truth).tolist())
        lo, hi = min(present), max(present)
        frames = [t for t in range(lo, hi + 1, cfg.every_k) if t in present]
        return Plan(
            tuple(make_prompt(truth, t, cfg.prompt, cfg.box_jitter, rng) for t in frames), "both", full
        )
    kind = "box" if cfg.protocol == "iterative" else cfg.prompt
    f = choose_slice(truth, cfg.slice_rule)
    return Plan((make_prompt(truth, f, kind, cfg.box_jitter, rng),), "both", full)


def _expand(probs: list[np.ndarray], crop: range, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    out[crop.start : crop.stop] = np.stack(probs)
    return out


def noc(dices: list[float], threshold: float, cap: int) -> int:
    """Clicks needed to reach ``threshold`` (0: the box alone); ``cap`` when never reached."""
    hit = [i for i, d in enumerate(dices) if d >= threshold]
    return min(hit[0], cap) if hit else cap


def auc(values: list[float]) -> float:
    """Trapezoidal area under a per-click curve (clicks 0..N), divided by N (N = 0: the value)."""
    if len(values) == 1:
        return float(values[0])
    v = np.asarray(values, np.float64)
    return float(((v[1:] + v[:-1]) / 2.0).sum() / (len(v) - 1))


Scorer = Callable[[np.ndarray], tuple[float, float]]


def _interactive(
    session: SegmentSession,
    result: ObjectResult,
    truth: np.ndarray,
    cfg: EvalConfig,
    spacing: tuple[float, ...],
    scorer: Scorer,
) -> None:
    """Corrective clicks: ``cfg.clicks`` of them, then more (up to ``noc_cap``) until Dice >= 0.90.
    ``result.probs`` ends as the prediction after ``cfg.clicks`` clicks (the reported final)."""
    dice, nsd = scorer(result.probs > 0.5)
    result.steps.append(StepResult(0, None, dice, nsd))
    final = result.probs
    probs = result.probs
    for step in range(1, max(cfg.clicks, cfg.noc_cap) + 1):
        if step > cfg.clicks and max(s.dice for s in result.steps) >= 0.90:
            break
        click = corrective_click(probs > 0.5, truth, spacing)
        if click is None:
            result.steps.append(StepResult(step, None, 1.0, 1.0))
        else:
            session.add(click)
            if step <= cfg.clicks:  # clicks past N only serve NoC; the reported prediction is step N's
                result.prompts.append(click)
            probs = np.stack(session.run("both"))
            dice, nsd = scorer(probs > 0.5)
            result.steps.append(StepResult(step, click, dice, nsd))
        if step == cfg.clicks:
            final = probs
    result.probs = final


def run_object(
    segmenter: Segmenter,
    image: np.ndarray,
    truth: np.ndarray,
    plan: Plan,
    cfg: EvalConfig,
    spacing: tuple[float, float, float],
    tolerance: float,
) -> ObjectResult:
    """Run ``plan`` (and for ``iterative`` the click loop) on (T, H, W) ``image``/``truth``."""
    crop = plan.crop
    t0 = time.perf_counter()
    frames = ArrayFrames(image[crop.start : crop.stop])
    session = segmenter.open(frames, list(truth[crop.start : crop.stop]))
    for p in plan.prompts:
        session.add(p)
    probs = _expand(session.run(plan.direction), crop, truth.shape)
    prompts = [SimPrompt(p.frame + crop.start, p.box, p.points, p.labels, p.mask) for p in plan.prompts]
    result = ObjectResult(probs, prompts, crop, 0.0)
    if cfg.protocol == "iterative":

        def scorer(pred: np.ndarray) -> tuple[float, float]:
            m = mask_metrics(pred, truth, spacing, tolerance)
            return m.dice, m.nsd

        _interactive(session, result, truth, cfg, spacing, scorer)
    result.seconds = time.perf_counter() - t0
    return result
