"""Memory attention with per-memory keys computed once (inference only, same math).

In SAM 2's memory attention every query frame projects and RoPE-rotates the keys of every
memory it attends to, although a memory's features never change. This module splits that work:

* :func:`project_memory` turns one spatial memory into its keys for every layer, rotated, once
  (``k_proj(features + pos)``; the temporal encoding is left out);
* :func:`assemble_memory` builds one frame's keys (layer by layer) and values from those: a memory's temporal
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

__all__ = ["MemoryKeys", "PreparedMemory", "project_memory", "temporal_key", "assemble_memory"]


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
    """One frame's memory, its keys built one layer at a time (:meth:`layer_keys`) so that only
    one layer's (B, heads, S, c) keys exist at once; values (B, 1, S, kv_in_dim) are shared.

    ``memories``: each memory's keys and its temporal encoding (kv_in_dim,) or None;
    ``pointers``: pointer tokens and their position encodings, each (P, B, kv_in_dim), or None.
    The last P of the S tokens are the pointers (not rotated).
    """

    attn: MemoryAttention
    memories: tuple[tuple[MemoryKeys, Tensor | None], ...]
    pointers: tuple[Tensor, Tensor] | None
    values: Tensor
    batch: int
    size: tuple[int, int]

    def layer_keys(self, index: int) -> Tensor:
        """Keys of layer ``index``: (B, heads, S, c)."""
        temporal: dict[int, Tensor] = {}
        parts = []
        for mk, enc in self.memories:
            if enc is not None and id(enc) not in temporal:
                temporal[id(enc)] = temporal_key(self.attn, index, enc, self.size)
            parts.append((mk.keys[index], None if enc is None else temporal[id(enc)]))
        ptr = None if self.pointers is None else _pointer_keys(self.attn, index, *self.pointers)
        return _layer_keys(parts, ptr, self.batch)


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


def temporal_key(attn: MemoryAttention, index: int, tpos_enc: Tensor, size: tuple[int, int]) -> Tensor:
    """``rot(W_k t)`` of layer ``index`` for a temporal encoding t (kv_in_dim,): (1, heads, h * w, c)."""
    cross = _cross(attn, index)
    kt = torch.mv(cross.k_proj.weight, tpos_enc.reshape(-1).float())  # no bias: it is in the keys
    pairs = torch.view_as_complex(kt.view(cross.num_heads, 1, -1, 2).contiguous())
    table = axial_rope_table(cross.head_dim, size[0], size[1], cross.rope_theta, kt.device)
    return torch.view_as_real(pairs * table).flatten(-2)[None]


def _pointer_keys(attn: MemoryAttention, index: int, tokens: Tensor, pos: Tensor) -> Tensor:
    """Unrotated keys of pointer tokens (P, B, kv) -> (B, heads, P, c)."""
    cross = _cross(attn, index)
    x = (tokens + pos if attn.pos_enc_at_cross_attn_keys else tokens).transpose(0, 1)
    return split_heads(cross.k_proj(x), cross.num_heads)


def assemble_memory(
    attn: MemoryAttention,
    memories: list[tuple[MemoryKeys, Tensor | None]],
    pointers: tuple[Tensor, Tensor] | None,
    batch: int,
    size: tuple[int, int],
) -> PreparedMemory:
    """One frame's :class:`PreparedMemory` from its memories (keys, temporal encoding (kv_in_dim,)
    or None; pass the same tensor for equal encodings) and pointer tokens ((P, B, kv) tokens and
    position encodings), in attention order, on an (h, w) grid."""
    values = [mk.values.expand(batch, -1, -1, -1) for mk, _ in memories]
    if pointers is not None:
        values.append(pointers[0].transpose(0, 1)[:, None].float())
    return PreparedMemory(attn, tuple(memories), pointers, torch.cat(values, dim=-2), batch, size)


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
