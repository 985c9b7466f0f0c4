"""Memory encoder: fuses a frame's features with its predicted mask into a memory entry.

The mask (at 16x the feature resolution) is downsampled by strided convolutions to the feature
grid, added to a 1x1 projection of the frame features, refined by ConvNeXt-style blocks and
projected to ``out_dim`` (mem_dim) channels. Parameter names match the ``memory_encoder.*``
entries of SAM 2 / SAM 2.1 checkpoints.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsam2.config import ModelConfig
from medsam2.model.common import LayerNorm2d
from medsam2.model.position_encoding import SinePositionEncoding

__all__ = [
    "CXBlock",
    "Fuser",
    "MaskDownSampler",
    "MemoryEncoder",
    "MemoryEncoderOutput",
    "build_memory_encoder",
]


class MaskDownSampler(nn.Module):
    """Strided conv + LayerNorm2d + GELU stages up to ``total_stride``, then a 1x1 conv.

    Channels grow by stride**2 per stage (1 -> 4 -> 16 -> 64 -> 256 for stride 2, total 16).
    Parameters live in ``encoder.{i}`` (conv, norm, act per stage; the final conv last).
    (B, 1, H, W) -> (B, embed_dim, H / total_stride, W / total_stride).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        total_stride: int = 16,
    ) -> None:
        super().__init__()
        num_stages = round(math.log(total_stride) / math.log(stride))
        if stride**num_stages != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        modules: list[nn.Module] = []
        channels = 1
        for _ in range(num_stages):
            out_channels = channels * stride * stride
            modules += [
                nn.Conv2d(channels, out_channels, kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out_channels),
                nn.GELU(),
            ]
            channels = out_channels
        modules.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*modules)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) mask -> (B, embed_dim, H / total_stride, W / total_stride)."""
        out: Tensor = self.encoder(x)
        return out


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, channel LayerNorm, pointwise MLP (x4), layer scale, residual.

    The pointwise layers are ``nn.Linear`` applied channels-last (as in the checkpoints).
    (B, dim, H, W) -> (B, dim, H, W).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        padding: int = 3,
        layer_scale_init_value: float = 1e-6,
        use_dwconv: bool = True,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma: nn.Parameter | None = (
            nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
            if layer_scale_init_value > 0
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, dim, H, W) -> (B, dim, H, W)."""
        y = self.dwconv(x).permute(0, 2, 3, 1)  # channels-last view
        # same normalisation as LayerNorm2d over channels, done by the fused channels-last kernel
        y = F.layer_norm(y, (y.shape[-1],), self.norm.weight, self.norm.bias, self.norm.eps)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        if self.gamma is not None:
            y = y * self.gamma
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """``num_layers`` copies of a block applied in sequence (``layers.N``); shape-preserving."""

    def __init__(self, layer: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoderOutput(NamedTuple):
    """Result of :class:`MemoryEncoder`.

    features: (B, mem_dim, h, w) memory features (a fresh tensor; may be modified in place).
    pos_enc: (B, mem_dim, h, w) sine position encoding; an expanded view of a cached table,
    so treat it as read-only (clone before any in-place change).
    """

    features: Tensor
    pos_enc: Tensor


class MemoryEncoder(nn.Module):
    """Encode (frame features, mask) into a memory entry of ``out_dim`` channels.

    Submodules: ``mask_downsampler``, ``pix_feat_proj`` (1x1 conv), ``fuser``, ``out_proj``
    (1x1 conv d_model -> out_dim, identity when equal), and a parameter-free sine encoding.
    """

    def __init__(
        self,
        out_dim: int = 64,
        d_model: int = 256,
        mask_kernel_size: int = 3,
        mask_stride: int = 2,
        mask_padding: int = 1,
        mask_total_stride: int = 16,
        fuser_layers: int = 2,
        fuser_kernel_size: int = 7,
        fuser_padding: int = 3,
        layer_scale_init_value: float = 1e-6,
    ) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(
            d_model, mask_kernel_size, mask_stride, mask_padding, mask_total_stride
        )
        self.pix_feat_proj = nn.Conv2d(d_model, d_model, kernel_size=1)
        block = CXBlock(d_model, fuser_kernel_size, fuser_padding, layer_scale_init_value)
        self.fuser = Fuser(block, fuser_layers)
        self.out_proj: nn.Module = (
            nn.Conv2d(d_model, out_dim, kernel_size=1) if out_dim != d_model else nn.Identity()
        )
        self.position_encoding = SinePositionEncoding(out_dim)

    def forward(
        self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False
    ) -> MemoryEncoderOutput:
        """pix_feat (B, d_model, h, w), masks (B, 1, 16h, 16w) -> features, pos_enc (B, out_dim, h, w).

        ``masks`` are logits passed through a sigmoid unless ``skip_mask_sigmoid`` (the tracker
        feeds already scaled probabilities and sets it).
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(masks)
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return MemoryEncoderOutput(x, pos)


def build_memory_encoder(cfg: ModelConfig) -> MemoryEncoder:
    """Memory encoder as configured by ``cfg`` (in width d_model, out width mem_dim)."""
    return MemoryEncoder(
        out_dim=cfg.mem_dim,
        d_model=cfg.d_model,
        mask_kernel_size=cfg.mask_downsampler_kernel,
        mask_stride=cfg.mask_downsampler_stride,
        mask_padding=cfg.mask_downsampler_padding,
        mask_total_stride=cfg.mask_downsampler_total_stride,
        fuser_layers=cfg.fuser_layers,
        fuser_kernel_size=cfg.fuser_kernel,
        fuser_padding=cfg.fuser_padding,
        layer_scale_init_value=cfg.fuser_layer_scale_init,
    )
