"""Test-only access to Meta's reference SAM 2 (`sam2==1.1.0`, installed by `make test`).

Builds reference models with random weights and perturbs every parameter, so that parity
checks exercise all weights (the reference initialises some tensors to zero or 1e-6 layer scales,
which would make a wrong implementation of those paths pass unnoticed).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

REF_CONFIGS = {
    "sam2_hiera_t": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_s": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_b+": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_l": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def require_reference() -> Any:
    """Import the reference package or skip (it is a dev dependency; `make test` installs it)."""
    return pytest.importorskip("sam2.build_sam", reason="reference sam2==1.1.0 not installed")


def perturb_(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Add deterministic Gaussian noise to every parameter and floating buffer, in place."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            p.add_(torch.randn(p.shape, generator=gen) * scale)
        # SAM 2's layer scales start at 1e-6; lift them so the fuser really contributes
        for name, p in module.named_parameters():
            if name.endswith(".gamma"):
                p.add_(0.1)
    return module


@functools.lru_cache(maxsize=4)
def _cached(name: str, image_size: int, video: bool, seed: int) -> torch.nn.Module:
    build = require_reference()
    torch.manual_seed(seed)  # the reference's own initialisation, made reproducible
    overrides = [f"++model.image_size={image_size}"]
    if video:
        model = build.build_sam2_video_predictor(
            REF_CONFIGS[name], ckpt_path=None, device="cpu", hydra_overrides_extra=overrides
        )
        model.fill_hole_area = 0  # its hole filling needs the CUDA extension (DESIGN.md section 4)
    else:
        model = build.build_sam2(
            REF_CONFIGS[name], ckpt_path=None, device="cpu", hydra_overrides_extra=overrides
        )
    torch.manual_seed(seed)
    perturb_(model, seed=seed)
    return model.eval()


def reference_model(name: str, image_size: int = 512, video: bool = False, seed: int = 0) -> torch.nn.Module:
    """A reference SAM2Base (or SAM2VideoPredictor when `video`) with perturbed random weights."""
    return _cached(name, image_size, video, seed)
