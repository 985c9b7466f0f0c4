"""Memory attention (RoPE) and memory encoder: reference parity, RoPE properties, shapes, gradients."""

from __future__ import annotations

import pytest
import torch
from _reference import reference_model, require_reference

from medsam2.config import ModelConfig
from medsam2.model.memory_attention import MemoryAttention, build_memory_attention
from medsam2.model.memory_encoder import MemoryEncoder, build_memory_encoder
from medsam2.model.rope import apply_rope, axial_rope_table

TOL = 1e-4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ptr_tokens(num_ptrs: int, batch: int, d_model: int, mem_dim: int, gen: torch.Generator) -> torch.Tensor:
    """Object pointers (num_ptrs, B, d_model) split into d_model // mem_dim tokens each, as the model does."""
    ptrs = torch.randn(num_ptrs, batch, d_model, generator=gen)
    split = d_model // mem_dim
    return ptrs.reshape(num_ptrs, batch, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)


def _memory_inputs(
    side: int, frames: int, num_ptrs: int, batch: int, seed: int, d_model: int = 256, mem_dim: int = 64
) -> dict[str, object]:
    gen = _gen(seed)
    tokens = side * side
    curr = torch.randn(tokens, batch, d_model, generator=gen)
    curr_pos = torch.randn(tokens, batch, d_model, generator=gen)
    mem = [torch.randn(frames * tokens, batch, mem_dim, generator=gen)]
    mem_pos = [torch.randn(frames * tokens, batch, mem_dim, generator=gen)]
    if num_ptrs:
        mem.append(_ptr_tokens(num_ptrs, batch, d_model, mem_dim, gen))
        mem_pos.append(torch.randn(mem[-1].shape[0], batch, mem_dim, generator=gen))
    n_ptr_tokens = mem[-1].shape[0] if num_ptrs else 0
    return {
        "curr": curr,
        "curr_pos": curr_pos,
        "memory": torch.cat(mem),
        "memory_pos": torch.cat(mem_pos),
        "num_obj_ptr_tokens": n_ptr_tokens,
    }


# ----------------------------------------------------------------------------- reference parity

ATTN_CASES = [
    # (reference name, grid side, memory frames, object pointers, batch)
    pytest.param("sam2.1_hiera_t", 32, 1, 0, 1, id="2.1-grid32-1frame"),
    pytest.param("sam2.1_hiera_t", 32, 3, 0, 2, id="2.1-grid32-3frames-b2"),
    pytest.param("sam2.1_hiera_t", 32, 3, 4, 1, id="2.1-grid32-3frames-4ptrs"),
    pytest.param("sam2_hiera_t", 32, 2, 4, 1, id="2.0-grid32-2frames-4ptrs"),
    pytest.param("sam2.1_hiera_t", 64, 2, 0, 1, id="2.1-grid64-2frames", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "side", "frames", "num_ptrs", "batch"), ATTN_CASES)
