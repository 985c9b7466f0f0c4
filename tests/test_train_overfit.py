"""The tiny preset overfits small synthetic datasets on CPU (3D recipe and 2D One-Prompt recipe).

Measured, not assumed: the training loss falls by at least half, the frames without a prompt
(segmented from memory alone) reach a Dice above 0.8, and the Dice of the training cases
through the real inference path (one prompt, propagation; `validate`) exceeds 0.9.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from medsam2.training import TrainConfig, train
from medsam2.training.synthetic import write_synthetic_dataset

log = logging.getLogger(__name__)


pytestmark = pytest.mark.usefixtures("one_thread")


def _curve(history: list[dict[str, float]]) -> tuple[float, float]:
    losses = [h["loss"] for h in history]
    return float(np.mean(losses[:3])), float(np.mean(losses[-10:]))


def _check(result, out: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    start, end = _curve(result.history)
    dice = result.validations[-1]["dice"]
    train_dice = float(np.mean([h["dice"] for h in result.history[-10:]]))
    memory_dice = float(np.mean([h["dice_memory"] for h in result.history[-10:]]))
    summary = {
        "start_loss": start,
        "end_loss": end,
        "train_dice": train_dice,
        "memory_dice": memory_dice,
        "val_dice": dice,
    }
    log.warning("%s overfit: %s", name, json.dumps(summary))
    assert end <= 0.5 * start, summary
    assert dice > 0.9, summary
    assert memory_dice > 0.8, summary  # frames without a prompt are segmented from memory alone
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert any(json.loads(ln)["kind"] == "val" for ln in lines)


def test_overfit_3d(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "ds", num_cases=2, dims=3, shape=(32, 32, 16), seed=1)
    cfg = TrainConfig(
        data=str(data),
        out=str(tmp_path / "run"),
        preset="tiny",
        steps=60,
        lr=2e-3,
        warmup_steps=5,
        clip_length=4,
        val_every=0,
        checkpoint_every=1000,
    )
    _check(train(cfg), tmp_path / "run", "3d")


def test_overfit_2d_one_prompt(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "ds", num_cases=6, dims=2, shape=(48, 48), seed=2)
    cfg = TrainConfig(
        data=str(data),
        out=str(tmp_path / "run"),
        preset="tiny",
        recipe="2d-one-prompt",
        steps=60,
        lr=2e-3,
        warmup_steps=5,
        stream_length=5,
        val_every=0,
        checkpoint_every=1000,
    )
    _check(train(cfg), tmp_path / "run", "2d")
