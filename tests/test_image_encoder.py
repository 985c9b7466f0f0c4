"""Image encoder (Hiera trunk + FPN neck): parity with the reference sam2==1.1.0, shapes, gradients."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from _reference import REF_CONFIGS, perturb_, reference_model, require_reference

from medsam2.config import HieraConfig, ModelConfig
from medsam2.model import hiera
from medsam2.model.hiera import Hiera
from medsam2.model.image_encoder import ImageEncoder, ImageFeatures, build_image_encoder

TOL = 1e-4

B_PLUS = HieraConfig(
    embed_dim=112,
    num_heads=2,
    stages=(2, 3, 16, 3),
    global_att_blocks=(12, 16, 20),
    window_spec=(8, 4, 14, 7),
    window_pos_embed_bkg_spatial_size=(14, 14),
)
LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_spec=(8, 4, 16, 8),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
# the smallest useful trunk: one block per stage, global attention in the third
TINY_TRUNK = HieraConfig(embed_dim=8, num_heads=1, stages=(1, 1, 1, 1), global_att_blocks=(2,))
# like the `tiny` preset: global attention in a block that does not pool
SMALL_TRUNK = HieraConfig(
    embed_dim=8,
    num_heads=1,
    stages=(1, 1, 2, 1),
    global_att_blocks=(3,),
    window_spec=(8, 4, 4, 2),
    window_pos_embed_bkg_spatial_size=(4, 4),
)
TINY = ModelConfig(name="tiny-test", image_size=128, trunk=TINY_TRUNK, d_model=32)


def _ours_from_reference(ref_encoder: torch.nn.Module, cfg: ModelConfig) -> ImageEncoder:
    ours = build_image_encoder(cfg).eval()
    ours.load_state_dict(ref_encoder.state_dict(), strict=True)
    return ours


def _max_diffs(ref_out: dict[str, Any], ours: ImageFeatures) -> dict[str, float]:
    """Largest absolute difference per output kind (features, FPN levels, position encodings)."""
    assert len(ref_out["backbone_fpn"]) == len(ours.backbone_fpn)
    assert len(ref_out["vision_pos_enc"]) == len(ours.vision_pos_enc)
    diffs = {"vision_features": (ref_out["vision_features"] - ours.vision_features).abs().max().item()}
    for key, theirs, mine in (
        ("backbone_fpn", ref_out["backbone_fpn"], ours.backbone_fpn),
        ("vision_pos_enc", ref_out["vision_pos_enc"], ours.vision_pos_enc),
    ):
        for a, b in zip(theirs, mine, strict=True):
            assert a.shape == b.shape
            diffs[key] = max(diffs.get(key, 0.0), (a - b).abs().max().item())
    return diffs


def _compare(ref_encoder: torch.nn.Module, cfg: ModelConfig, images: torch.Tensor) -> dict[str, float]:
    ours = _ours_from_reference(ref_encoder, cfg)
    with torch.no_grad():
        diffs = _max_diffs(ref_encoder(images), ours(images))
    assert max(diffs.values()) <= TOL, diffs
    return diffs


@contextlib.contextmanager
def _skip_weight_init() -> Iterator[None]:
    """Construct layers without initialising their weights (structure-only checks of big models)."""
    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm)
    saved = [cls.reset_parameters for cls in layers]
    try:
        for cls in layers:
            cls.reset_parameters = lambda self: None  # type: ignore[method-assign]
        yield
    finally:
        for cls, fn in zip(layers, saved, strict=True):
            cls.reset_parameters = fn  # type: ignore[method-assign]


def _reference_encoder_from_yaml(name: str, embed_dim: int | None = None) -> torch.nn.Module:
    """Only the reference image encoder of a public config, built from its YAML.

    With `embed_dim`, the trunk (and the neck's input channels) are narrowed to that width while
    depth, heads, windows and the block schedule stay those of the YAML; weights are perturbed.
    Without it, the full-width encoder is built with uninitialised weights (structure only).
    """
    require_reference()
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from sam2 import build_sam

    cfg = OmegaConf.load(Path(build_sam.__file__).parent / REF_CONFIGS[name]).model.image_encoder
    if embed_dim is None:
        with _skip_weight_init():
            return instantiate(cfg)
    cfg.trunk.embed_dim = embed_dim
    cfg.neck.backbone_channel_list = [embed_dim * 8, embed_dim * 4, embed_dim * 2, embed_dim]
    return perturb_(instantiate(cfg), seed=1).eval()


def _images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["sam2_hiera_t", "sam2.1_hiera_t"])
def test_parity_512(name: str) -> None:
    require_reference()
    ref = reference_model(name, 512).image_encoder
    _compare(ref, ModelConfig(name=name, image_size=512), _images(1, 512))


@pytest.mark.slow
def test_parity_1024() -> None:
    require_reference()
    ref = reference_model("sam2.1_hiera_t", 1024).image_encoder
    _compare(ref, ModelConfig(image_size=1024), _images(1, 1024))


def _schedule(blocks: Iterable[Any], window_attr: str) -> list[tuple[Any, ...]]:
    """Per block: (window, pooled, dim, dim_out, heads)."""
    return [
        (getattr(b, window_attr), b.q_stride is not None, b.dim, b.dim_out, b.attn.num_heads) for b in blocks
    ]


@pytest.mark.parametrize(("name", "trunk"), [("sam2.1_hiera_b+", B_PLUS), ("sam2_hiera_l", LARGE)])
def test_structure_matches_reference_yaml(name: str, trunk: HieraConfig) -> None:
    """Full-width b+ / l: identical parameter names and shapes, and the same block schedule."""
    ref = _reference_encoder_from_yaml(name)
    with torch.device("meta"):
        ours = build_image_encoder(ModelConfig(name=name, trunk=trunk))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_shapes
    assert ours.trunk.channel_list == list(ref.trunk.channel_list) == list(trunk.channel_list)
    assert _schedule(ours.trunk.blocks, "window") == _schedule(ref.trunk.blocks, "window_size")


@pytest.mark.parametrize(("name", "trunk"), [("sam2.1_hiera_b+", B_PLUS), ("sam2_hiera_l", LARGE)])
def test_parity_full_depth_narrow(name: str, trunk: HieraConfig) -> None:
    """b+ / l at full depth but width 16, 128 px: the stage 3/4 maps (8, 4) are smaller than their
    windows (14/7 resp. 16/8), so every windowed block there runs the padding path."""
    ref = _reference_encoder_from_yaml(name, embed_dim=16)
    cfg = ModelConfig(name=name, trunk=dataclasses.replace(trunk, embed_dim=16))
    _compare(ref, cfg, _images(1, 128, seed=7))


def test_parity_unpadded_sizes_and_batch() -> None:
    """320 px: stage 3 (20x20) and 4 (10x10) are padded to 28 and 14; a batch of two images."""
    require_reference()
    ref = reference_model("sam2.1_hiera_t", 512).image_encoder
    _compare(ref, ModelConfig(image_size=320), _images(2, 320, seed=3))


def test_parity_small_trunk_against_reference_classes() -> None:
    """Width 8, one head, small windows, through the reference classes; a batch of two.

    (The reference cannot run TINY_TRUNK itself: it divides by the window size of a pooling
    block, which is 0 when that block has global attention, as block 2 there does.)
    """
    require_reference()
    from sam2.modeling.backbones.hieradet import Hiera as RefHiera
    from sam2.modeling.backbones.image_encoder import FpnNeck as RefNeck
    from sam2.modeling.backbones.image_encoder import ImageEncoder as RefEncoder
    from sam2.modeling.position_encoding import PositionEmbeddingSine

    t = SMALL_TRUNK
    trunk = RefHiera(
        embed_dim=t.embed_dim,
        num_heads=t.num_heads,
        stages=t.stages,
        global_att_blocks=t.global_att_blocks,
        window_spec=t.window_spec,
        window_pos_embed_bkg_spatial_size=t.window_pos_embed_bkg_spatial_size,
    )
    neck = RefNeck(
        PositionEmbeddingSine(TINY.d_model),
        TINY.d_model,
        list(t.channel_list),
        fpn_interp_model="nearest",
        fpn_top_down_levels=[2, 3],
    )
    ref = perturb_(RefEncoder(trunk, neck, scalp=1), seed=2).eval()
    _compare(ref, TINY.replace(trunk=SMALL_TRUNK), _images(2, 128, seed=5))


def test_tiny_shapes() -> None:
    torch.manual_seed(0)
    enc = build_image_encoder(TINY).eval()
    assert enc.trunk.channel_list == [64, 32, 16, 8]
    with torch.no_grad():
        stages = enc.trunk(_images(2, 128))
        out = enc(_images(2, 128))
    assert [tuple(s.shape) for s in stages] == [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]
    assert isinstance(out, ImageFeatures)
    assert [tuple(f.shape) for f in out.backbone_fpn] == [(2, 32, 32, 32), (2, 32, 16, 16), (2, 32, 8, 8)]
    assert [tuple(p.shape) for p in out.vision_pos_enc] == [(2, 32, 32, 32), (2, 32, 16, 16), (2, 32, 8, 8)]
    assert out.vision_features is out.backbone_fpn[-1]
    assert all(torch.isfinite(f).all() for f in out.backbone_fpn)


@pytest.mark.parametrize("size", [200, 136])
def test_sizes_not_multiple_of_windows(size: int) -> None:
    """Feature grids that no window divides (200 -> 50, 25, 12, 6; 136 -> 34, 17, 8, 4)."""
    torch.manual_seed(0)
    enc = build_image_encoder(TINY).eval()
    with torch.no_grad():
        out = enc(_images(1, size))
    g = size // 4
    expected = [(1, 32, g, g), (1, 32, g // 2, g // 2), (1, 32, g // 4, g // 4)]
    assert [tuple(f.shape) for f in out.backbone_fpn] == expected
    assert all(torch.isfinite(f).all() for f in out.backbone_fpn)


@pytest.mark.parametrize(("trunk", "size"), [(TINY_TRUNK, 128), (SMALL_TRUNK, 128), (TINY_TRUNK, 200)])
def test_inference_path_matches_autograd_path(
    trunk: HieraConfig, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without autograd the blocks run in chunks and update buffers in place: same numbers.

    Tiny chunks force several per block; a batch of two covers the strided chunk views; 200 px
    pads maps of 50, 25, 12 and 6 tokens (windows with a partial last row and column).
    """
    monkeypatch.setattr(hiera, "_CHUNK_BYTES", 1 << 16)  # 2-4 chunks per block
    torch.manual_seed(0)
    enc = perturb_(build_image_encoder(TINY.replace(trunk=trunk)), seed=6).eval()
    images = _images(2, size, seed=8)
    with torch.no_grad():
        fast = enc(images)
    with torch.enable_grad():  # explicit: another test module switches autograd off globally
        slow = enc(images)
    assert slow.vision_features.requires_grad
    for a, b in zip(fast.backbone_fpn, slow.backbone_fpn, strict=True):
        assert (a - b.detach()).abs().max().item() <= 1e-5
    with torch.inference_mode():
        again = enc(images)
    assert torch.equal(again.vision_features, fast.vision_features)


@pytest.mark.parametrize("size", [128, 200])
def test_every_parameter_gets_a_gradient(size: int) -> None:
    torch.manual_seed(0)
    enc = build_image_encoder(TINY).train()
    perturb_(enc, seed=4)
    with torch.enable_grad():  # explicit: another test module switches autograd off globally
        out = enc(_images(2, size))
        loss = out.vision_features.square().mean() + sum(f.mean() for f in out.backbone_fpn)
        loss.backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_position_embedding_cache_follows_parameters() -> None:
    torch.manual_seed(0)
    trunk = Hiera(embed_dim=8, num_heads=1, stages=(1, 1, 1, 1), global_att_blocks=(2,)).eval()
    with torch.no_grad():
        first = trunk.position_embedding(32, 32).clone()
        assert torch.equal(trunk.position_embedding(32, 32), first)
        trunk.pos_embed.add_(1.0)
        assert torch.allclose(trunk.position_embedding(32, 32), first + 1.0, atol=1e-5)
    with torch.enable_grad():
        grad_mode = trunk.position_embedding(32, 32)
    assert grad_mode.requires_grad
    assert torch.allclose(grad_mode.detach(), first + 1.0, atol=1e-5)


def test_builder_and_preset_configs() -> None:
    enc = build_image_encoder(ModelConfig())
    assert enc.trunk.channel_list == [768, 384, 192, 96]
    assert enc.neck.fpn_top_down_levels == [2, 3]
    assert enc.scalp == 1
    assert sum(p.numel() for p in enc.parameters()) > 27_000_000
    with pytest.raises(ValueError):
        ImageEncoder(enc.trunk, build_image_encoder(TINY).neck)


def test_every_preset_builds() -> None:
    """All registered presets map onto the encoder (built on the meta device: no memory, no init)."""
    from medsam2.model.presets import PRESETS

    for name, cfg in PRESETS.items():
        with torch.device("meta"):
            enc = build_image_encoder(cfg)
        assert enc.trunk.channel_list == list(cfg.trunk.channel_list), name
        assert len(enc.trunk.blocks) == sum(cfg.trunk.stages), name
