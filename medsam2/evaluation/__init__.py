"""Evaluation: MONAI metrics, the published protocols, tables and reports (docs/evaluate.md).

``evaluate_dataset(data, out, segmenters, EvalConfig(...))`` runs a protocol over an nnU-Net
dataset; ``medsam2 evaluate`` is its command line. ``segment_batch`` (``medsam2
segment-batch``) segments many volumes resumably.
"""

from __future__ import annotations

from medsam2.evaluation.config import AXES, PROTOCOLS, EvalConfig
from medsam2.evaluation.metrics import MaskMetrics, mask_metrics
from medsam2.evaluation.prompting import SimPrompt, choose_slice, corrective_click, make_prompt
from medsam2.evaluation.run import EvalOutcome, evaluate_dataset
from medsam2.evaluation.segmenters import BASELINES, BaselineSegmenter, ModelSegmenter, Segmenter

__all__ = [
    "AXES",
    "BASELINES",
    "PROTOCOLS",
    "BaselineSegmenter",
    "EvalConfig",
    "EvalOutcome",
    "MaskMetrics",
    "ModelSegmenter",
    "Segmenter",
    "SimPrompt",
    "choose_slice",
    "corrective_click",
    "evaluate_dataset",
    "make_prompt",
    "mask_metrics",
]
