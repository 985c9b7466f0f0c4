"""The training loop: episodes -> engine propagation -> losses -> AdamW, with logging,
checkpoints, validation, exact resume and DDP.

Exactness: the episodes of step s (data order, clip placement, prompts, memory-policy seeds,
dropout) depend only on (seed, s, episode index), and the checkpoint holds the optimizer and
scheduler states, so ``k`` steps + resume to ``N`` gives the weights of ``N`` steps in one go.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsam2.data.union import open_dataset
from medsam2.errors import ConfigError
from medsam2.model.checkpoint import load_model, save_model
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model
from medsam2.training.checkpointing import (
    Checkpoint,
    MetricsLog,
    latest_checkpoint,
    load_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from medsam2.training.config import TrainConfig
from medsam2.training.distributed import (
    DistContext,
    barrier,
    init_distributed,
    local_indices,
    reduce_mean,
    wrap_ddp,
)
from medsam2.training.episode import EpisodeModel
from medsam2.training.losses import LossConfig, MultiMaskLoss
from medsam2.training.optim import build_optimizer, build_scheduler, enable_gradient_checkpointing
from medsam2.training.recipes import EpisodeSampler
from medsam2.training.validation import ValidationResult, validate

__all__ = ["Trainer", "TrainResult", "train", "resume_config", "split_cases", "build_model"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced. ``history`` holds every step's averaged statistics (rank 0)."""

    run_dir: Path
    step: int
    weights: Path | None
    best_dice: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    validations: list[dict[str, float]] = field(default_factory=list)


