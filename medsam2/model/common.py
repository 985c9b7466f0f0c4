"""Small layers shared by several SAM 2 sub-networks (decoder, memory attention, heads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Attention", "MLP", "LayerNorm2d", "attention", "split_heads", "merge_heads"]

_SCORES_PER_CHUNK = 1 << 22  # CPU attention: query chunks whose score block stays ~16 MiB


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, c) -> (B, N, heads * c)."""
    b, h, n, c = x.shape
    return x.transpose(1, 2).reshape(b, n, h * c)


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(c)) v without dropout: q (..., N, c), k (..., S, c), v (..., S, e) -> (..., N, e).

    On the CPU, when ``e`` differs from ``c`` (no fused kernel then) or the inputs are bf16 (the
    fused CPU kernel is no faster in bf16 than in float32, the plain products are 2-3x faster;
    ``--speed fast``), queries go in chunks whose score block holds about 4M scores: matmul,
    softmax, matmul. Elsewhere ``F.scaled_dot_product_attention``.
    """
    if q.device.type != "cpu" or (v.shape[-1] == q.shape[-1] and q.dtype != torch.bfloat16):
        return F.scaled_dot_product_attention(q, k, v)
    kt = k.transpose(-1, -2)
    scale = q.shape[-1] ** -0.5
    step = max(16, _SCORES_PER_CHUNK // max(k.shape[-2], 1))
    parts = []
    for s in range(0, q.shape[-2], step):
        scores = torch.matmul(q[..., s : s + step, :] * scale, kt)
        parts.append(torch.matmul(torch.softmax(scores, dim=-1), v))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-2)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections and an optional inner down-projection.

    Parameter names (`q_proj`, `k_proj`, `v_proj`, `out_proj`) match SAM 2 checkpoints.
    q: (B, Nq, embedding_dim); k, v: (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = kv_in_dim if kv_in_dim is not None else embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the inner width {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def project(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Input projections, split into heads: each (B, heads, N, c)."""
        h = self.num_heads
        return split_heads(self.q_proj(q), h), split_heads(self.k_proj(k), h), split_heads(self.v_proj(v), h)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Scaled dot-product attention on split heads, then the output projection."""
        p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p) if p > 0 else attention(q, k, v)
        return self.out_proj(merge_heads(out))

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return self.attend(*self.project(q, k, v))


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between them (SAM's `MLP`, parameters `layers.{i}`)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """Channel LayerNorm for (B, C, H, W) maps, eps 1e-6 as in SAM."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]
