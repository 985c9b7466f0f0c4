"""Can a model's memory path carry a mask at all? Propagation through identical slices.

Each case is one organ of a held-out CT phantom: the slice where the organ is largest, repeated
``--copies`` times into a volume, boxed on the middle copy and propagated both ways (the path
`medsam2 segment` takes). Every copy is the same image, so a working memory path reproduces the
prompted slice's mask on every copy; a model whose copies score far below its prompted slice has
a memory path that does not carry the object (docs/embedded_model.md, "Why propagation fails").

    python benchmarks/memory_copy.py [--checkpoint A.safetensors ...] [--cases 2] [--first-seed 8000]
        [--copies 9] [--threads 1]

Prints one markdown row per model: Dice on the prompted copy and on the other copies, per organ
and over all organs (mean of the cases).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from quality_cases import STRUCTURES, phantom_cases

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the copy test, shared
from copy_helpers import copy_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", help="repeat to compare; default: the embedded model")
    ap.add_argument("--cases", type=int, default=2, help="CT phantoms")
    ap.add_argument("--first-seed", type=int, default=8000, help="phantom seeds (8000: validation)")
    ap.add_argument("--copies", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from quality import load_models

    models, _ = load_models(args.checkpoint)
    names = list(STRUCTURES)
    print(
        f"CT phantoms {args.first_seed}..{args.first_seed + args.cases - 1}, {args.copies} copies of each organ's largest slice\n"
    )
    print("| model | " + " | ".join(names) + " | **all** |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, model in models.items():
        scores: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for case in phantom_cases("CT", args.cases, args.first_seed):
            boxed, others = copy_scores(model, case.volume, case.truth, args.copies)
            scores[case.structure].append((boxed, float(np.mean(others))))
        cells = []
        for n in [*names, None]:
            rows = [s for v in scores.values() for s in v] if n is None else scores[n]
            p, c = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
            cells.append(f"{p:.2f} / {c:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\ncells: prompted copy / other copies (Dice)")


if __name__ == "__main__":
    main()
