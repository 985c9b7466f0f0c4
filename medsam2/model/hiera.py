"""Hiera trunk of the SAM 2 image encoder (hierarchical ViT with windowed attention).

Tokens stay channels-last, (B, H, W, C), through the whole trunk: every linear layer, layer norm
and the MLP act on the last dimension, and only attention needs the tokens grouped by window.
Parameter names follow the reference checkpoints (`image_encoder.trunk.*`) so that a SAM 2 /
SAM 2.1 state dict loads with ``strict=True``.

Numerics match the reference: zero padding of the *normalised* tokens up to a multiple of the
window size (padded tokens take part in attention as keys/values, exactly as there), query
max-pooling inside each window at stage changes, bicubic interpolation of the background
position embedding plus the tiled window embedding.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Hiera", "HieraBlock", "PooledAttention"]


def _pad_amount(size: int, window: int) -> int:
    return (window - size % window) % window


def _max_pool(x: Tensor, stride: tuple[int, int]) -> Tensor:
    """Non-overlapping max pool of a (N, H, W, C) map (kernel = stride, floor mode) -> (N, H', W', C).

    Element-wise maxima of strided slices: as exact as `nn.MaxPool2d` and, on channels-last data,
    faster than both it and a reduction over an unflattened view.
    """
    sh, sw = stride
    ho, wo = x.shape[1] // sh, x.shape[2] // sw
    x = x[:, : ho * sh]
    cols = [x[:, :, j : wo * sw : sw] for j in range(sw)]  # pool along W first: halves what H reads
    y = functools.reduce(torch.maximum, cols)
    return functools.reduce(torch.maximum, [y[:, i::sh] for i in range(sh)])


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nH * nW, window, window, C), zero-padding H, W up to multiples of `window`.

    Returns the windows and the padded size (Hp, Wp).
    """
    b, h, w, c = x.shape
    ph, pw = _pad_amount(h, window), _pad_amount(w, window)
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // window, window, wp // window, window, c).transpose(2, 3)
    return x.reshape(-1, window, window, c), (hp, wp)


def add_windows(base: Tensor, windows: Tensor, grid: tuple[int, int]) -> Tensor:
    """`base` (B, H, W, C) plus windows (B * gh * gw, wh, ww, C) laid back onto the map.

    The windows tile a (gh * wh, gw * ww) map that is cropped to (H, W). Without padding, the
    window order is undone inside the addition itself (no separate un-partition copy).
    """
    b, h, w, c = base.shape
    gh, gw = grid
    wh, ww = windows.shape[1], windows.shape[2]
    tiles = windows.view(b, gh, gw, wh, ww, c).transpose(2, 3)  # (B, gh, wh, gw, ww, C) view
    if gh * wh == h and gw * ww == w:
        out = base.view(b, gh, wh, gw, ww, c) + tiles
        return out.view(b, h, w, c) if out.is_contiguous() else out.reshape(b, h, w, c)
    return base + tiles.reshape(b, gh * wh, gw * ww, c)[:, :h, :w]


class PooledAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (Hiera's "mask unit attention").

    forward(x: (N, h, w, dim)) -> (N, h', w', dim_out) with (h', w') = (h, w) // q_stride.
    Parameters: `qkv` (dim -> 3 * dim_out) and `proj` (dim_out -> dim_out).
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None = None):
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim_out={dim_out}")
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        n, h, w, _ = x.shape
        heads, d = self.num_heads, self.dim_out // self.num_heads
        # (N, h*w, 3, heads, d): q, k, v stay strided views into the one projection output
        q, k, v = self.qkv(x).view(n, h * w, 3, heads, d).unbind(2)
        if self.q_stride is not None:
            q = _max_pool(q.reshape(n, h, w, self.dim_out), self.q_stride)
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(n, h * w, heads, d)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        # the CPU and GPU kernels lay the output out as (N, L, heads, d): this reshape is free
        out = out.transpose(1, 2).reshape(n, h, w, self.dim_out)
        return self.proj(out)


