"""The run folder: resolved config, metrics log, checkpoints with a training state, resume.

Layout::

    RUN_DIR/config.json                    the resolved TrainConfig
    RUN_DIR/metrics.jsonl                  every record (train and validation), one JSON per line
    RUN_DIR/train.csv, RUN_DIR/val.csv     the same records as tables
    RUN_DIR/checkpoints/step_NNNNNNN.safetensors (+ .json)   weights + model config (save_model)
    RUN_DIR/checkpoints/step_NNNNNNN.state.pt                optimizer, scheduler, step, RNG states
    RUN_DIR/best.safetensors (+ .json), best_metrics.json            best validation Dice so far
    RUN_DIR/model.safetensors (+ .json)                      the final weights

A checkpoint is complete once its ``.state.pt`` exists (it is written last, atomically);
``--resume`` continues from the newest complete one. State files hold tensors, numbers and
strings only and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsam2.errors import ConfigError
from medsam2.io import atomic_output
from medsam2.model.checkpoint import save_model
from medsam2.model.sam2_model import Sam2Model

__all__ = [
    "Checkpoint",
    "MetricsLog",
    "rng_state",
    "set_rng_state",
    "save_checkpoint",
    "latest_checkpoint",
    "load_state",
    "write_json",
    "STATE_VERSION",
]

log = logging.getLogger(__name__)
STATE_VERSION = 1
_STEP_RE = re.compile(r"step_(\d{7})\.state\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: ``weights`` (.safetensors, config .json beside it) and ``state``."""

    step: int
    weights: Path
    state: Path


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and ints (loadable with ``weights_only=True``)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_gauss": float(gauss),
        "python": torch.tensor(internal, dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": py_gauss,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    internal = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], internal, state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _stem(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:07d}"


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Sam2Model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    extra: dict[str, Any],
    keep: int,
) -> Checkpoint:
    """Write the checkpoint after ``step`` optimiser steps; keep the newest ``keep`` ones."""
    stem = _stem(run_dir, step)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = save_model(model, stem.with_suffix(".safetensors"))
    state = {
        "version": STATE_VERSION,
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "extra": extra,
    }
    path = stem.with_suffix(".state.pt")
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    for old in _complete(run_dir)[:-keep]:
        for p in (old.state, old.weights, old.weights.with_suffix(".json")):
            p.unlink(missing_ok=True)
    log.info("checkpoint: %s", weights)
    return Checkpoint(step, weights, path)


def _complete(run_dir: Path) -> list[Checkpoint]:
    folder = run_dir / "checkpoints"
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _STEP_RE.match(p.name)
            weights = p.with_name(p.name.replace(".state.pt", ".safetensors"))
            if m and weights.is_file():
                found.append(Checkpoint(int(m.group(1)), weights, p))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The newest complete checkpoint of a run, or None."""
    found = _complete(Path(run_dir))
    return found[-1] if found else None


def load_state(path: Path) -> dict[str, Any]:
    """Read a training-state file (tensors and plain values only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise ConfigError(f"{path}: unreadable training state ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ConfigError(f"{path}: not a medsam2 training-state file (version {STATE_VERSION})")
    return state


class MetricsLog:
    """Appends records to ``metrics.jsonl`` and ``{kind}.csv`` (and TensorBoard when installed).

    On resume from step k, records of later steps (written after that checkpoint) are dropped
    first, so the log reads as one run.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.jsonl = run_dir / "metrics.jsonl"
        self._fields: dict[str, list[str]] = {}
        if resume_step is not None:
            self._truncate(resume_step)
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: JSONL/CSV only
                self._tb = None

    def _truncate(self, step: int) -> None:
        if self.jsonl.is_file():
            lines = self.jsonl.read_text().splitlines()
            kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
            self.jsonl.write_text("".join(ln + "\n" for ln in kept))
        for path in self.run_dir.glob("*.csv"):
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
            if rows and "step" in rows[0]:
                col = rows[0].index("step")
                rows = [rows[0]] + [r for r in rows[1:] if int(r[col]) <= step]
                with open(path, "w", newline="") as fh:
                    csv.writer(fh).writerows(rows)

    def log(self, kind: str, record: dict[str, Any]) -> None:
        """Write one record (must contain "step") of ``kind`` ("train" or "val")."""
        full = {"kind": kind, **record}
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(full, sort_keys=False) + "\n")
        path = self.run_dir / f"{kind}.csv"
        new = not path.is_file()
        if new:
            self._fields[kind] = list(record)
        elif kind not in self._fields:
            with open(path, newline="") as fh:
                self._fields[kind] = next(csv.reader(fh), list(record))
        fields = self._fields[kind]
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(record)
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{kind}/{k}", v, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
