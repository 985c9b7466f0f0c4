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

import numpy as np
import torch
from quality_cases import STRUCTURES, dice, phantom_cases, prompt_box

from medsam2.model.sam2_model import Sam2Model
from medsam2.preprocessing import slice_geometry, volume_to_frames
from medsam2.types import Volume
from medsam2.volume import VolumeObject, VoxelBox, segment_volume


def copy_scores(model: Sam2Model, volume: Volume, truth: np.ndarray, copies: int) -> tuple[float, float]:
    """(prompted-copy Dice, mean Dice of the other copies) for one structure ``truth`` of ``volume``."""
    axis = slice_geometry(volume, "auto").slice_axis
    assert axis is not None
    box = prompt_box(truth, axis)
    k = box.corner0[axis]
    array = np.repeat(np.take(volume.array, [k], axis=axis), copies, axis=axis)
    stacked = np.repeat(np.take(truth, [k], axis=axis), copies, axis=axis)
    vol = Volume(**{**volume.__dict__, "array": array})
    mid = copies // 2
    lo, hi = list(box.corner0), list(box.corner1)
    lo[axis] = hi[axis] = mid
    res = segment_volume(model, vol, [VolumeObject(1, "copy", boxes=(VoxelBox(tuple(lo), tuple(hi)),))])
    geom = slice_geometry(vol, "auto")
    pred, want = volume_to_frames(res.labels == 1, geom), volume_to_frames(stacked, geom)
    others = [dice(pred[t], want[t]) for t in range(copies) if t != mid]
    return dice(pred[mid], want[mid]), float(np.mean(others))


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
            scores[case.structure].append(copy_scores(model, case.volume, case.truth, args.copies))
        cells = []
        for n in [*names, None]:
            rows = [s for v in scores.values() for s in v] if n is None else scores[n]
            p, c = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
            cells.append(f"{p:.2f} / {c:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\ncells: prompted copy / other copies (Dice)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
