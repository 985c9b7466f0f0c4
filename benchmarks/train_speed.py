"""Training speed: optimiser steps per second for the tiny and nano presets.

Usage: .venv/bin/python benchmarks/train_speed.py [--presets tiny nano] [--steps 10] [--threads 2]
       [--device cpu|cuda] [--amp] [--profile]

A synthetic dataset (nnU-Net layout, written to a temporary folder) feeds the real training
step (`Trainer.train_step`: episode sampling, engine propagation with gradients, losses,
backward, AdamW). Reported per preset and recipe: steps/s and object-frames/s (object x frame outputs decoded with
gradients per second), the median of ``--steps`` timed steps after 2 warm-up steps. The 3D
recipe uses 8-slice clips, prompts every 2nd slice and up to 2 objects; 2D one-prompt uses
streams of 8 images. Batch size 1, fp32, self-sorting memory. Validation and checkpoints are
off (they do not belong to the step). ``--device cuda`` runs the same step on the GPU (fp32, or
bf16 autocast with ``--amp``); ``--profile`` adds, per run, the operators that took the most
host time over the timed steps and how often the host waited for the device.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from medsam2.training.config import TrainConfig
from medsam2.training.synthetic import write_synthetic_dataset
from medsam2.training.trainer import Trainer


def _profile_summary(prof: Any, steps: int) -> dict[str, Any]:
    """Top operators by self host time, and host-device synchronisations per step."""
    events = prof.key_averages()
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    syncs = sum(e.count for e in events if "Synchronize" in e.key or e.key == "aten::_local_scalar_dense")
    launches = sum(
        e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")
    )
    return {
        "syncs_per_step": round(syncs / steps, 1),
        "kernel_launches_per_step": round(launches / steps, 1),
        "top_self_host_ms_per_step": {e.key: round(e.self_cpu_time_total / 1e3 / steps, 2) for e in top},
    }


def bench(
    data: Path,
    out: Path,
    preset: str,
    recipe: str,
    steps: int,
    device: str = "cpu",
    amp: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    cfg = TrainConfig(
        data=str(data),
        out=str(out),
        preset=preset,
        recipe=recipe,
        steps=steps + 2,
        clip_length=8,
        stream_length=8,
        max_objects=2,
        val_every=10**6,
        checkpoint_every=10**6,
        log_every=10**6,
        device=device,
        amp=amp,
    )
    trainer = Trainer(cfg)
    times, frames = [], []
    prof = None
    for s in range(steps + 2):
        if s == 2 and profile:
            prof = torch.profiler.profile().__enter__()
        t0 = time.perf_counter()
        stats = trainer.train_step(s)  # ends with host reads of the loss: the step is complete
        times.append(time.perf_counter() - t0)
        frames.append(stats["frames"])
    sec = statistics.median(times[2:])
    extra: dict[str, Any] = {}
    if prof is not None:
        prof.__exit__(None, None, None)
        extra = _profile_summary(prof, steps)
    return {
        "preset": preset,
        "recipe": recipe,
        "image_size": trainer.model.config.image_size,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "sec_per_step": round(sec, 4),
        "steps_per_s": round(1.0 / sec, 3),
        "object_frames_per_s": round(statistics.mean(frames[2:]) / sec, 2),
        "device": device,
        "amp": amp,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "nano"])
    parser.add_argument("--recipes", nargs="+", default=["3d", "2d-one-prompt"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    precision = "bf16 autocast" if args.amp and args.device == "cuda" else "fp32"
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), {where}, {precision}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = {
            "3d": write_synthetic_dataset(root / "d3", num_cases=4, shape=(96, 96, 32), num_classes=2),
            "2d-one-prompt": write_synthetic_dataset(root / "d2", num_cases=16, dims=2, shape=(128, 128)),
        }
        for preset in args.presets:
            for recipe in args.recipes:
                out = root / f"run_{preset}_{recipe}"
                result = bench(
                    data[recipe], out, preset, recipe, args.steps, args.device, args.amp, args.profile
                )
                print(json.dumps(result))


if __name__ == "__main__":
    main()
