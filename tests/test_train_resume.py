"""Runs you can trust: exact resume, the run folder, and `medsam2 train` as a new user runs it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medsam2.cli import train as train_cli
from medsam2.cli.main import main as cli_main
from medsam2.errors import ConfigError
from medsam2.model.checkpoint import load_model
from medsam2.training import TrainConfig, resume_config, train
from medsam2.training.checkpointing import latest_checkpoint, load_state
from medsam2.training.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    return write_synthetic_dataset(root, num_cases=3, shape=(24, 24, 12), num_classes=2, seed=5)


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def test_resume_is_exact(dataset: Path, tmp_path: Path) -> None:
    """6 steps in one go == 3 steps, stop, resume to 6 (weights within 1e-6; in fact equal)."""
    common: dict[str, Any] = dict(
        data=str(dataset),
        preset="tiny",
        steps=6,
        batch_size=2,
        lr=1e-3,
        warmup_steps=2,
        clip_length=3,
        axis="random",
        prompt_mask=0.3,
        max_negative_clicks=1,
        checkpoint_every=2,
        val_every=2,
        log_every=1,
    )
    one = train(TrainConfig(out=str(tmp_path / "one"), **common))
    part = train(TrainConfig(out=str(tmp_path / "two"), **common), stop_at=3)
    assert part.step == 3 and latest_checkpoint(tmp_path / "two").step == 3  # type: ignore[union-attr]
    state = load_state(latest_checkpoint(tmp_path / "two").state)  # type: ignore[union-attr]
    assert state["step"] == 3 and {"optimizer", "scheduler", "rng"} <= set(state)
    two = train(resume_config(tmp_path / "two"), resume=True)
    assert two.step == 6
    diff = _max_diff(tmp_path / "one" / "model.safetensors", tmp_path / "two" / "model.safetensors")
    print(f"resume max |dw| = {diff:.3g}")
    assert diff <= 1e-6
    # the log reads as one run: steps 1..6 once each, the same losses
    rows = [json.loads(ln) for ln in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]
    ref = [h["loss"] for h in one.history]
    got = [r["loss"] for r in rows if r["kind"] == "train"]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # periodic checkpoints are pruned to keep_checkpoints; best-by-Dice is written
    kept = sorted(p.name for p in (tmp_path / "one" / "checkpoints").glob("*.state.pt"))
    assert kept == ["step_0000002.state.pt", "step_0000004.state.pt", "step_0000006.state.pt"]
    best = json.loads((tmp_path / "one" / "best_metrics.json").read_text())
    assert 0.0 <= best["dice"] <= 1.0 and (tmp_path / "one" / "best.safetensors").is_file()
    assert json.loads((tmp_path / "one" / "config.json").read_text())["steps"] == 6


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    return parser


def test_command_line_run_resume_and_load(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _parser()
    run = tmp_path / "run"
    cfg_file = tmp_path / "train.json"
    cfg_file.write_text(
        json.dumps({"clip_length": 3, "checkpoint_every": 2, "val_every": 4, "memory": "fifo"})
    )
    argv = ["train", "--data", str(dataset), "--out", str(run), "--preset", "tiny", "--config", str(cfg_file)]
    args = parser.parse_args([*argv, "--steps", "4", "--stop-at", "2"])
    assert args.func(args) == 0
    assert latest_checkpoint(run).step == 2  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="already holds a run"):
        args.func(parser.parse_args([*argv, "--steps", "4"]))
    with pytest.raises(ConfigError, match="drop --lr"):
        args.func(parser.parse_args(["train", "--resume", str(run), "--lr", "0.1"]))
    args = parser.parse_args(["train", "--resume", str(run)])
    assert args.func(args) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["clip_length"] == 3 and resolved["memory"] == "fifo" and resolved["preset"] == "tiny"
    for name in (
        "train.csv",
        "val.csv",
        "metrics.jsonl",
        "model.safetensors",
        "model.json",
        "best.safetensors",
    ):
        assert (run / name).is_file(), name
    # the trained weights load like any checkpoint: `medsam2 segment --checkpoint` uses them
    assert load_model(run / "model.safetensors").config.name == "tiny"
    assert load_model(run / "best.safetensors").config.name == "tiny"  # its .json is the config
    out = tmp_path / "seg.nii.gz"
    image = dataset / "imagesTr" / "case_000_0000.nii.gz"
    argv = ["segment", str(image), "--checkpoint", str(run / "model.safetensors"), "--box", "4,4,6,18,18,6"]
    assert cli_main([*argv, "-o", str(out)]) == 0
    assert out.is_file()


def test_bad_setups_fail_clearly(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'recipe'.*3D volumes"):
        train(TrainConfig(data=str(dataset), out=str(tmp_path / "r"), preset="tiny", recipe="2d-one-prompt"))
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot start
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "config.json").write_text(TrainConfig(data=str(dataset)).to_json())
        train(resume_config(tmp_path / "empty"), resume=True)
    with pytest.raises(ConfigError, match="'batch_size'"):
        from medsam2.training.distributed import DistContext, local_indices

        local_indices(3, DistContext(0, 2, 0, torch.device("cpu")))
