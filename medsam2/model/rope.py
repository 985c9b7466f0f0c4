"""2D axial rotary position encoding (RoPE) and the attention layer that uses it.

Memory attention in SAM 2 rotates queries and keys by angles that depend on each token's
(x, y) position in the stride-16 feature grid. The head dimension ``c`` is treated as ``c / 2``
consecutive channel pairs; the first ``c / 4`` pairs rotate with the x coordinate, the last
``c / 4`` with the y coordinate, both using frequencies ``theta ** (-4 k / c)`` for
``k = 0 .. c/4 - 1``. This matches sam2==1.1.0 (`compute_axial_cis` + `apply_rotary_enc`),
with the rotation tables cached per grid size and device instead of rebuilt per call.

Tokens are laid out row-major over the (h, w) grid: token ``t`` sits at ``x = t % w``,
``y = t // w``, i.e. the order of ``feature_map.flatten(2)``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor

from medsam2.model.common import Attention, attention, merge_heads, split_heads

__all__ = ["RoPEAttention", "apply_rope", "axial_rope_table", "infer_square_grid", "rotate"]

_TableKey = tuple[int, int, int, float, torch.device]
_TABLES: OrderedDict[_TableKey, Tensor] = OrderedDict()
_MAX_TABLES = 16


def _build_table(head_dim: int, h: int, w: int, theta: float, device: torch.device) -> Tensor:
    quarter = head_dim // 4
    exponents = torch.arange(0, 4 * quarter, 4, dtype=torch.float32, device=device) / head_dim
    freqs = 1.0 / (theta**exponents)  # (c/4,)
    t = torch.arange(h * w, dtype=torch.float32, device=device)
    pos_x = t % w
    pos_y = torch.div(t, w, rounding_mode="floor")
    angles = torch.cat((torch.outer(pos_x, freqs), torch.outer(pos_y, freqs)), dim=1)  # (N, c/2)
    return torch.polar(torch.ones_like(angles), angles)


def axial_rope_table(
    head_dim: int, h: int, w: int, theta: float = 10000.0, device: torch.device | str = "cpu"
) -> Tensor:
    """Unit rotations for an (h, w) grid: complex64 (h * w, head_dim / 2), one per channel pair.

    Cached per (head_dim, h, w, theta, device) and shared by all layers; built outside
    inference mode so a table stays usable when autograd is enabled later. Treat as read-only.
    """
    if head_dim % 4:
        raise ValueError(f"RoPE needs a head dimension divisible by 4, got {head_dim}")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    key = (head_dim, h, w, float(theta), dev)
    table = _TABLES.get(key)
    if table is None:
        with torch.inference_mode(False), torch.no_grad():
            table = _build_table(head_dim, h, w, float(theta), dev)
        _TABLES[key] = table
        while len(_TABLES) > _MAX_TABLES:
            _TABLES.popitem(last=False)
    else:
        _TABLES.move_to_end(key)
    return table


def rotate(x: Tensor, table: Tensor) -> Tensor:
    """Rotate channel pairs of x (..., N, c) by the complex table (N, c / 2), in float32.

    One fused complex multiply: cheaper than the equivalent real cos/sin arithmetic, which
    needs several elementwise passes over the keys.
    """
    xf = x if x.dtype == torch.float64 else x.float()  # half/bfloat16 rotate in float32
    pairs = torch.view_as_complex(xf.unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * table).flatten(-2).to(x.dtype)


def apply_rope(q: Tensor, k: Tensor, table: Tensor, repeat_k: bool = False) -> tuple[Tensor, Tensor]:
    """Apply axial RoPE to queries and keys.

    q: (B, heads, N, c) with N = h * w grid tokens; k: (B, heads, Nk, c);
    table: complex (N, c / 2) from :func:`axial_rope_table`.
    Without ``repeat_k`` Nk must equal N; with it, Nk must be a multiple r * N (keys from r
    memory frames, each laid out on the same grid) and every block of N keys gets the same
    rotation. Returns new tensors of the input shapes and dtypes.
    """
    n = q.shape[-2]
    if table.shape[0] != n:
        raise ValueError(f"RoPE table covers {table.shape[0]} positions but q has {n} tokens")
    q_out = rotate(q, table)
    nk = k.shape[-2]
    if nk == 0:
        return q_out, k
    if nk == n:
        return q_out, rotate(k, table)
    if not repeat_k or nk % n:
        raise ValueError(f"{nk} rotary keys do not match {n} queries (repeat_k={repeat_k})")
    k_out = rotate(k.unflatten(-2, (nk // n, n)), table).flatten(-3, -2)
    return q_out, k_out


def infer_square_grid(num_tokens: int) -> tuple[int, int]:
    """(h, w) of a square grid with ``num_tokens`` cells; ValueError if it is not a square."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} tokens are not a square grid; pass feat_size=(h, w)")
    return side, side


