"""Hiera trunk of the SAM 2 image encoder (hierarchical ViT with windowed attention).

Tokens stay channels-last, (B, H, W, C), through the whole trunk; only attention groups them by
window. Parameter names follow the reference checkpoints (`image_encoder.trunk.*`), so a SAM 2 /
SAM 2.1 state dict loads with ``strict=True``. Numerics follow the reference too: windows padded
with zero (normalised) tokens that attention sees as keys and values, queries max-pooled inside
their window at stage changes, a bicubically resized background position embedding plus the
tiled window embedding.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsam2.model.common import attention

__all__ = ["Hiera", "HieraBlock", "PooledAttention"]


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


# On the CPU, inference runs the high-resolution stages in chunks of tokens whose widest buffer
# is about this size: below glibc's 32 MiB mmap threshold (no page faults on every allocation)
# and mostly cache-resident, yet few enough calls to keep threading overhead low.
_CHUNK_BYTES = 24 << 20


def _chunks(total: int, width: int, unit: int, device: torch.device) -> list[slice]:
    """Near-equal slices of range(total); a slice's (rows * unit, width) fp32 buffer is about
    _CHUNK_BYTES. A single slice off the CPU, where chunking only adds kernel launches."""
    per_chunk = max(1, _CHUNK_BYTES // (4 * width * unit)) if device.type == "cpu" else total
    size = _ceil_div(total, _ceil_div(total, per_chunk))
    return [slice(start, min(start + size, total)) for start in range(0, total, size)]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _matching_views(x: Tensor, tiles: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Pairs of views (part of map `x`, the same tokens in `tiles`) covering all of `x`.

    x: (B, H, W, C); tiles: (B, nH, nW, wh, ww, C) with nH >= ceil(H / wh), nW >= ceil(W / ww).
    Both views of a pair are (B, n, m, rows, cols, C). At most four pairs: full windows, the
    partial last window row, the partial last window column and their corner. Yielded one at a
    time, so each view is taken after the previous in-place copy (which autograd requires).
    """
    b, h, w, c = x.shape
    wh, ww = tiles.shape[3], tiles.shape[4]
    fh, rh = divmod(h, wh)
    fw, rw = divmod(w, ww)
    rows = [(0, fh, wh)] * (fh > 0) + [(fh, 1, rh)] * (rh > 0)  # (first window, windows, rows each)
    cols = [(0, fw, ww)] * (fw > 0) + [(fw, 1, rw)] * (rw > 0)
    for r0, nr, lr in rows:
        for c0, nc, lc in cols:
            part = x[:, r0 * wh : r0 * wh + nr * lr, c0 * ww : c0 * ww + nc * lc]
            part = part.view(b, nr, lr, nc, lc, c).transpose(2, 3)
            yield part, tiles[:, r0 : r0 + nr, c0 : c0 + nc, :lr, :lc]


