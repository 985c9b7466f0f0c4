"""Checkpoint loading: detection, strictness, safety, safetensors round trip."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from medsam2 import load_model, save_model
from medsam2.errors import CheckpointError
from medsam2.model.checkpoint import detect_preset
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model


@pytest.fixture(scope="module")
def tiny() -> Sam2Model:
    torch.manual_seed(0)
    return Sam2Model(get_preset("tiny")).eval()


def test_safetensors_round_trip(tiny: Sam2Model, tmp_path: Path) -> None:
    path = save_model(tiny, tmp_path / "m.safetensors")
    assert path.with_suffix(".json").is_file()
    loaded = load_model(path)
    assert loaded.config == tiny.config
    for (k, a), (_, b) in zip(tiny.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("wrap", ["model", "state_dict", None])
def test_pt_wrappers_and_detection(tiny: Sam2Model, tmp_path: Path, wrap: str | None) -> None:
    sd = tiny.state_dict()
    path = tmp_path / "m.pt"
    torch.save(sd if wrap is None else {wrap: sd}, path)
    assert detect_preset(sd).preset == "tiny"
    assert load_model(path).config.name == "tiny"


def test_ddp_prefix_is_stripped(tiny: Sam2Model, tmp_path: Path) -> None:
    path = tmp_path / "ddp.pt"
    torch.save({"model": {f"module.{k}": v for k, v in tiny.state_dict().items()}}, path)
    assert load_model(path).config.name == "tiny"


def test_truncated_file(tiny: Sam2Model, tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save({"model": tiny.state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch checkpoint"):
        load_model(path)


def test_truncated_safetensors(tiny: Sam2Model, tmp_path: Path) -> None:
    path = save_model(tiny, tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"m\.safetensors: not a readable safetensors"):
        load_model(path)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_model(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_wrong_keys_named(tiny: Sam2Model, tmp_path: Path) -> None:
    sd = dict(tiny.state_dict())
    sd.pop("no_mem_embed")
    sd["extra.weight"] = torch.zeros(3)
    path = tmp_path / "keys.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match=r"missing no_mem_embed.*unexpected extra\.weight"):
        load_model(path)
    with pytest.raises(CheckpointError, match=r"keys\.pt: does not match tiny: missing no_mem_embed"):
        load_model(path, preset="tiny")


def test_wrong_shape_named(tiny: Sam2Model, tmp_path: Path) -> None:
    sd = dict(tiny.state_dict())
    sd["no_mem_embed"] = torch.zeros(1, 1, 7)
    path = tmp_path / "shape.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(
        CheckpointError, match=r"shape of no_mem_embed: file \(1, 1, 7\) vs model \(1, 1, 32\)"
    ):
        load_model(path, preset="tiny")


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # runs os.system on unpickling — must never happen
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload(str(marker))}, f)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load"):
        load_model(path)
    evil_zip = tmp_path / "evil_zip.pt"
    torch.save({"model": _Payload(str(marker))}, evil_zip)
    with pytest.raises(CheckpointError, match=r"evil_zip\.pt: refused to load"):
        load_model(evil_zip)
    assert not marker.exists()


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"model": {"layer.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="match no known SAM 2 architecture"):
        load_model(path)
