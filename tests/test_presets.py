"""Presets: JSON round trip, detection on reference-built checkpoints, tiny model behaviour."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from _reference import REF_CONFIGS, require_reference

from medsam2.cli.main import main
from medsam2.config import ModelConfig
from medsam2.errors import ConfigError
from medsam2.model.presets import PRESETS, get_preset
from medsam2.model.sam2_model import Sam2Model


@pytest.mark.parametrize("name", list(PRESETS))
def test_config_json_round_trip(name: str) -> None:
    cfg = get_preset(name, image_size=512 if name != "tiny" else None)
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_unknown_preset_and_bad_size() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'sam3'"):
        get_preset("sam3")
    with pytest.raises(ConfigError, match="multiple of 32"):
        get_preset("sam2.1_hiera_t", image_size=500)
    assert get_preset("sam2.1_hiera_tiny").name == "sam2.1_hiera_t"
    assert get_preset("sam2_hiera_base_plus").name == "sam2_hiera_b+"


def test_tiny_preset_is_small_and_all_parameters_learn() -> None:
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny"))
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 <= n <= 900_000, n
    s = model.image_size
    feats = model.encode_image(torch.randn(2, 3, s, s))
    assert feats.vision.shape == (2, 32, s // 16, s // 16)
    assert feats.high_res is not None
    assert feats.high_res[0].shape == (2, 4, s // 4, s // 4)
    assert feats.high_res[1].shape == (2, 8, s // 8, s // 8)
    # a prompted frame, its memory, a tracked frame conditioned on it, and a mask prompt
    pts = torch.tensor([[[30.0, 40.0]], [[60.0, 70.0]]]), torch.ones(2, 1, dtype=torch.int32)
    first = model.decode(model.add_no_memory(feats), feats.high_res, pts, None, multimask=True)
    assert first.low_res_multimasks.shape == (2, 3, s // 4, s // 4)
    assert first.high_res_masks.shape == (2, 1, s, s)
    mem, pos = model.encode_memory(feats.vision, first.high_res_masks, first.object_score_logits, False)
    assert mem.shape == (2, 16, s // 16, s // 16)
    from medsam2.model.sam2_model import MemoryInput, PointerInput

    pix = model.condition_on_memory(feats, [MemoryInput(mem, pos, 0)], [PointerInput(first.obj_ptr, 1)], 7)
    second = model.decode(pix, feats.high_res, None, None, multimask=False)
    masked = model.mask_as_output(feats.vision, feats.high_res, (torch.rand(2, 1, s, s) > 0.5).float())
    absent_mem, _ = model.encode_memory(feats.vision, second.high_res_masks, -torch.ones(2, 1), False)
    loss = (
        first.low_res_multimasks.mean()
        + first.ious.mean()
        + second.low_res_masks.mean()
        + second.object_score_logits.mean()
        + masked.obj_ptr.mean()
        + absent_mem.mean()
        + pos.mean() * 0
    )
    loss.backward()
    # no_mem_pos_enc is only read by SAM 2 when directly_add_no_mem_embed is off, which no public
    # checkpoint uses (and the reference cannot run); it exists so checkpoints load strictly.
    missing = [
        k
        for k, p in model.named_parameters()
        if k != "no_mem_pos_enc" and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert not missing, f"parameters without gradient: {missing}"
    with pytest.raises(ConfigError, match="directly_add_no_mem_embed"):
        Sam2Model(get_preset("tiny").replace(directly_add_no_mem_embed=False))


@pytest.mark.parametrize(("name", "low", "high"), [("nano", 0.9e6, 1.3e6), ("micro", 3.5e6, 5e6)])
def test_embedded_presets_fit_the_size_budget(name: str, low: float, high: float) -> None:
    """Embedded models ship as float32 safetensors of at most 20 MB (5M parameters)."""
    with torch.device("meta"):
        model = Sam2Model(get_preset(name))
    n = sum(p.numel() for p in model.parameters())
    assert low <= n <= high, n
    assert get_preset(name).image_size == 256


@pytest.mark.parametrize("name", list(REF_CONFIGS))
def test_info_on_reference_checkpoint(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`medsam2 info` detects every public architecture from a reference-built checkpoint."""
    build = require_reference()
    ref = build.build_sam2(REF_CONFIGS[name], ckpt_path=None, device="cpu")
    path = tmp_path / f"{name}.pt"
    torch.save({"model": ref.state_dict()}, path)
    del ref
    gc.collect()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"preset:      {name} (" in out
    assert "load:        ok" in out
