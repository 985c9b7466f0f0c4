"""Frozen configuration dataclasses with a JSON round-trip.

`ModelConfig` describes a SAM 2-compatible network completely: the builder in
`medsam2.model.build` reads nothing else.  Field names follow the reference YAML
files (sam2==1.1.0) where a counterpart exists, so a reader can check them side by side.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsam2.errors import ConfigError

__all__ = ["HieraConfig", "ModelConfig", "TRACKERS", "check_tracker", "config_from_dict", "config_to_dict"]

# how unprompted slices of a volume are segmented: SAM 2's memory path, or box chaining
# (medsam2.engine.box_chain); a model's config names the one its weights were chosen with
TRACKERS = ("memory", "box-chain")


def check_tracker(tracker: str) -> str:
    """``tracker`` if known, else a ConfigError naming the choices."""
    if tracker not in TRACKERS:
        raise ConfigError(f"tracker must be one of {', '.join(TRACKERS)}, got {tracker!r}")
    return tracker


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk hyper-parameters (`image_encoder.trunk`)."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    patch_kernel: int = 7
    patch_stride: int = 4
    patch_padding: int = 3

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Output channels per stage, lowest resolution first (the neck's `backbone_channel_list`)."""
        dims = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(dims))


@dataclass(frozen=True)
class ModelConfig:
    """A complete SAM 2 / SAM 2.1 model description.

    `d_model` is the width shared by the FPN neck, prompt encoder, mask decoder and memory
    attention (256 in every public checkpoint); `mem_dim` the memory-encoder output width (64).
    """

    name: str = "sam2.1_hiera_t"
    version: str = "sam2.1"  # "sam2" (v1) or "sam2.1"
    image_size: int = 1024
    trunk: HieraConfig = field(default_factory=HieraConfig)
    d_model: int = 256
    mem_dim: int = 64
    # image encoder / neck
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    scalp: int = 1
    # prompt encoder / mask decoder
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    iou_prediction_use_sigmoid: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    use_high_res_features_in_sam: bool = True
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # memory attention
    mem_attn_layers: int = 4
    mem_attn_heads: int = 1
    mem_attn_ffn_dim: int = 2048
    rope_theta: float = 10000.0
    # memory encoder
    mask_downsampler_kernel: int = 3
    mask_downsampler_stride: int = 2
    mask_downsampler_padding: int = 1
    mask_downsampler_total_stride: int = 16
    fuser_layers: int = 2
    fuser_kernel: int = 7
    fuser_padding: int = 3
    fuser_layer_scale_init: float = 1e-6
    # memory / tracking behaviour
    num_maskmem: int = 7
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    no_obj_embed_spatial: bool = True
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_multimask_token_for_obj_ptr: bool = True
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    binarize_mask_from_pts_for_mem_enc: bool = True
    # Not in SAM 2: a box prompt is also given to the decoder as a dense mask (+/-BOX_MASK_LOGIT
    # inside/outside the box) on a frame without an earlier output. Only models trained with it
    # (an embedded model may be) set it; SAM 2 checkpoints never do.
    box_mask_prompt: bool = False
    # Not in SAM 2: with box_mask_prompt, the clicks on a boxed frame are painted into that dense
    # box as well (discs of +/-CLICK_MASK_LOGIT), so the decoder sees them where they are.
    click_mask_prompt: bool = False
    # Not in SAM 2: how these weights propagate through a volume unless the caller says otherwise
    # (one of TRACKERS). "memory" for every SAM 2 / MedSAM-2 checkpoint; "box-chain" for an
    # embedded model whose box answer is better than its memory (docs/embedded_model.md).
    tracker: str = "memory"

    def __post_init__(self) -> None:
        check_tracker(self.tracker)

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with `changes` applied (e.g. ``cfg.replace(image_size=512)``)."""
        return dataclasses.replace(self, **changes)

    @property
    def feature_size(self) -> int:
        """Side of the lowest-resolution feature map the decoder sees (image_size / 16)."""
        return self.image_size // 16

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(config_to_dict(self), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @staticmethod
    def from_json(text_or_path: str | Path) -> ModelConfig:
        p = Path(text_or_path)
        text = p.read_text() if not str(text_or_path).lstrip().startswith("{") else str(text_or_path)
        return config_from_dict(json.loads(text))


def config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    """Plain-JSON dict of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def _coerce(cls: type, data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config field(s) {unknown}")
    for key, value in data.items():
        if key == "trunk" and isinstance(value, dict):
            value = _coerce(HieraConfig, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`; unknown fields are an error, not silently dropped."""
    cfg = _coerce(ModelConfig, data)
    assert isinstance(cfg, ModelConfig)
    return cfg
