"""Preset registry: the public SAM 2 / SAM 2.1 architectures plus small test presets.

Facts come from the reference YAML files (sam2==1.1.0, `configs/sam2*/`): only the Hiera
trunk differs between sizes, and v1 vs 2.1 differ in the object-pointer temporal encoding
and the `no_obj_embed_spatial` embedding.
"""

from __future__ import annotations

import dataclasses

from medsam2.config import HieraConfig, ModelConfig
from medsam2.errors import ConfigError

__all__ = ["PRESETS", "check_image_size", "get_preset", "preset_names"]

_TRUNKS: dict[str, HieraConfig] = {
    "t": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9)),
    "s": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13)),
    "b+": HieraConfig(
        embed_dim=112,
        num_heads=2,
        stages=(2, 3, 16, 3),
        global_att_blocks=(12, 16, 20),
        window_spec=(8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size=(14, 14),
    ),
    "l": HieraConfig(
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        window_spec=(8, 4, 16, 8),
    ),
}

_V1_FLAGS = dict(
    version="sam2",
    add_tpos_enc_to_obj_ptrs=False,
    proj_tpos_enc_in_obj_ptrs=False,
    use_signed_tpos_enc_to_obj_ptrs=False,
    no_obj_embed_spatial=False,
)


def _public(version: str, size: str) -> ModelConfig:
    name = f"{version}_hiera_{size}"
    cfg = ModelConfig(name=name, trunk=_TRUNKS[size])
    if version == "sam2":
        cfg = cfg.replace(**_V1_FLAGS)
    return cfg


def _tiny() -> ModelConfig:
    """A few hundred thousand parameters, same module tree: for fast tests only (not useful weights)."""
    trunk = HieraConfig(
        embed_dim=8,
        num_heads=1,
        stages=(1, 1, 2, 1),
        global_att_blocks=(3,),
        window_spec=(8, 4, 4, 2),
        window_pos_embed_bkg_spatial_size=(4, 4),
    )
    return ModelConfig(
        name="tiny",
        image_size=128,
        trunk=trunk,
        d_model=32,
        mem_dim=16,
        mask_in_chans=4,
        decoder_heads=2,
        decoder_mlp_dim=64,
        iou_head_hidden_dim=32,
        mem_attn_ffn_dim=64,
    )


def _nano() -> ModelConfig:
    """The embedded CPU model: SAM 2's module tree at 256 px with narrow widths (1.1M parameters)."""
    trunk = HieraConfig(
        embed_dim=16,
        num_heads=1,
        stages=(1, 2, 3, 1),
        global_att_blocks=(3, 5),
        window_spec=(8, 4, 8, 4),
        window_pos_embed_bkg_spatial_size=(7, 7),
    )
    return ModelConfig(
        name="nano",
        image_size=256,
        trunk=trunk,
        d_model=64,
        mem_dim=32,
        mask_in_chans=8,
        decoder_heads=4,
        decoder_mlp_dim=256,
        iou_head_hidden_dim=64,
        mem_attn_ffn_dim=256,
    )


def _micro() -> ModelConfig:
    """``nano`` twice as wide, one more block in stage 3 (~4M parameters, 16 MB of float32): the
    largest embedded size the project allows (20 MB), for models that must do more than ``nano``."""
    nano = _nano()
    trunk = dataclasses.replace(nano.trunk, embed_dim=32, stages=(1, 2, 4, 1), global_att_blocks=(4, 6))
    return nano.replace(
        name="micro",
        trunk=trunk,
        d_model=128,
        mem_dim=64,
        decoder_mlp_dim=512,
        iou_head_hidden_dim=128,
        mem_attn_ffn_dim=512,
    )


PRESETS: dict[str, ModelConfig] = {
    f"{v}_hiera_{s}": _public(v, s) for v in ("sam2", "sam2.1") for s in ("t", "s", "b+", "l")
}
PRESETS["tiny"] = _tiny()
PRESETS["nano"] = _nano()
PRESETS["micro"] = _micro()

_ALIASES = {"tiny": "t", "small": "s", "base_plus": "b+", "base-plus": "b+", "large": "l"}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, image_size: int | None = None) -> ModelConfig:
    """Look up a preset by name (e.g. ``sam2.1_hiera_t``; ``sam2.1_hiera_tiny`` also accepted).

    `image_size` overrides the input resolution (multiples of 32; 512 and 1024 are tested).
    """
    key = name
    for long, short in _ALIASES.items():
        if key.endswith(f"_hiera_{long}"):
            key = key[: -len(long)] + short
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    cfg = PRESETS[key]
    return cfg if image_size is None else cfg.replace(image_size=check_image_size(image_size))


def check_image_size(image_size: int) -> int:
    """``image_size`` if the model can take it (a positive multiple of 32), else a ConfigError."""
    if image_size <= 0 or image_size % 32:
        raise ConfigError(f"image_size must be a positive multiple of 32, got {image_size}")
    return image_size