def split_cases(names: list[str], cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """(training, validation) case names. ``val_split`` 0: validate on the first training cases."""
    limit = cfg.val_cases * (cfg.stream_length if cfg.recipe == "2d-one-prompt" else 1)
    if cfg.val_split == 0.0:
        return list(names), list(names[:limit])
    n_val = max(1, round(len(names) * cfg.val_split))
    if n_val >= len(names):
        raise ConfigError(
            f"training option 'val_split': {cfg.val_split} leaves no training case of {len(names)}"
        )
    perm = np.random.default_rng([cfg.seed, 99]).permutation(len(names))
    held = {names[i] for i in perm[:n_val]}
    return [n for n in names if n not in held], [n for n in names if n in held][:limit]


def build_model(cfg: TrainConfig, device: torch.device, checkpoint: Checkpoint | None = None) -> Sam2Model:
    """The model to train: from a run's checkpoint, ``cfg.init`` or a fresh ``cfg.preset``."""
    if checkpoint is not None:
        model = load_model(checkpoint.weights)
    elif cfg.init is not None:
        model = load_model(cfg.init, image_size=cfg.image_size)
    elif cfg.preset is not None:
        torch.manual_seed(cfg.seed)
        model = Sam2Model(get_preset(cfg.preset, cfg.image_size))
    else:
        raise ConfigError(
            "training option 'init': give a checkpoint to start from (--init) or a preset to train "
            "from scratch (--preset)"
        )
    if checkpoint is None and cfg.model_options:  # a resumed run's checkpoint already has them
        rebuilt = Sam2Model(model.config.replace(**cfg.model_options))  # modules read flags when built
        rebuilt.load_state_dict(model.state_dict())
        model = rebuilt
    return model.to(device).train()


def resume_config(run_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The config of an existing run (``RUN_DIR/config.json``) with ``overrides`` (e.g. steps)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a training run folder (no config.json)")
    cfg = TrainConfig.from_json(path)
    return cfg.replace(out=str(run_dir), **{k: v for k, v in overrides.items() if v is not None})


class Trainer:
    """Sets up a run (or resumes one) and trains it; see :func:`train`."""

    def __init__(self, cfg: TrainConfig, resume: bool = False) -> None:
        for name in ("data", "out"):
            if not getattr(cfg, name):
                raise ConfigError(f"training option {name!r} is required")
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.ctx: DistContext = init_distributed(cfg.device)
        self._setup_data()
        checkpoint = self._find_checkpoint(resume)
        self.model = build_model(cfg, self.ctx.device, checkpoint)
        if cfg.grad_checkpointing:
            enable_gradient_checkpointing(self.model)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.start_step, self.best_dice, self.best_step = 0, -1.0, 0
        if checkpoint is not None:
            self._restore(checkpoint)
        loss = MultiMaskLoss(LossConfig.from_train_config(cfg))
        self.engine = wrap_ddp(EpisodeModel(self.model, loss, amp=cfg.amp), self.ctx)
        self.sampler = EpisodeSampler(self.train_data, cfg, self.model.config)
        self._write_run_dir()
        self.metrics = (
            MetricsLog(self.run_dir, self.start_step if resume else None) if self.ctx.is_main else None
        )
        n = sum(p.numel() for p in self.trainable)
        log.info(
            "%s: %d trainable parameters on %s x%d",
            self.model.config.name,
            n,
            self.ctx.device,
            self.ctx.world_size,
        )

    def _find_checkpoint(self, resume: bool) -> Checkpoint | None:
        """The checkpoint to resume from; refuses to start a fresh run over an existing one."""
        if resume:
            ckpt = latest_checkpoint(self.run_dir)
            if ckpt is None:
                raise ConfigError(f"{self.run_dir}: no complete checkpoint to resume from")
            log.info("resuming %s from step %d", self.run_dir, ckpt.step)
        else:
            if (self.run_dir / "config.json").exists():
                raise ConfigError(
                    f"training option 'out': {self.run_dir} already holds a run; continue it with "
                    "--resume or choose another folder"
                )
            ckpt = None
        return ckpt

    def _write_run_dir(self) -> None:
        barrier(self.ctx)  # every process has checked the run folder before rank 0 writes to it
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "config.json", self.cfg.to_dict())
        barrier(self.ctx)

    def _setup_data(self) -> None:
        cfg = self.cfg
        full = open_dataset(cfg.data, window=cfg.window, cache_cases=cfg.cache_cases)
        is_2d = full.is_2d()
        if is_2d != (cfg.recipe == "2d-one-prompt"):
            want = "2d-one-prompt" if is_2d else "3d"
            kind = "2D images" if is_2d else "3D volumes"
            raise ConfigError(f"training option 'recipe': the dataset holds {kind}; use --recipe {want}")
        train_names, val_names = split_cases(full.names, cfg)
        self.train_data = open_dataset(cfg.data, train_names, cfg.window, cfg.cache_cases)
        self.val_data = open_dataset(cfg.data, val_names, cfg.window, cfg.cache_cases)
        log.info("%d training / %d validation cases", len(train_names), len(val_names))

    def _restore(self, checkpoint: Checkpoint) -> None:
        state = load_state(checkpoint.state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.start_step = int(state["step"])
        self.best_dice = float(state["extra"].get("best_dice", -1.0))
        self.best_step = int(state["extra"].get("best_step", 0))

    # ---------------------------------------------------------------- one step
    def train_step(self, step: int) -> dict[str, float]:
        """Optimiser step ``step`` (0-based) over this process's share of the episodes."""
        self.optimizer.zero_grad(set_to_none=True)
        indices = local_indices(self.cfg.batch_size, self.ctx)
        sums: dict[str, float] = defaultdict(float)
        for n, i in enumerate(indices):
            episode = self.sampler.sample(step, i)
            last = n == len(indices) - 1
            no_sync = getattr(self.engine, "no_sync", None)
            with nullcontext() if last or no_sync is None else no_sync():
                loss, stats = self.engine(episode)
                (loss / len(indices)).backward()
            sums["loss"] += float(loss.detach())
            for k, v in stats.items():
                sums[k] += float(v)
        lr = float(self.optimizer.param_groups[0]["lr"])
        limit = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, limit))
        if math.isfinite(norm):
            self.optimizer.step()
        else:
            log.warning("step %d: non-finite gradient norm, update skipped", step + 1)
        self.scheduler.step()
        means = {k: v / len(indices) for k, v in sums.items()}
        means.update(grad_norm=norm, lr=lr)
        return reduce_mean(means, self.ctx)

    # ---------------------------------------------------------------- bookkeeping
    def _validate(self, step: int) -> dict[str, float]:
        result: ValidationResult = validate(
            self.model, self.val_data, list(range(len(self.val_data))), self.cfg
        )
        record = {"step": step, **result.record()}
        assert self.metrics is not None
        self.metrics.log("val", record)
        log.info("step %d: validation Dice %.4f %s", step, result.dice, result.per_class)
        if result.dice > self.best_dice:
            self.best_dice, self.best_step = result.dice, step
            save_model(self.model, self.run_dir / "best.safetensors")
            write_json(self.run_dir / "best_metrics.json", record)  # best.json: the model config
        return record

    def _after_step(
        self, step: int, stats: dict[str, float], elapsed: float, stop: int
    ) -> dict[str, float] | None:
        """Log, validate and checkpoint after ``step`` completed steps (rank 0 writes)."""
        cfg = self.cfg
        record = {"step": step, **stats, "sec_per_step": elapsed}
        final = step == cfg.steps
        if self.metrics is not None and (step % cfg.log_every == 0 or final or step == self.start_step + 1):
            self.metrics.log("train", record)
        val = None
        due_val = (cfg.val_every and step % cfg.val_every == 0) or final
        if self.ctx.is_main and due_val:
            val = self._validate(step)
        if self.ctx.is_main and (step % cfg.checkpoint_every == 0 or step == stop):
            extra = {"best_dice": self.best_dice, "best_step": self.best_step}
            save_checkpoint(
                self.run_dir, step, self.model, self.optimizer, self.scheduler, extra, cfg.keep_checkpoints
            )
        return val

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train from the start (or resumed) step up to ``cfg.steps``, or stop after ``stop_at``
        steps with a checkpoint (the schedule still spans ``cfg.steps``; ``--resume`` continues)."""
        cfg = self.cfg
        stop = cfg.steps if stop_at is None else max(self.start_step, min(stop_at, cfg.steps))
        result = TrainResult(self.run_dir, self.start_step, None, None)
        bar = None
        if cfg.progress and self.ctx.is_main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.start_step, desc="train", unit="step")
        for s in range(self.start_step, stop):
            t0 = time.perf_counter()
            stats = self.train_step(s)
            val = self._after_step(s + 1, stats, time.perf_counter() - t0, stop)
            result.history.append({"step": s + 1, **stats})
            if val is not None:
                result.validations.append(val)
            if bar is not None:
                bar.set_postfix(loss=f"{stats['loss']:.4f}", dice=f"{stats['dice']:.3f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        result.step = stop
        if self.ctx.is_main:
            result.weights = save_model(self.model, self.run_dir / "model.safetensors")
            result.best_dice = self.best_dice if self.best_dice >= 0 else None
            assert self.metrics is not None
            self.metrics.close()
        barrier(self.ctx)
        return result


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None) -> TrainResult:
    """Train (or, with ``resume``, continue the run in ``cfg.out``) and return what it produced.

    stop_at: stop after this many steps with a checkpoint (e.g. a job's time slot); resume later.
    """
    return Trainer(cfg, resume=resume).run(stop_at)
