"""Sine position encoding of feature maps (FPN neck, memory encoder)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinePositionEncoding"]


class SinePositionEncoding(nn.Module):
    """2D sine/cosine encoding with normalised coordinates (scale 2*pi), DETR style.

    Has no parameters; `forward(x)` returns a (B, num_pos_feats, H, W) tensor for x of shape
    (B, *, H, W). Results are cached per (H, W, device) since they only depend on the size.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError("num_pos_feats must be even")
        self.half_dim = num_pos_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple[int, int, str], Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device) -> Tensor:
        key = (h, w, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        eps = 1e-6
        ys = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + eps) * self.scale
        xs = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + eps) * self.scale
        k = torch.arange(self.half_dim, dtype=torch.float32, device=device)
        freq = self.temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / self.half_dim)
        ang_y = ys[:, None] / freq  # (h, half)
        ang_x = xs[:, None] / freq  # (w, half)

        def interleave(a: Tensor) -> Tensor:  # sin on even, cos on odd channels
            return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

        pe_y = interleave(ang_y)[:, None, :].expand(h, w, self.half_dim)
        pe_x = interleave(ang_x)[None, :, :].expand(h, w, self.half_dim)
        pe = torch.cat((pe_y, pe_x), dim=2).permute(2, 0, 1).contiguous()  # (C, h, w)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = pe
        return pe

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        pe = self._grid(x.shape[-2], x.shape[-1], x.device)
        return pe.to(x.dtype)[None].expand(x.shape[0], -1, -1, -1)
