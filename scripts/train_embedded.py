"""Reproduce the embedded `nano` model: phantom dataset -> `medsam2 train` -> package assets.

    python scripts/train_embedded.py [--cases 40] [--steps N] [--out runs/embedded_nano]

Writes a CT phantom dataset (seeds 0..cases-1; the demo and the quality benchmarks use seeds
>= 9000, never seen in training) in the nnU-Net layout, trains with configs/embedded_nano.json
on whatever device is available (CPU works; a GPU only makes it faster), then copies the
best-by-validation weights to medsam2/assets/nano.safetensors (+ .json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from medsam2.data.phantoms import ct_phantom, write_nnunet_dataset
    from medsam2.training import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="runs/embedded_nano")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    dataset = Path(args.data) / "Dataset900_Phantoms"
    if not dataset.is_dir():
        write_nnunet_dataset(
            args.data, [ct_phantom(seed=s) for s in range(args.cases)], "Phantoms", dataset_id=900
        )
    options = json.loads((ROOT / "configs" / "embedded_nano.json").read_text())
    if args.steps:
        options["steps"] = args.steps
    cfg = TrainConfig(data=str(dataset), out=args.out, progress=True, **options)
    result = train(cfg, resume=args.resume)
    best = Path(args.out) / "best.safetensors"
    weights = best if best.is_file() else Path(result.weights)
    assets = ROOT / "medsam2" / "assets"
    assets.mkdir(exist_ok=True)
    shutil.copy(weights, assets / "nano.safetensors")
    shutil.copy(weights.with_suffix(".json"), assets / "nano.json")
    print(
        json.dumps(
            {"weights": str(weights), "best_dice": result.best_dice, "config": dataclasses.asdict(cfg)},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