class RoPEAttention(Attention):
    """:class:`~medsam2.model.common.Attention` with 2D axial RoPE on queries and keys.

    q: (B, N, embedding_dim) with N = h * w grid tokens (row-major);
    k, v: (B, Nk, kv_in_dim) -> (B, N, embedding_dim).
    ``rope_k_repeat`` lets keys span several memory frames on the same grid (Nk_rope = r * N).
    The last ``num_k_exclude_rope`` keys (object pointers) are left unrotated.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.head_dim = self.internal_dim // num_heads
        if self.head_dim % 4:
            raise ValueError(f"RoPE needs a head dimension divisible by 4, got {self.head_dim}")
        self.rope_theta = float(rope_theta)
        self.rope_k_repeat = rope_k_repeat

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        num_k_exclude_rope: int = 0,
        feat_size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Attention output (B, N, embedding_dim); ``feat_size`` (h, w) defaults to a square grid."""
        qh, kh, vh = self.project(q, k, v)
        h, w = feat_size if feat_size is not None else infer_square_grid(qh.shape[-2])
        table = axial_rope_table(self.head_dim, h, w, self.rope_theta, qh.device)
        num_k_rope = kh.shape[-2] - num_k_exclude_rope
        if num_k_rope < 0:
            raise ValueError(f"cannot exclude {num_k_exclude_rope} of {kh.shape[-2]} keys from RoPE")
        if num_k_exclude_rope == 0:
            qh, kh = apply_rope(qh, kh, table, self.rope_k_repeat)
        else:
            # kh is a fresh projection output: rotate its leading keys in place, keep the rest
            qh, k_rot = apply_rope(qh, kh[:, :, :num_k_rope], table, self.rope_k_repeat)
            kh[:, :, :num_k_rope] = k_rot
        return self.attend(qh, kh, vh)

    def attend_memory(
        self, q: Tensor, keys: Tensor, values: Tensor, feat_size: tuple[int, int] | None
    ) -> Tensor:
        """Cross-attention to prepared memory (inference; see :mod:`medsam2.model.memory_kv`).

        q: (B, N, embedding_dim) grid tokens; keys: (B, heads, S, c), already projected and
        rotated where they should be; values: (B, 1, S, kv_in_dim) *unprojected* memory tokens.
        Attention runs on the raw values and ``v_proj`` is applied after it (the weights of a
        query sum to one). Returns (B, N, embedding_dim).
        """
        qh = split_heads(self.q_proj(q), self.num_heads)
        h, w = feat_size if feat_size is not None else infer_square_grid(qh.shape[-2])
        qh = rotate(qh, axial_rope_table(self.head_dim, h, w, self.rope_theta, qh.device))
        out = attention(qh, keys, values)  # (B, heads, N, kv_in_dim)
        weight = self.v_proj.weight.view(self.num_heads, self.head_dim, -1)
        out = torch.matmul(out, weight.transpose(1, 2)) + self.v_proj.bias.view(self.num_heads, 1, -1)
        return self.out_proj(merge_heads(out))