def window_partition(x: Tensor, window: int, fill: Tensor | None = None) -> Tensor:
    """(B, H, W, C) -> (B * nH * nW, window, window, C) with nH = ceil(H / window), nW likewise.

    Tokens of the padding (where `window` does not divide H or W) are `fill` (shape (C,)), or
    zero. One pass over the data: without padding a single strided copy.
    """
    b, h, w, c = x.shape
    nh, nw = _ceil_div(h, window), _ceil_div(w, window)
    if h % window == 0 and w % window == 0:
        tiles = x.view(b, nh, window, nw, window, c).transpose(2, 3).contiguous()
        return tiles.view(b * nh * nw, window, window, c)
    tiles = x.new_empty(b, nh, nw, window, window, c)
    pad = fill if fill is not None else x.new_zeros(())
    # only windows in the last row / column contain padding; the copies below overwrite the rest
    tiles[:, h // window :] = pad
    tiles[:, :, w // window :] = pad
    for part, dst in _matching_views(x, tiles):
        dst.copy_(part)
    return tiles.view(b * nh * nw, window, window, c)


def window_unpartition(windows: Tensor, grid: tuple[int, int, int], size: tuple[int, int]) -> Tensor:
    """(B * nH * nW, wh, ww, C) windows on a (B, nH, nW) grid -> the (B, H, W, C) map, cropped to `size`."""
    wh, ww, c = windows.shape[1:]
    out = windows.new_empty(grid[0], size[0], size[1], c)
    for part, src in _matching_views(out, windows.view(*grid, wh, ww, c)):
        part.copy_(src)
    return out


def add_windows(base: Tensor, windows: Tensor, out: Tensor | None = None) -> Tensor:
    """`base` (B, H, W, C) plus windows (B * nH * nW, wh, ww, C) that tile it exactly.

    The window order is undone inside the addition itself (no separate un-partition copy).
    `out` (B, H, W, C), which may be a view, receives the sum when given (no autograd then).
    """
    b, h, w, c = base.shape
    wh, ww = windows.shape[1], windows.shape[2]
    grid = (b, h // wh, wh, w // ww, ww, c)
    tiles = windows.view(b, grid[1], grid[3], wh, ww, c).transpose(2, 3)  # laid out as `grid`
    if out is not None:
        torch.add(base.view(grid), tiles, out=out.view(grid))
        return out
    summed = base.view(grid) + tiles  # laid out like `base`, i.e. (B, H, W, C)
    return summed.view(b, h, w, c) if summed.is_contiguous() else summed.reshape(b, h, w, c)


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

    def attend(self, qkv: Tensor) -> Tensor:
        """Attention of projected tokens: qkv (N, h, w, 3 * dim_out) -> (N, h', w', dim_out), before `proj`."""
        n, h, w, _ = qkv.shape
        heads, d = self.num_heads, self.dim_out // self.num_heads
        # (N, h*w, 3, heads, d): q, k, v stay strided views into the one projection output
        q, k, v = qkv.view(n, h * w, 3, heads, d).unbind(2)
        if self.q_stride is not None:
            q = _max_pool(q.reshape(n, h, w, self.dim_out), self.q_stride)
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(n, h * w, heads, d)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        # the fused kernels lay the output out as (N, L, heads, d): then this reshape is free
        return out.transpose(1, 2).reshape(n, h, w, self.dim_out)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, h, w, dim) -> (N, h', w', dim_out)."""
        return self.proj(self.attend(self.qkv(x)))


class GeluMLP(nn.Module):
    """Two linear layers with an exact GELU between them; parameters `layers.0`, `layers.1`."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])

    @property
    def fc1(self) -> nn.Linear:
        return cast(nn.Linear, self.layers[0])

    @property
    def fc2(self) -> nn.Linear:
        return cast(nn.Linear, self.layers[1])

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        # without autograd, the activation can overwrite its input: one less large buffer
        h = F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)
        return self.fc2(h)


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

    def _norm1(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, (self.dim,), self.norm1.weight, self.norm1.bias, self.norm1.eps)

    def _windowed_attention(self, xn: Tensor, shortcut: Tensor) -> Tensor:
        """Windowed attention of the normalised map xn (B, H, W, dim), plus the shortcut."""
        b, h, w, _ = xn.shape
        win = self.window
        if h % win == 0 and w % win == 0:
            return add_windows(shortcut, self.attn(window_partition(xn, win)))
        # Padding. The reference pads xn with zeros, whose projections are just the qkv bias: so
        # project the real tokens only and pad their projections with the bias (same numbers,
        # fewer FLOPs); the output projection, too, runs after the padding is cropped away.
        qkv = window_partition(self.attn.qkv(xn), win, fill=self.attn.qkv.bias)
        grid = (b, -(-h // win), -(-w // win))
        out = window_unpartition(self.attn.attend(qkv), grid, (shortcut.shape[1], shortcut.shape[2]))
        return self.attn.proj(out).add_(shortcut)

    def _attention_in_chunks(self, x: Tensor) -> Tensor:
        """Inference path of the windowed attention half when the windows tile x exactly.

        Runs norm, shortcut, attention and residual a few window rows at a time, so that the
        wide qkv activations of the high-resolution stages stay in cache.
        """
        b, h, w, _ = x.shape
        win = self.window
        sh, sw = self.q_stride if self.q_stride is not None else (1, 1)
        out = x.new_empty(b, h // sh, w // sw, self.dim_out)
        for r in _chunks(h // win, 3 * self.dim_out, b * win * w, x.device):  # in rows of windows
            rows = slice(r.start * win, r.stop * win)
            part = x[:, rows]
            xn = self._norm1(part)
            out_rows = out[:, rows.start // sh : rows.stop // sh]
            add_windows(self._shortcut(part, xn), self.attn(window_partition(xn, win)), out_rows)
        return out

    def _mlp_residual(self, x: Tensor) -> Tensor:
        """x + mlp(norm2(x)) for a fresh x (B, H, W, dim_out); inference updates x in place."""
        if torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type):
            # (autocast does not cast the in-place product below: bf16 hidden, float32 weights)
            return self.mlp(self.norm2(x)).add_(x)
        # chunks of tokens keep the 4x wider hidden activations in cache; the second product
        # accumulates straight into x, which already holds the residual plus the bias
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        flat = x.view(-1, self.dim_out)
        for rows in _chunks(flat.shape[0], fc1.out_features, 1, x.device):
            part = flat[rows]
            hidden = torch.ops.aten.gelu_(fc1(self.norm2(part)))
            part.add_(fc2.bias).addmm_(hidden, fc2.weight.t())
        return x

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, dim) contiguous -> (B, H', W', dim_out) contiguous."""
        win = self.window
        if win > 0 and not torch.is_grad_enabled() and x.shape[1] % win == 0 and x.shape[2] % win == 0:
            return self._mlp_residual(self._attention_in_chunks(x))
        xn = self._norm1(x)
        shortcut = self._shortcut(x, xn)
        if win > 0:
            x = self._windowed_attention(xn, shortcut)
        else:
            x = self.attn(xn).add_(shortcut)
        return self._mlp_residual(x)


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
