"""Memory attention with per-memory keys computed once (inference only, same math).

In SAM 2's memory attention every query frame projects and RoPE-rotates the keys of every
memory it attends to, although a memory's features never change. This module splits that work:

* :func:`project_memory` turns one spatial memory into its keys for every layer, rotated, once
  (``k_proj(features + pos)``; the temporal encoding is left out);
* :func:`assemble_memory` builds one frame's key/value tensors from those: a memory's temporal
  encoding ``t`` enters the keys through linearity, ``rot(k_proj(x + t)) = rot(k_proj(x)) +
  rot(W_k t)``, where ``rot(W_k t)`` is a constant vector rotated per token.

Values are never projected: the attention weights of a query sum to one, so
``softmax(S) (M W_v^T + b) = (softmax(S) M) W_v^T + b``; attention runs on the raw
``kv_in_dim``-wide memory tokens (64 instead of 256 channels) and ``v_proj`` is applied to the
result (see :meth:`RoPEAttention.attend_memory`). Both rewrites are exact in real arithmetic and
change float32 results by rounding only; without dropout (inference) they are the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from medsam2.model.common import split_heads
from medsam2.model.memory_attention import MemoryAttention
from medsam2.model.rope import RoPEAttention, axial_rope_table, rotate

__all__ = ["MemoryKeys", "PreparedMemory", "project_memory", "temporal_keys", "assemble_memory"]


@dataclass(frozen=True)
class MemoryKeys:
    """Cross-attention inputs of one spatial memory of N = h * w tokens.

    keys: one (1, heads, N, c) tensor per layer, ``rot(k_proj(features + pos))``;
    values: (1, 1, N, kv_in_dim) float32 memory features (shared by all layers).
    """

    keys: tuple[Tensor, ...]
    values: Tensor

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return sum(k.numel() * k.element_size() for k in self.keys) + self.values.numel() * 4


@dataclass(frozen=True)
class PreparedMemory:
    """One frame's memory for every layer: keys (B, heads, S, c) per layer, values (B, 1, S, kv).

    The last ``num_pointer_tokens`` of the S tokens are object pointers (not rotated).
    """

    keys: tuple[Tensor, ...]
    values: Tensor
    num_pointer_tokens: int


def _tokens(x: Tensor) -> Tensor:
    """(1, C, h, w) -> (1, h * w, C) float32."""
    return x.float().flatten(2).transpose(1, 2)


def _cross(attn: MemoryAttention, index: int) -> RoPEAttention:
    layer = attn.layers[index]
    cross = layer.cross_attn_image
    assert isinstance(cross, RoPEAttention)
    return cross


def project_memory(attn: MemoryAttention, features: Tensor, pos: Tensor) -> MemoryKeys:
    """Keys of one memory for every layer: features, pos (1, kv_in_dim, h, w) -> MemoryKeys."""
    h, w = features.shape[-2:]
    values = _tokens(features)
    keys_in = values + _tokens(pos) if attn.pos_enc_at_cross_attn_keys else values
    keys = []
    for i in range(attn.num_layers):
        cross = _cross(attn, i)
        k = split_heads(cross.k_proj(keys_in), cross.num_heads)
        table = axial_rope_table(cross.head_dim, h, w, cross.rope_theta, k.device)
        keys.append(rotate(k, table))
    return MemoryKeys(tuple(keys), values[:, None])


def temporal_keys(attn: MemoryAttention, tpos_enc: Tensor, size: tuple[int, int]) -> tuple[Tensor, ...]:
    """``rot(W_k t)`` per layer for a temporal encoding t (kv_in_dim,): each (1, heads, h * w, c)."""
    h, w = size
    out = []
    for i in range(attn.num_layers):
        cross = _cross(attn, i)
        kt = torch.mv(cross.k_proj.weight, tpos_enc.reshape(-1).float())  # no bias: it is in the keys
        pairs = torch.view_as_complex(kt.view(cross.num_heads, 1, -1, 2).contiguous())
        table = axial_rope_table(cross.head_dim, h, w, cross.rope_theta, kt.device)
        out.append(torch.view_as_real(pairs * table).flatten(-2)[None])
    return tuple(out)


def _pointer_keys(attn: MemoryAttention, index: int, tokens: Tensor, pos: Tensor) -> Tensor:
    """Unrotated keys of pointer tokens (P, B, kv) -> (B, heads, P, c)."""
    cross = _cross(attn, index)
    x = (tokens + pos if attn.pos_enc_at_cross_attn_keys else tokens).transpose(0, 1)
    return split_heads(cross.k_proj(x), cross.num_heads)


def assemble_memory(
    attn: MemoryAttention,
    memories: list[tuple[MemoryKeys, tuple[Tensor, ...] | None]],
    pointers: tuple[Tensor, Tensor] | None,
    batch: int,
) -> PreparedMemory:
    """Concatenate memories (keys, temporal keys or None) and pointer tokens ((P, B, kv) tokens
    and position encodings) into one frame's :class:`PreparedMemory`, in attention order."""
    values = [mk.values.expand(batch, -1, -1, -1) for mk, _ in memories]
    num_ptr = 0
    if pointers is not None:
        values.append(pointers[0].transpose(0, 1)[:, None].float())
        num_ptr = pointers[0].shape[0]
    keys = []
    for i in range(attn.num_layers):
        ptr_keys = None if pointers is None else _pointer_keys(attn, i, pointers[0], pointers[1])
        keys.append(
            _layer_keys([(mk.keys[i], None if tk is None else tk[i]) for mk, tk in memories], ptr_keys, batch)
        )
    return PreparedMemory(tuple(keys), torch.cat(values, dim=-2), num_ptr)


def _layer_keys(parts: list[tuple[Tensor, Tensor | None]], ptr_keys: Tensor | None, batch: int) -> Tensor:
    """One layer's keys (batch, heads, S, c): each memory's keys plus its temporal keys (written
    straight into the output, no temporary), then the pointer keys."""
    blocks = [k for k, _ in parts] + ([] if ptr_keys is None else [ptr_keys])
    heads, c = blocks[0].shape[1], blocks[0].shape[-1]
    out = blocks[0].new_empty(batch, heads, sum(b.shape[-2] for b in blocks), c)
    start = 0
    for k, t in parts:
        dst = out[:, :, start : start + k.shape[-2]]
        if t is None:
            dst.copy_(k.expand_as(dst))
        else:
            torch.add(k.expand_as(dst), t, out=dst)
        start += k.shape[-2]
    if ptr_keys is not None:
        out[:, :, start:] = ptr_keys
    return out
