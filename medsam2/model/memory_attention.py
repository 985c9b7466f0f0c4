"""Memory attention: conditions the current frame's features on the memory bank.

A stack of pre-norm transformer layers: RoPE self-attention over the current frame's tokens,
RoPE cross-attention from those tokens to the memory (spatial memories of past frames followed by
object-pointer tokens, which are not rotated), and a ReLU MLP; then a final LayerNorm.
Parameter names match the ``memory_attention.*`` entries of SAM 2 / SAM 2.1 checkpoints.

Positional-encoding placement follows the public configs: the current frame's position
encoding is added once at the input with weight 0.1; memory keys get the memory position
encoding in every layer; self-attention and cross-attention queries get none.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from medsam2.config import ModelConfig
from medsam2.model.rope import RoPEAttention

__all__ = ["MemoryAttention", "MemoryAttentionLayer", "build_memory_attention"]


class MemoryAttentionLayer(nn.Module):
    """One pre-norm layer: self-attention, cross-attention to memory, feed-forward.

    Works batch-first: tgt (B, L, d_model), memory (B, M, kv_in_dim) -> (B, L, d_model).
    """

    def __init__(
        self,
        d_model: int = 256,
        num_heads: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        kv_in_dim: int = 64,
        rope_theta: float = 10000.0,
        pos_enc_at_attn: bool = False,
        pos_enc_at_cross_attn_keys: bool = True,
        pos_enc_at_cross_attn_queries: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.self_attn = RoPEAttention(d_model, num_heads, dropout=dropout, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(
            d_model,
            num_heads,
            dropout=dropout,
            kv_in_dim=kv_in_dim,
            rope_theta=rope_theta,
            rope_k_repeat=True,
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout_p = dropout
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries

    def _drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout_p, training=True) if self.training and self.dropout_p > 0 else x

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        num_k_exclude_rope: int = 0,
        feat_size: tuple[int, int] | None = None,
        memory_keys: Tensor | None = None,
    ) -> Tensor:
        """tgt (B, L, C), memory and memory_pos (B, M, kv_in_dim), query_pos (B, L, C) -> (B, L, C).

        The last ``num_k_exclude_rope`` memory tokens are object pointers (no RoPE).
        ``memory_keys`` may pass the cross-attention keys precomputed (``memory + memory_pos``
        when ``pos_enc_at_cross_attn_keys``) so a stack of layers forms them only once.
        """
        x = self.norm1(tgt)
        qk = x + query_pos if self.pos_enc_at_attn and query_pos is not None else x
        tgt = tgt + self._drop(self.self_attn(qk, qk, x, feat_size=feat_size))

        x = self.norm2(tgt)
        if self.pos_enc_at_cross_attn_queries and query_pos is not None:
            x = x + query_pos
        if memory_keys is None:
            memory_keys = self.cross_attn_keys(memory, memory_pos)
        attn = self.cross_attn_image(x, memory_keys, memory, num_k_exclude_rope, feat_size)
        tgt = tgt + self._drop(attn)

        return self._feed_forward(tgt)

    def _feed_forward(self, tgt: Tensor) -> Tensor:
        x = self.linear2(self._drop(F.relu(self.linear1(self.norm3(tgt)))))
        return tgt + self._drop(x)

    def forward_prepared(
        self,
        tgt: Tensor,
        keys: Tensor,
        values: Tensor,
        query_pos: Tensor | None = None,
        feat_size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Inference step on prepared memory: tgt (B, L, C), keys (B, heads, S, c) projected and
        rotated, values (B, 1, S, kv_in_dim) unprojected -> (B, L, C). No dropout."""
        x = self.norm1(tgt)
        qk = x + query_pos if self.pos_enc_at_attn and query_pos is not None else x
        tgt = tgt + self.self_attn(qk, qk, x, feat_size=feat_size)
        x = self.norm2(tgt)
        if self.pos_enc_at_cross_attn_queries and query_pos is not None:
            x = x + query_pos
        tgt = tgt + self.cross_attn_image.attend_memory(x, keys, values, feat_size)
        return self._feed_forward(tgt)

    def cross_attn_keys(self, memory: Tensor, memory_pos: Tensor | None) -> Tensor:
        """Keys fed to cross-attention: memory, plus memory_pos if this layer adds it there."""
        if self.pos_enc_at_cross_attn_keys and memory_pos is not None:
            return memory + memory_pos
        return memory


