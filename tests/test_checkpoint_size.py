"""Checkpoints do not store their input size (issue 10): bowang-lab MedSAM2 releases run at 512 px,
everything else at the preset's size, and both the log and ``medsam2 info`` say which and why."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from medsam2.cli.main import main
from medsam2.errors import ConfigError
from medsam2.model.checkpoint import input_size_for, load_model, save_model
from medsam2.model.presets import PRESETS
from medsam2.model.sam2_model import Sam2Model

BOWANG_RELEASES = [
    "MedSAM2_latest.pt",
    "MedSAM2_2411.pt",
    "MedSAM2_US_Heart.pt",
    "MedSAM2_MRI_LiverLesion.pt",
    "MedSAM2_CTLesion.pt",
]


@pytest.mark.parametrize("name", BOWANG_RELEASES)
def test_bowang_release_names_with_hiera_t_run_at_512(name: str) -> None:
    size, why = input_size_for(Path("/models") / name, "sam2.1_hiera_t")
    assert size == 512 and "bowang-lab" in why and "512" in why


@pytest.mark.parametrize(
    ("name", "preset", "size"),
    [
        ("MedSAM2_pretrain.pth", "sam2_hiera_t", 1024),  # the MedSAM-2 paper's model: 1024
        ("MedSAM2_pretrain.pth", "sam2.1_hiera_t", 1024),  # .pth is not a bowang-lab release
        ("MedSAM2_latest.pt", "sam2_hiera_t", 1024),  # v1 keys: not what bowang-lab ships
        ("MedSAM2_latest.pt", "sam2.1_hiera_l", 1024),
        ("sam2.1_hiera_tiny.pt", "sam2.1_hiera_t", 1024),  # Meta's release
        ("model.pt", "tiny", 128),
    ],
)
def test_other_checkpoints_keep_the_preset_size(name: str, preset: str, size: int) -> None:
    got, why = input_size_for(name, preset)
    assert got == size and f"{size} px" in why


@pytest.fixture(scope="module")
def hiera_t_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random SAM 2.1 Hiera-T weights (fp16 to halve the file), as bowang-lab's files hold."""
    torch.manual_seed(0)
    model = Sam2Model(PRESETS["sam2.1_hiera_t"])
    path = tmp_path_factory.mktemp("ckpt") / "weights.pt"
    torch.save({"model": {k: v.half() for k, v in model.state_dict().items()}}, path)
    return path


def _info(path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """`medsam2 info`'s image-size line (the loader runs inside it and logs its decision)."""
    with caplog.at_level(logging.INFO, logger="medsam2.model.checkpoint"):
        assert main(["info", str(path)]) == 0
    return next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("image size:"))


def test_info_and_loader_say_512_for_a_bowang_release(
    hiera_t_file: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    release = hiera_t_file.with_name("MedSAM2_latest.pt")
    os.link(hiera_t_file, release)
    line = _info(release, capsys, caplog)
    assert line.startswith("image size:  512 (") and "bowang-lab" in line, line
    assert any("input size 512 px" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_same_weights_under_another_name_load_at_1024(
    hiera_t_file: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    line = _info(hiera_t_file, capsys, caplog)
    assert line.startswith("image size:  1024 (") and "preset's 1024 px" in line, line
    assert any("input size 1024 px" in r.getMessage() for r in caplog.records)


def test_loader_uses_the_size_it_reports(tmp_path: Path) -> None:
    """The tiny preset (128 px) under a bowang-lab name: not Hiera-T, so the preset size stays."""
    torch.manual_seed(0)
    path = tmp_path / "MedSAM2_latest.pt"
    torch.save({"model": Sam2Model(PRESETS["tiny"]).state_dict()}, path)
    assert load_model(path).image_size == 128
    assert load_model(path.rename(tmp_path / "other.pt"), image_size=512).image_size == 512


def test_image_size_override_keeps_the_options_saved_beside_the_weights(tmp_path: Path) -> None:
    """``--image-size`` on a safetensors file changes the input size only. The embedded nano-box
    and nano-track answer the box through ``box_mask_prompt``; rebuilding them from the bare
    preset dropped it (nano-track's boxed slices of two validation phantoms, CT and T1, fell from
    0.90 to 0.47 with ``--image-size 256``, its own size)."""
    torch.manual_seed(0)
    saved = PRESETS["tiny"].replace(box_mask_prompt=True, dynamic_multimask_via_stability=False)
    path = save_model(Sam2Model(saved), tmp_path / "boxed.safetensors")
    for size in (128, 256):
        assert load_model(path, image_size=size).config == saved.replace(image_size=size)
    with pytest.raises(ConfigError, match="multiple of 32, got 100"):
        load_model(path, image_size=100)