class GeluMLP(nn.Module):
    """Two linear layers with an exact GELU between them; parameters `layers.0`, `layers.1`."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])

    def forward(self, x: Tensor) -> Tensor:
        h = self.layers[0](x)
        # without autograd, the activation can overwrite its input: one less large buffer
        h = F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)
        return self.layers[1](h)


class HieraBlock(nn.Module):
    """Pre-norm transformer block on a (B, H, W, dim) map -> (B, H', W', dim_out).

    `window` > 0 restricts attention to window x window tiles (0: global attention). With
    `q_stride`, queries and the shortcut are max-pooled, so the map shrinks by that stride and the
    tiles shrink with it. When dim != dim_out the shortcut is `proj(norm1(x))`, pooled.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        q_stride: tuple[int, int] | None = None,
        window: int = 0,
    ):
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.window = window
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PooledAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = GeluMLP(dim_out, int(dim_out * mlp_ratio))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def _shortcut(self, x: Tensor, xn: Tensor) -> Tensor:
        if self.proj is not None:
            x = self.proj(xn)
        if self.q_stride is not None:
            x = _max_pool(x, self.q_stride)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, dim) contiguous -> (B, H', W', dim_out) contiguous."""
        b, h, w, _ = x.shape
        xn = F.layer_norm(x, (self.dim,), self.norm1.weight, self.norm1.bias, self.norm1.eps)
        shortcut = self._shortcut(x, xn)
        if self.window > 0:
            windows, (hp, wp) = window_partition(xn, self.window)
            attn = self.attn(windows)
            x = add_windows(shortcut, attn, (hp // self.window, wp // self.window))
        else:
            x = self.attn(xn).add_(shortcut)
        # the MLP output is a fresh tensor: accumulate the residual into it in place
        return self.mlp(self.norm2(x)).add_(x)


class PatchEmbed(nn.Module):
    """Strided convolution `proj`: (B, 3, H, W) -> (B, H / stride, W / stride, C), channels last."""

    def __init__(self, embed_dim: int, kernel: int = 7, stride: int = 4, padding: int = 3, in_chans: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel, stride=stride, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        # a channels-last input makes the convolution write (B, H, W, C) directly
        x = self.proj(x.contiguous(memory_format=torch.channels_last))
        return x.permute(0, 2, 3, 1).contiguous()


def _block_plan(
    stages: tuple[int, ...],
    window_spec: tuple[int, ...],
    global_att_blocks: tuple[int, ...],
    q_pool: int,
) -> list[tuple[int, int, bool]]:
    """Per block: (stage index, window size, pools?) following the reference schedule.

    The window size lags by one block: the first block of stage s still partitions with the
    window of stage s - 1 (its queries are pooled down to the new resolution inside it).
    """
    plan = []
    for s, depth in enumerate(stages):
        for j in range(depth):
            first = j == 0 and s > 0
            window = window_spec[s - 1] if first else window_spec[s]
            plan.append((s, window, first and s <= q_pool))
    return [(s, 0 if i in global_att_blocks else w, p) for i, (s, w, p) in enumerate(plan)]


class Hiera(nn.Module):
    """Hiera trunk: patch embedding, position embedding and `sum(stages)` blocks in 4 (or more) stages.

    forward(x: (B, 3, H, W)) -> one (B, C_i, H_i, W_i) map per stage, highest resolution first,
    with C_i = embed_dim * dim_mul**i and H_i = H / (patch_stride * q_stride**i). The maps are
    channels-last views (`permute` of (B, H_i, W_i, C_i) storage), as in the reference.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        stages: tuple[int, ...] = (2, 3, 16, 3),
        global_att_blocks: tuple[int, ...] = (12, 16, 20),
        window_spec: tuple[int, ...] = (8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        q_pool: int = 3,
        q_stride: tuple[int, int] = (2, 2),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        mlp_ratio: float = 4.0,
        patch_kernel: int = 7,
        patch_stride: int = 4,
        patch_padding: int = 3,
    ):
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError("stages and window_spec must have the same length")
        if not 0 <= q_pool < len(stages):
            raise ValueError(f"q_pool={q_pool} must be in [0, {len(stages) - 1}]")
        self.q_stride = tuple(q_stride)
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        self.patch_embed = PatchEmbed(embed_dim, patch_kernel, patch_stride, patch_padding)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self.blocks = nn.ModuleList()
        dim, heads, prev_stage = embed_dim, num_heads, 0
        for stage, window, pools in _block_plan(stages, window_spec, tuple(global_att_blocks), q_pool):
            dim_out = dim
            if stage != prev_stage:
                dim_out, heads, prev_stage = int(dim * dim_mul), int(heads * head_mul), stage
            if pools and window % self.q_stride[0] + window % self.q_stride[1]:
                raise ValueError(f"window {window} is not divisible by q_stride {self.q_stride}")
            stride = (self.q_stride[0], self.q_stride[1]) if pools else None
            self.blocks.append(HieraBlock(dim, dim_out, heads, mlp_ratio, stride, window))
            dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in reversed(self.stage_ends)]
        self._pos_cache: tuple[tuple[object, ...], Tensor] | None = None

    def _pos_embed_key(self, h: int, w: int) -> tuple[object, ...] | None:
        """Cache key of the position embedding, or None where it must be recomputed (autograd)."""
        params = (self.pos_embed, self.pos_embed_window)
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return None
        state = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        return (h, w, torch.is_inference_mode_enabled(), *state)

    def position_embedding(self, h: int, w: int) -> Tensor:
        """(1, h, w, embed_dim): background embedding resized (bicubic) plus the tiled window one."""
        key = self._pos_embed_key(h, w)
        if key is not None and self._pos_cache is not None and self._pos_cache[0] == key:
            return self._pos_cache[1]
        bkg = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        reps = (-(-h // win.shape[2]), -(-w // win.shape[3]))  # ceil: crop where it does not divide
        pos = bkg + win.tile(1, 1, *reps)[:, :, :h, :w]
        pos = pos.permute(0, 2, 3, 1).contiguous()
        if key is not None:
            self._pos_cache = (key, pos)
        return pos

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: (B, 3, H, W) -> [(B, C_i, H_i, W_i)] per stage, highest resolution first."""
        x = self.patch_embed(x)
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        outputs = []
        ends = set(self.stage_ends)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