class MemoryAttention(nn.Module):
    """Stack of :class:`MemoryAttentionLayer` (``layers.N``) followed by LayerNorm ``norm``.

    The interface is sequence-first like the reference, because the model passes flattened
    feature maps: ``curr`` (L, B, d_model) with L = h * w tokens in row-major grid order,
    ``memory`` (M, B, kv_in_dim) = r spatial memories of L tokens each, then
    ``num_obj_ptr_tokens`` object-pointer tokens. The output is (L, B, d_model) (a transposed
    view; call ``.contiguous()`` or ``permute(1, 2, 0).reshape(...)`` as needed).
    """

    def __init__(
        self,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        kv_in_dim: int = 64,
        rope_theta: float = 10000.0,
        pos_enc_at_input: bool = True,
        pos_enc_at_attn: bool = False,
        pos_enc_at_cross_attn_keys: bool = True,
        pos_enc_at_cross_attn_queries: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_layers = num_layers
        self.pos_enc_at_input = pos_enc_at_input
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys
        layer = MemoryAttentionLayer(
            d_model,
            num_heads,
            dim_feedforward,
            dropout,
            kv_in_dim,
            rope_theta,
            pos_enc_at_attn,
            pos_enc_at_cross_attn_keys,
            pos_enc_at_cross_attn_queries,
        )
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: Tensor | list[Tensor],
        curr_pos: Tensor | list[Tensor] | None,
        memory: Tensor,
        memory_pos: Tensor | None,
        num_obj_ptr_tokens: int = 0,
        feat_size: tuple[int, int] | None = None,
    ) -> Tensor:
        """curr, curr_pos (L, B, d_model); memory, memory_pos (M, B, kv_in_dim) -> (L, B, d_model).

        ``curr``/``curr_pos`` may also be one-element lists (the reference's calling style).
        ``feat_size`` is the (h, w) grid of ``curr``; by default L must be a perfect square.
        """
        if isinstance(curr, list):
            if len(curr) != 1:
                raise ValueError(f"expected a single feature level, got {len(curr)}")
            curr = curr[0]
        if isinstance(curr_pos, list):
            if len(curr_pos) != 1:
                raise ValueError(f"expected a single position encoding, got {len(curr_pos)}")
            curr_pos = curr_pos[0]
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(f"batch mismatch: curr {tuple(curr.shape)} vs memory {tuple(memory.shape)}")

        out = curr
        if self.pos_enc_at_input and curr_pos is not None:
            out = out + 0.1 * curr_pos
        # batch-first inside (views, no copies)
        out = out.transpose(0, 1)
        query_pos = curr_pos.transpose(0, 1) if curr_pos is not None else None
        mem = memory.transpose(0, 1)
        mem_pos = memory_pos.transpose(0, 1) if memory_pos is not None else None

        # every layer forms its cross-attention keys identically: do it once here
        keys = mem + mem_pos if self.pos_enc_at_cross_attn_keys and mem_pos is not None else mem
        for layer in self.layers:
            out = layer(out, mem, mem_pos, query_pos, num_obj_ptr_tokens, feat_size, memory_keys=keys)
        return self.norm(out).transpose(0, 1)

    def forward_prepared(
        self,
        curr: Tensor,
        curr_pos: Tensor | None,
        keys: Callable[[int], Tensor],
        values: Tensor,
        feat_size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Inference on prepared memory (:func:`medsam2.model.memory_kv.assemble_memory`).

        curr, curr_pos (L, B, d_model); keys(i): layer i's keys (B, heads, S, c), built when
        that layer runs; values (B, 1, S, kv_in_dim) -> (L, B, d_model), the same function as
        :meth:`forward` up to rounding.
        """
        out = curr + 0.1 * curr_pos if self.pos_enc_at_input and curr_pos is not None else curr
        out = out.transpose(0, 1)
        query_pos = curr_pos.transpose(0, 1) if curr_pos is not None else None
        for index, layer in enumerate(self.layers):
            assert isinstance(layer, MemoryAttentionLayer)
            out = layer.forward_prepared(out, keys(index), values, query_pos, feat_size)
        return self.norm(out).transpose(0, 1)


def build_memory_attention(cfg: ModelConfig) -> MemoryAttention:
    """Memory attention as configured by ``cfg`` (dropout 0.1, active only in training)."""
    return MemoryAttention(
        d_model=cfg.d_model,
        num_layers=cfg.mem_attn_layers,
        num_heads=cfg.mem_attn_heads,
        dim_feedforward=cfg.mem_attn_ffn_dim,
        dropout=0.1,
        kv_in_dim=cfg.mem_dim,
        rope_theta=cfg.rope_theta,
    )
