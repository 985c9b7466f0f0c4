"""`medsam2 train` and `medsam2 check-dataset`.

Option precedence: TrainConfig defaults < ``--config FILE`` < flags (``--set KEY=VALUE`` sets any
option; VALUE is JSON, or a plain string). ``--resume RUN_DIR`` reads the run's config.json and
accepts only ``--steps``, ``--device``, ``--stop-at`` and ``--progress`` besides.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medsam2.errors import ConfigError

__all__ = ["register", "config_from_args"]

# flag -> TrainConfig field, for the flags that map one to one
_FLAGS = {
    "data": "data",
    "out": "out",
    "init": "init",
    "preset": "preset",
    "recipe": "recipe",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "image_size": "image_size",
    "memory": "memory",
    "device": "device",
    "seed": "seed",
}


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. --set clip_length=8)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key.strip().replace("-", "_")] = value
    return out


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig described by parsed `train` arguments (a fresh run, not --resume)."""
    from medsam2.training.config import TrainConfig

    cfg = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    changes = {
        field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None
    }
    if args.progress:
        changes["progress"] = True
    if changes.get("init") is not None:
        changes.setdefault("preset", None)
    elif changes.get("preset") is not None:
        changes["init"] = None
    cfg = cfg.replace(**changes)
    cfg = cfg.replace(**_parse_set(args.set or []))
    for name in ("data", "out"):
        if not getattr(cfg, name):
            raise ConfigError(f"--{name} is required (or set {name!r} in the --config file)")
    if cfg.init is None and cfg.preset is None:
        raise ConfigError("give --init CHECKPOINT (fine-tune) or --preset NAME (train from scratch)")
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from medsam2.training.trainer import resume_config, train

    if args.resume:
        given = [f for f in _FLAGS if f not in ("steps", "device") and getattr(args, f) is not None]
        given += [f for f in ("config", "set") if getattr(args, f)]
        if given:
            flags = ", ".join("--" + f.replace("_", "-") for f in given)
            raise ConfigError(f"--resume continues a run with its own config.json; drop {flags}")
        cfg = resume_config(args.resume, steps=args.steps, device=args.device, progress=args.progress or None)
        result = train(cfg, resume=True, stop_at=args.stop_at)
    else:
        result = train(config_from_args(args), stop_at=args.stop_at)
    if result.weights is not None:
        best = "" if result.best_dice is None else f", best validation Dice {result.best_dice:.4f}"
        print(f"trained {result.step} steps{best}; weights: {result.weights}")
    return 0


def _cmd_check_dataset(args: argparse.Namespace) -> int:
    from medsam2.training.check import check_dataset

    report = check_dataset(args.dataset, check_images=not args.quick)
    for line in report.lines():
        print(line)
    print(report.summary(), file=sys.stderr if report.errors else sys.stdout)
    return 1 if report.errors else 0


def _add_train(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="fine-tune (or train from scratch) on an nnU-Net-layout dataset",
        description="Train MedSAM-2 on a dataset in the nnU-Net v2 raw layout (see docs/training.md). "
        "Multi-GPU: torchrun --nproc_per_node=N -m medsam2.cli.main train ...",
    )
    p.add_argument(
        "--data",
        help="dataset folder (dataset.json, imagesTr/, labelsTr/), or several separated by commas: "
        "trained as one, each with its own modality",
    )
    p.add_argument("--out", help="run folder to create (config, metrics, checkpoints)")
    p.add_argument("--init", help="checkpoint to start from (SAM 2 / MedSAM-2 .pt, or our .safetensors)")
    p.add_argument("--preset", help="train this preset from scratch instead (e.g. tiny, nano)")
    p.add_argument("--config", help="JSON file with training options (see docs/training.md)")
    p.add_argument("--recipe", choices=("3d", "2d-one-prompt"), default=None)
    p.add_argument("--steps", type=int, default=None, help="total optimiser steps")
    p.add_argument(
        "--batch-size", dest="batch_size", type=int, default=None, help="episodes per step (all processes)"
    )
    p.add_argument("--lr", type=float, default=None, help="base learning rate")
    p.add_argument("--image-size", dest="image_size", type=int, default=None)
    p.add_argument("--memory", choices=("fifo", "self-sorting"), default=None)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any training option (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument(
        "--stop-at",
        dest="stop_at",
        type=int,
        default=None,
        metavar="STEP",
        help="stop after STEP steps with a checkpoint (the schedule still spans --steps); then --resume",
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=_cmd_train)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `train` and `check-dataset` to the `medsam2` parser."""
    _add_train(sub)
    p = sub.add_parser(
        "check-dataset",
        help="verify an nnU-Net-layout dataset before training; lists every problem",
    )
    p.add_argument("dataset", help="dataset folder (dataset.json, imagesTr/, labelsTr/)")
    p.add_argument("--quick", action="store_true", help="check the layout only, without reading images")
    p.set_defaults(func=_cmd_check_dataset)
