"""``speed="fast"`` / ``--speed fast``: runs end to end, keeps the masks, refuses bad values, and
``exact`` stays the default. No timings here (benchmarks/fast_mode.py measures them)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_engine import _frames

from medsam2 import VideoPredictor
from medsam2.cli.common import CommonOptions
from medsam2.cli.main import main
from medsam2.engine import speed as speed_mod
from medsam2.engine.memory import MemoryEntry, SelectedMemory
from medsam2.engine.speed import EXACT, SpeedPlan, check_speed, speed_plan
from medsam2.errors import ConfigError
from medsam2.model.checkpoint import save_model
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model


@pytest.fixture(scope="module")
def model() -> Sam2Model:
    """Tiny random weights, object-score head biased to 'present' (masks carry information)."""
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny")).eval()
    head = m.sam_mask_decoder.pred_obj_score_head
    with torch.no_grad():
        (head.layers[-1] if hasattr(head, "layers") else head).bias.fill_(20.0)
    return m


def _masks(model: Sam2Model, speed: str | SpeedPlan) -> np.ndarray:
    vp = VideoPredictor(model, speed=speed)
    vp.start(_frames(8, 64, 80))
    vp.add_prompt(0, 1, box=[8, 20, 32, 44])
    return np.stack([out.masks[0].numpy() for out in vp.propagate("forward")])


def test_exact_is_the_default() -> None:
    assert speed_plan() is EXACT and EXACT.exact and EXACT.recent is None
    assert CommonOptions(None, None, None, "cpu", "fifo", None, 0, Path("o"), False, False).speed == "exact"


def test_default_predictor_is_exact(model: Sam2Model) -> None:
    assert VideoPredictor(model).speed is EXACT
    assert np.array_equal(_masks(model, "exact"), _masks(model, EXACT))


@pytest.mark.usefixtures("one_thread")
def test_fast_runs_and_keeps_the_masks(model: Sam2Model) -> None:
    plan = speed_plan("fast", "cpu")
    assert plan.dtype == (torch.bfloat16 if speed_mod.cpu_has_bf16() else None)
    exact, fast = _masks(model, "exact"), _masks(model, "fast")
    assert exact.shape == fast.shape == (8, 64, 80)
    assert exact.any(axis=(1, 2)).all()  # every frame has a mask to compare
    iou = (exact & fast).sum() / (exact | fast).sum()
    assert iou >= 0.9, iou  # 0.98 here (small masks, ~2.5 % of each frame); margin for other CPUs


@pytest.mark.usefixtures("one_thread")
def test_fast_variants_run(model: Sam2Model) -> None:
    """Each part alone, and the memory limit, run through a propagation (bf16 where supported)."""
    for parts in (("encoder",), ("memory",)):
        plan = speed_plan("fast", "cpu", parts)
        assert plan.exact or plan.parts == frozenset(parts)
        assert _masks(model, plan).any()
    limited = SpeedPlan("fast", None, "cpu", frozenset(), recent=2)
    assert _masks(model, limited).any()


@pytest.mark.parametrize("value", ["turbo", "", "FASTER", None])
def test_bad_speed_is_refused(model: Sam2Model, value: object) -> None:
    with pytest.raises(ConfigError, match="exact or fast"):
        VideoPredictor(model, speed=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="exact or fast"):
        check_speed(value)


def test_names_are_normalised() -> None:
    assert check_speed(" Fast ") == "fast" and check_speed("EXACT") == "exact"
    with pytest.raises(ConfigError, match="speed parts"):
        speed_plan("fast", "cpu", ("decoder",))


def test_fast_falls_back_to_float32_without_bf16(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(speed_mod, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="medsam2.engine.speed"):
        plan = speed_plan("fast", "cpu")
    assert plan.name == "fast" and plan.exact and plan.dtype is None
    assert "no native bf16" in caplog.text


def test_other_devices_fall_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="medsam2.engine.speed"):
        plan = speed_plan("fast", "meta")
    assert plan.exact and "float32 is used" in caplog.text


def test_recent_limit_keeps_prompted_and_nearest() -> None:
    def sel(frame: int, prompted: bool, tpos: int | None) -> SelectedMemory:
        entry = MemoryEntry(frame, prompted, torch.zeros(1), torch.zeros(1), torch.zeros(1), 1.0, 1.0)
        return SelectedMemory(entry, tpos)

    memories = [sel(0, True, 0), sel(3, False, 4), sel(4, False, 5), sel(5, False, 6), sel(9, True, 0)]
    kept = SpeedPlan(recent=2).select(memories)
    assert [m.entry.frame_idx for m in kept] == [0, 4, 5, 9]  # order kept, farthest dropped
    assert SpeedPlan().select(memories) == memories


def test_plan_autocast_is_a_no_op_when_exact() -> None:
    x = torch.ones(2, 2)
    with EXACT.autocast("encoder"):
        assert (x @ x).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown part"):
        EXACT.autocast("decoder")


@pytest.mark.usefixtures("one_thread")
def test_cli_speed_fast_end_to_end_and_bad_value(
    model: Sam2Model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_model(model, tmp_path / "tiny.safetensors")
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, img in enumerate(_frames(3)):
        Image.fromarray(np.stack([img] * 3, -1)).save(frames / f"{t:05d}.png")
    common = ["segment-video", str(frames), "--box", "0:8,20,32,44", "--device", "cpu"]
    common += ["--checkpoint", str(tmp_path / "tiny.safetensors")]
    assert main([*common, "--speed", "fast", "-o", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 3
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["speed"] == "fast"
    capsys.readouterr()
    assert main([*common, "--speed", "turbo", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert (
        "--speed 'turbo': unknown speed; choose exact or fast" in err and len(err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "bad").exists()


@pytest.mark.usefixtures("one_thread")
def test_frames_encoded_ahead_in_batches_give_the_same_masks(
    model: Sam2Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """encode_batch > 1 (fast on CUDA): fewer encoder calls, each of several frames, same results."""
    batches: list[int] = []
    encode = Sam2Model.encode_image

    def counting(self: Sam2Model, images: torch.Tensor):  # noqa: ANN202
        batches.append(int(images.shape[0]))
        return encode(self, images)

    monkeypatch.setattr(Sam2Model, "encode_image", counting)
    one = _masks(model, EXACT)
    assert batches == [1] * 8  # the prompted frame, then 7 tracked ones
    batches.clear()
    three = _masks(model, SpeedPlan(encode_batch=3))
    assert batches == [1, 3, 3, 1]  # prompted frame 0; frames 1-3, 4-6, then 7 alone
    assert np.array_equal(one, three)
    with pytest.raises(ConfigError, match="encode_batch must be an int >= 1"):
        SpeedPlan(encode_batch=0)


def test_fast_encodes_ahead_on_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed_mod, "_cuda_has_bf16", lambda device: True)
    monkeypatch.setattr(speed_mod, "cpu_has_bf16", lambda: True)
    assert speed_plan("fast", "cuda").encode_batch == speed_mod.GPU_ENCODE_BATCH > 1
    assert speed_plan("fast", "cpu").encode_batch == 1 and EXACT.encode_batch == 1
    assert "4 frames per encoder call" in speed_plan("fast", "cuda").describe()
