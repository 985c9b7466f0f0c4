"""Training data: nnU-Net v2 raw-layout datasets and prompt simulation."""

from __future__ import annotations

from medsam2.data.datasets import (
    CaseFiles,
    CaseFrames,
    DatasetSpec,
    TrainingDataset,
    geometry_differences,
    image_to_unit,
    read_dataset_json,
    scan_cases,
)
from medsam2.data.prompts import PromptSampler, sample_box, sample_clicks, tight_box

__all__ = [
    "CaseFiles",
    "CaseFrames",
    "DatasetSpec",
    "PromptSampler",
    "TrainingDataset",
    "geometry_differences",
    "image_to_unit",
    "read_dataset_json",
    "sample_box",
    "sample_clicks",
    "scan_cases",
    "tight_box",
]
