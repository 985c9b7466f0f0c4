"""SAM 2 image encoder: Hiera trunk + FPN neck, returning multi-scale features with position encodings.

Parameter names match the reference checkpoints (`image_encoder.trunk.*`, `image_encoder.neck.*`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsam2.config import ModelConfig
from medsam2.model.hiera import Hiera
from medsam2.model.position_encoding import SinePositionEncoding

__all__ = ["FpnNeck", "ImageEncoder", "ImageFeatures", "build_image_encoder"]


@dataclass(frozen=True)
class ImageFeatures:
    """Output of :class:`ImageEncoder` for a batch of B images of side S.

    vision_features: (B, d, S/16, S/16), the lowest-resolution level kept (== backbone_fpn[-1]).
    vision_pos_enc: one (B, d, H_i, W_i) sine encoding per kept level.
    backbone_fpn: the kept FPN levels (B, d, H_i, W_i), highest resolution first; with the default
        `scalp=1` these are S/4, S/8 and S/16.
    """

    vision_features: Tensor
    vision_pos_enc: list[Tensor]
    backbone_fpn: list[Tensor]


class _Lateral(nn.Module):
    """Holder of the lateral 1x1 convolution, so that it is named `convs.{i}.conv` as in checkpoints."""

    def __init__(self, in_channels: int, d_model: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, d_model, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, d_model, H, W), keeping a channels-last input channels-last."""
        if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
            return self.conv(x)
        # a 1x1 convolution of channels-last data is one matrix product over the pixels
        weight = self.conv.weight.view(self.conv.out_channels, -1)
        return F.linear(x.permute(0, 2, 3, 1), weight, self.conv.bias).permute(0, 3, 1, 2)


class FpnNeck(nn.Module):
    """Feature-pyramid neck: lateral 1x1 convolutions plus top-down fusion on selected levels.

    `backbone_channel_list` gives the trunk channels lowest resolution first (`convs.0` acts on
    the lowest-resolution map). Levels are indexed highest resolution first; a level in
    `fpn_top_down_levels` adds the 2x-upsampled (`fpn_interp_model`) output of the level below it,
    the others are lateral features only.

    forward(xs: [(B, C_i, H_i, W_i)] highest resolution first) ->
        (features [(B, d_model, H_i, W_i)], position encodings [(B, d_model, H_i, W_i)]).
    """

    def __init__(
        self,
        d_model: int,
        backbone_channel_list: Sequence[int],
        fpn_top_down_levels: Sequence[int] | None = None,
        fpn_interp_model: str = "nearest",
        position_encoding: nn.Module | None = None,
    ):
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList(_Lateral(c, d_model) for c in self.backbone_channel_list)
        n = len(self.convs)
        self.fpn_top_down_levels = list(range(n) if fpn_top_down_levels is None else fpn_top_down_levels)
        self.fpn_interp_model = fpn_interp_model
        self.position_encoding = (
            position_encoding if position_encoding is not None else SinePositionEncoding(d_model)
        )

    def _upsample(self, x: Tensor) -> Tensor:
        align = None if self.fpn_interp_model == "nearest" else False
        return F.interpolate(
            x.to(torch.float32), scale_factor=2.0, mode=self.fpn_interp_model, align_corners=align
        )

    def forward(self, xs: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"expected {n} feature maps, got {len(xs)}")
        feats: list[Tensor] = [xs[0]] * n
        prev: Tensor | None = None
        for i in range(n - 1, -1, -1):  # lowest resolution first
            lateral = self.convs[n - 1 - i](xs[i])
            if prev is not None and i in self.fpn_top_down_levels:
                lateral = lateral + self._upsample(prev)
            feats[i] = prev = lateral
        pos = [self.position_encoding(f).to(f.dtype) for f in feats]
        return feats, pos


class ImageEncoder(nn.Module):
    """Trunk + neck; drops the `scalp` lowest-resolution levels.

    forward(images: (B, 3, S, S), normalised) -> :class:`ImageFeatures`.
    """

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1):
        super().__init__()
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(
                f"trunk channels {trunk.channel_list} != neck channels {neck.backbone_channel_list}"
            )
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, images: Tensor) -> ImageFeatures:
        feats, pos = self.neck(self.trunk(images))
        if self.scalp > 0:
            feats, pos = feats[: -self.scalp], pos[: -self.scalp]
        return ImageFeatures(vision_features=feats[-1], vision_pos_enc=pos, backbone_fpn=feats)


def build_image_encoder(cfg: ModelConfig) -> ImageEncoder:
    """The image encoder described by `cfg` (trunk from `cfg.trunk`, neck width `cfg.d_model`)."""
    t = cfg.trunk
    trunk = Hiera(
        embed_dim=t.embed_dim,
        num_heads=t.num_heads,
        stages=tuple(t.stages),
        global_att_blocks=tuple(t.global_att_blocks),
        window_spec=tuple(t.window_spec),
        window_pos_embed_bkg_spatial_size=(
            t.window_pos_embed_bkg_spatial_size[0],
            t.window_pos_embed_bkg_spatial_size[1],
        ),
        q_pool=t.q_pool,
        q_stride=(t.q_stride[0], t.q_stride[1]),
        dim_mul=t.dim_mul,
        head_mul=t.head_mul,
        mlp_ratio=t.mlp_ratio,
        patch_kernel=t.patch_kernel,
        patch_stride=t.patch_stride,
        patch_padding=t.patch_padding,
    )
    neck = FpnNeck(
        d_model=cfg.d_model,
        backbone_channel_list=t.channel_list,
        fpn_top_down_levels=cfg.fpn_top_down_levels,
        fpn_interp_model=cfg.fpn_interp_model,
    )
    return ImageEncoder(trunk, neck, scalp=cfg.scalp)
