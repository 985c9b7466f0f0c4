"""Validation Dice of checkpoints on held-out *generated* data: the selection set for the embedded models.

Real scans with labels are scarce offline and are kept for the final, held-out report
(benchmarks/quality.py); phantoms (seeds 8000+) validate the phantom skill. What validates
"segments images it never saw, on any contrast" is domain-randomised data from seeds that no
training config uses (here 5000): 3D cases of ``synth:...`` (one box on each object's largest
slice, propagated through the slab, volume Dice) and One-Prompt image sets of ``synth2d:...``
(the first image of each family prompted, the others segmented from memory). The same
``medsam2.training.validation.validate`` that training logs is used, through the inference engine.

    python benchmarks/synth_validation.py --checkpoint A.safetensors [--checkpoint B ...]
        [--cases3d 40] [--families 24] [--per-family 8] [--seed 5000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from medsam2.data.union import open_dataset
from medsam2.model.checkpoint import load_model
from medsam2.training.config import TrainConfig
from medsam2.training.validation import validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True, help="repeat to compare")
    ap.add_argument("--cases3d", type=int, default=40)
    ap.add_argument("--families", type=int, default=24)
    ap.add_argument("--per-family", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5000, help="generator seed; no training config uses 5000")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec3d = f"synth:seed={args.seed};cases={args.cases3d};size=128;depth=10"
    n2d = args.families * args.per_family
    spec2d = f"synth2d:seed={args.seed};cases={n2d};size=128;families={args.families}"
    data3d, data2d = open_dataset(spec3d, cache_cases=args.cases3d), open_dataset(spec2d, cache_cases=n2d)
    runs = [
        ("3D, box", data3d, TrainConfig(data=spec3d, memory="self-sorting", val_prompt="box")),
        *(
            (f"One-Prompt 2D, {p}", data2d, TrainConfig(data=spec2d, recipe="2d-one-prompt", val_prompt=p))
            for p in ("box", "mask")
        ),
    ]
    print(f"`{spec3d}` ({args.cases3d} cases), `{spec2d}`\n")
    print("| checkpoint | " + " | ".join(name for name, _, _ in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for path in args.checkpoint:
        model = load_model(path)
        cells = []
        for _, data, cfg in runs:
            start = time.perf_counter()
            result = validate(model, data, list(range(len(data))), cfg)
            scores = list(result.per_class.values())
            cells.append(f"{result.dice:.3f} (n={len(scores)}, {time.perf_counter() - start:.0f} s)")
        print(f"| `{Path(path).parent.name}/{Path(path).name}` | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