def test_memory_attention_matches_reference(
    name: str, side: int, frames: int, num_ptrs: int, batch: int
) -> None:
    require_reference()
    ref = reference_model(name, 512).memory_attention
    ours = build_memory_attention(ModelConfig(name=name, image_size=side * 16)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    inputs = _memory_inputs(side, frames, num_ptrs, batch, seed=side + frames + num_ptrs)
    with torch.no_grad():
        expected = ref(
            curr=[inputs["curr"]],
            curr_pos=[inputs["curr_pos"]],
            memory=inputs["memory"],
            memory_pos=inputs["memory_pos"],
            num_obj_ptr_tokens=inputs["num_obj_ptr_tokens"],
        )
        got = ours(**inputs)  # type: ignore[arg-type]
    assert got.shape == expected.shape == (side * side, batch, 256)
    diff = (got - expected).abs().max().item()
    assert diff <= TOL, diff


ENC_CASES = [
    pytest.param("sam2.1_hiera_t", True, id="2.1-skip-sigmoid"),
    pytest.param("sam2.1_hiera_t", False, id="2.1-sigmoid"),
    pytest.param("sam2_hiera_t", True, id="2.0-skip-sigmoid"),
    pytest.param("sam2_hiera_t", False, id="2.0-sigmoid"),
]


@pytest.mark.parametrize(("name", "skip_sigmoid"), ENC_CASES)
def test_memory_encoder_matches_reference(name: str, skip_sigmoid: bool) -> None:
    require_reference()
    ref = reference_model(name, 512).memory_encoder
    ours = build_memory_encoder(ModelConfig(name=name, image_size=512)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    gen = _gen(7)
    pix = torch.randn(2, 256, 32, 32, generator=gen)
    masks = torch.randn(2, 1, 512, 512, generator=gen) * 8
    if skip_sigmoid:  # what the tracker feeds: scaled sigmoid probabilities
        masks = torch.sigmoid(masks) * 20.0 - 10.0
    with torch.no_grad():
        expected = ref(pix, masks, skip_mask_sigmoid=skip_sigmoid)
        got = ours(pix, masks, skip_mask_sigmoid=skip_sigmoid)
    assert got.features.shape == got.pos_enc.shape == (2, 64, 32, 32)
    feat_diff = (got.features - expected["vision_features"]).abs().max().item()
    pos_diff = (got.pos_enc - expected["vision_pos_enc"][0]).abs().max().item()
    assert feat_diff <= TOL, feat_diff
    assert pos_diff <= TOL, pos_diff


@pytest.mark.parametrize(
    ("head_dim", "h", "w", "repeat"),
    [(256, 32, 32, 1), (256, 8, 8, 3), (32, 4, 8, 1), (64, 8, 4, 2)],
)
def test_rope_matches_reference_rotation(head_dim: int, h: int, w: int, repeat: int) -> None:
    require_reference()
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    gen = _gen(head_dim + h + w)
    q = torch.randn(2, 1, h * w, head_dim, generator=gen)
    k = torch.randn(2, 1, repeat * h * w, head_dim, generator=gen)
    cis = compute_axial_cis(dim=head_dim, end_x=w, end_y=h, theta=10000.0)
    q_ref, k_ref = apply_rotary_enc(q, k, freqs_cis=cis, repeat_freqs_k=repeat > 1)
    table = axial_rope_table(head_dim, h, w, 10000.0)
    q_out, k_out = apply_rope(q, k, table, repeat_k=repeat > 1)
    assert (q_out - q_ref).abs().max().item() <= 1e-5
    assert (k_out - k_ref).abs().max().item() <= 1e-5


# ----------------------------------------------------------------------------- RoPE properties


def test_rope_preserves_norms() -> None:
    gen = _gen(1)
    q = torch.randn(2, 2, 64, 32, generator=gen)
    k = torch.randn(2, 2, 128, 32, generator=gen)
    table = axial_rope_table(32, 8, 8, theta=100.0)
    q_out, k_out = apply_rope(q, k, table, repeat_k=True)
    torch.testing.assert_close(q_out.norm(dim=-1), q.norm(dim=-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_out.norm(dim=-1), k.norm(dim=-1), atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_relative_position() -> None:
    h, w, c = 6, 8, 16
    gen = _gen(2)
    u = torch.randn(c, generator=gen, dtype=torch.float64)
    v = torch.randn(c, generator=gen, dtype=torch.float64)
    q = u.expand(1, 1, h * w, c)  # the same content at every position
    k = v.expand(1, 1, h * w, c)
    table = axial_rope_table(c, h, w, theta=50.0).to(torch.complex128)
    q_out, k_out = apply_rope(q, k, table)
    scores = (q_out @ k_out.transpose(-1, -2)).reshape(h, w, h, w)
    # shifting both query and key by (dy, dx) = (1, 2) leaves every score unchanged
    torch.testing.assert_close(scores[1:, 2:, 1:, 2:], scores[:-1, :-2, :-1, :-2], atol=1e-5, rtol=1e-5)
    # and the score is not constant, i.e. positions really matter
    assert scores.std() > 1e-3


def test_rope_tables_from_inference_mode_work_with_autograd() -> None:
    with torch.inference_mode():
        axial_rope_table(8, 3, 5, theta=123.0)  # first built (and cached) in inference mode
    table = axial_rope_table(8, 3, 5, theta=123.0)
    q = torch.randn(1, 1, 15, 8, requires_grad=True)
    q_out, _ = apply_rope(q, q.detach(), table)
    q_out.sum().backward()
    assert q.grad is not None


# ----------------------------------------------------------------------------- tiny-width model


def _tiny_attention() -> MemoryAttention:
    return MemoryAttention(
        d_model=32,
        num_layers=2,
        num_heads=1,
        dim_feedforward=64,
        dropout=0.1,
        kv_in_dim=16,
        rope_theta=10000.0,
    )


def _tiny_encoder() -> MemoryEncoder:
    return MemoryEncoder(out_dim=16, d_model=32, layer_scale_init_value=0.1)


@pytest.mark.parametrize(("frames", "num_ptrs", "feat_size"), [(1, 0, None), (2, 2, None), (2, 3, (4, 16))])
def test_tiny_shapes(frames: int, num_ptrs: int, feat_size: tuple[int, int] | None) -> None:
    attn = _tiny_attention().eval()
    inputs = _memory_inputs(8, frames, num_ptrs, batch=2, seed=3, d_model=32, mem_dim=16)
    out = attn(**inputs, feat_size=feat_size)  # type: ignore[arg-type]
    assert out.shape == (64, 2, 32)
    enc = _tiny_encoder().eval()
    res = enc(torch.randn(2, 32, 8, 8), torch.randn(2, 1, 128, 128))
    assert res.features.shape == res.pos_enc.shape == (2, 16, 8, 8)


def test_non_square_grid_needs_feat_size() -> None:
    attn = _tiny_attention().eval()
    curr = torch.randn(24, 1, 32)
    mem = torch.randn(48, 1, 16)
    with pytest.raises(ValueError, match="square"):
        attn(curr, torch.zeros_like(curr), mem, torch.zeros_like(mem))
    assert attn(curr, torch.zeros_like(curr), mem, torch.zeros_like(mem), feat_size=(4, 6)).shape == (
        24,
        1,
        32,
    )


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    attn, enc = _tiny_attention().train(), _tiny_encoder().train()
    pix = torch.randn(1, 32, 8, 8)
    masks = torch.randn(1, 1, 128, 128)
    encoded = enc(pix, masks)
    mem = encoded.features.flatten(2).permute(2, 0, 1)  # (64, 1, 16)
    mem_pos = encoded.pos_enc.flatten(2).permute(2, 0, 1)
    ptrs = torch.randn(8, 1, 16)
    memory = torch.cat([mem, ptrs])
    memory_pos = torch.cat([mem_pos, torch.randn(8, 1, 16)])
    curr = torch.randn(64, 1, 32)
    out = attn(curr, torch.randn(64, 1, 32), memory, memory_pos, num_obj_ptr_tokens=8)
    (out * torch.randn(out.shape)).sum().backward()
    for module in (attn, enc):
        for pname, p in module.named_parameters():
            assert p.grad is not None, pname
            assert torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname
