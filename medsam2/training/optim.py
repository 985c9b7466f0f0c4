"""Optimisation: per-module parameter groups and freezing, AdamW, warm-up + cosine, clipping,
and optional gradient checkpointing.

Module groups (by parameter name, as in SAM 2 checkpoints):

==================  =====================================================================
``image_encoder``   ``image_encoder.*`` (Hiera trunk + FPN neck)
``prompt_encoder``  ``sam_prompt_encoder.*``, ``mask_downsample.*``
``decoder``         ``sam_mask_decoder.*`` (incl. the high-resolution skip convolutions)
``memory``          ``memory_attention.*``, ``memory_encoder.*``, object pointers and the
                    learned memory embeddings (``maskmem_tpos_enc``, ``no_mem_*``, ...)
==================  =====================================================================
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import torch
from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.checkpoint import checkpoint

from medsam2.errors import ConfigError
from medsam2.model.sam2_model import Sam2Model
from medsam2.training.config import MODULE_GROUPS, TrainConfig

__all__ = [
    "module_group",
    "param_groups",
    "build_optimizer",
    "build_scheduler",
    "lr_factor",
    "enable_gradient_checkpointing",
]

log = logging.getLogger(__name__)

_PREFIXES: dict[str, tuple[str, ...]] = {
    "image_encoder": ("image_encoder.",),
    "prompt_encoder": ("sam_prompt_encoder.", "mask_downsample."),
    "decoder": ("sam_mask_decoder.",),
}


def module_group(name: str) -> str:
    """The module group of a parameter name (everything not listed above is ``memory``)."""
    for group, prefixes in _PREFIXES.items():
        if name.startswith(prefixes):
            return group
    return "memory"


def param_groups(model: Sam2Model, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups: per module group, split into decayed (matrices) and not decayed
    (biases, norms, 1-D embeddings). Frozen groups (``cfg.freeze`` or learning rate 0) get
    ``requires_grad=False`` and no group."""
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    frozen = set(cfg.freeze) | {g for g in MODULE_GROUPS if cfg.group_lr(g) == 0.0}
    for name, p in model.named_parameters():
        group = module_group(name)
        if group in frozen:
            p.requires_grad_(False)
            continue
        p.requires_grad_(True)
        buckets.setdefault((group, p.ndim >= 2), []).append(p)
    groups: list[dict[str, Any]] = []
    for (group, decay), params in sorted(buckets.items()):
        groups.append(
            {
                "params": params,
                "lr": cfg.group_lr(group),
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "name": f"{group}{'' if decay else '.no_decay'}",
            }
        )
    if not groups:
        raise ConfigError("training option 'freeze': every module group is frozen; nothing to train")
    counts = {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}
    log.info("trainable parameters by group: %s; frozen: %s", counts, sorted(frozen) or "none")
    return groups


def build_optimizer(model: Sam2Model, cfg: TrainConfig) -> Optimizer:
    """AdamW over :func:`param_groups`."""
    return AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up from
    1/(warmup+1) over ``warmup_steps``, then cosine from 1 down to ``min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig) -> LambdaLR:
    """Warm-up + cosine (:func:`lr_factor`), stepped once per optimiser step."""
    return LambdaLR(optimizer, functools.partial(lr_factor, cfg=cfg))


def _checkpointed(forward: Any, *args: Any, **kwargs: Any) -> Any:
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def enable_gradient_checkpointing(model: Sam2Model) -> int:
    """Recompute the activations of Hiera blocks and memory-attention layers in the backward pass
    instead of storing them (less memory, about a third more compute). Parameter names and
    results are unchanged. Returns the number of wrapped modules."""
    modules: list[nn.Module] = list(getattr(model.image_encoder.trunk, "blocks", []))
    modules += list(getattr(model.memory_attention, "layers", []))
    for m in modules:
        if not getattr(m, "_medsam2_checkpointed", False):
            m.forward = functools.partial(_checkpointed, m.forward)  # type: ignore[method-assign]
            m._medsam2_checkpointed = True  # type: ignore[assignment]
    return len(modules)
