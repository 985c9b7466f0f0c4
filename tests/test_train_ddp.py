"""DDP through torchrun: 2 CPU processes (gloo) train like 1 process with the same global batch,
and only rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from medsam2.training import TrainConfig, train
from medsam2.training.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_match_one(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "ds", num_cases=3, shape=(24, 24, 12), seed=4)
    common: dict[str, Any] = dict(
        data=str(data),
        preset="tiny",
        steps=3,
        batch_size=2,
        lr=1e-3,
        clip_length=3,
        log_every=1,
        val_every=3,
        checkpoint_every=3,
        device="cpu",
    )
    single = train(TrainConfig(out=str(tmp_path / "one"), **common))
    cfg_file = tmp_path / "ddp.json"
    TrainConfig(out=str(tmp_path / "two"), **common).to_json(cfg_file)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2"]
    cmd += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "medsam2.training"]
    done = subprocess.run(
        [*cmd, "--config", str(cfg_file)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (
        load_file(str(tmp_path / "one" / "model.safetensors")),
        load_file(str(tmp_path / "two" / "model.safetensors")),
    )
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"DDP (2 x gloo) vs 1 process: max |dw| = {diff:.3g}")
    assert diff <= 1e-5
    # only rank 0 wrote: one record per step, logged losses equal the single process's
    rows = [json.loads(ln) for ln in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    for r, h in zip(train_rows, single.history, strict=True):
        assert abs(r["loss"] - h["loss"]) <= 1e-5 * max(1.0, abs(h["loss"]))
    assert len([r for r in rows if r["kind"] == "val"]) == 1
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == [
        "step_0000003.json",
        "step_0000003.safetensors",
        "step_0000003.state.pt",
    ]
