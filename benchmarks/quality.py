"""Segmentation quality of a checkpoint (default: the embedded model), measured, not assumed.

1. Held-out CT phantoms (seeds 9000+, never used in training): one box on the slice where each
   structure is largest, bidirectional propagation; Dice per structure for `self-sorting` and
   `fifo`, and Dice as a function of the distance (in slices) from the prompted slice.
2. Held-out MR phantoms (T1 and T2 weighting, seeds 9000+), self-sorting: Dice per structure.
3. Real structures: nilearn's MNI152 T1 template (when installed), one box on the largest axial
   slice of its grey matter (never in training) and of its white matter (in the embedded
   model's last training stage, so marked as seen).
4. One-Prompt 2D: Dice on a fundus-like image set vs the number of prompted images.

    python benchmarks/quality.py [--checkpoint FILE] [--cases 6] [--first-seed 9000] [--json out.json]
Prints markdown tables (pasted into README/docs by hand, with the command line). Choose
between candidate models with another ``--first-seed`` (e.g. 8000) than the one you report.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

STRUCTURES = {"liver": 1, "kidney_right": 2, "kidney_left": 3, "spleen": 4, "aorta": 6}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = float(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def load(checkpoint: str | None):  # noqa: ANN201
    from medsam2 import load_model
    from medsam2.model.embedded import checkpoint_path

    path = checkpoint or checkpoint_path()
    if path is None:
        raise SystemExit("no --checkpoint and no embedded model")
    return load_model(path), str(path)


def phantom_study(model, cases: int, first_seed: int, weighting: str = "CT") -> dict:  # noqa: ANN001
    from medsam2.data.phantoms import ct_phantom, mr_phantom
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    policies = ("self-sorting", "fifo") if weighting == "CT" else ("self-sorting",)
    per = {m: defaultdict(list) for m in policies}
    by_dist = {m: defaultdict(list) for m in per}
    for seed in range(first_seed, first_seed + cases):
        ph = ct_phantom(seed=seed) if weighting == "CT" else mr_phantom(seed=seed, weighting=weighting)
        for name, value in STRUCTURES.items():
            truth = ph.label == value
            if truth.sum() == 0:
                continue
            k = int(np.argmax(truth.sum(axis=(0, 1))))
            ii, jj = np.nonzero(truth[:, :, k])
            box = VoxelBox((int(ii.min()), int(jj.min()), k), (int(ii.max()), int(jj.max()), k))
            for memory in per:
                res = segment_volume(model, ph.volume, [VolumeObject(1, name, boxes=(box,))], memory=memory)
                pred = res.labels == 1
                per[memory][name].append(dice(pred, truth))
                for z in range(truth.shape[2]):
                    if truth[:, :, z].any() or pred[:, :, z].any():
                        by_dist[memory][min(abs(z - k) // 4, 5)].append(dice(pred[:, :, z], truth[:, :, z]))
    return {"per_structure": per, "by_distance": by_dist}


def mni_study(model) -> dict | None:  # noqa: ANN001
    try:
        import nilearn  # noqa: F401
    except ImportError:
        return None
    from medsam2.io import read_image
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    base = Path(__import__("nilearn").__file__).parent / "datasets" / "data"
    t1 = next(iter(base.glob("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")), None)
    if t1 is None:
        return None
    vol = read_image(t1)
    out = {}
    for name, tissue in (("grey_matter (unseen)", "gm"), ("white_matter (seen in training)", "wm")):
        mask_path = base / f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz"
        if not mask_path.is_file():
            continue
        truth = read_image(mask_path).array > 0.5
        k = int(np.argmax(truth.sum(axis=(0, 1))))
        ii, jj = np.nonzero(truth[:, :, k])
        box = VoxelBox((int(ii.min()), int(jj.min()), k), (int(ii.max()), int(jj.max()), k))
        res = segment_volume(model, vol, [VolumeObject(1, name, boxes=(box,))], memory="self-sorting")
        out[name] = dice(res.labels == 1, truth)
    return out


def one_prompt_study(model, n_images: int = 12) -> dict:  # noqa: ANN001
    from medsam2 import ImageSetPredictor
    from medsam2.data.phantoms import fundus_set

    samples = fundus_set(n_images, seed=9000)
    images = np.stack([s.image for s in samples])
    truths = [s.label >= 1 for s in samples]
    out = {}
    for prompted in (1, 2, 4):
        ip = ImageSetPredictor(model)
        ip.start(images)
        for i in range(prompted):
            ys, xs = np.nonzero(truths[i])
            ip.add_prompt(i, 1, box=[xs.min(), ys.min(), xs.max(), ys.max()])
        res = ip.segment()
        scores = [dice(res[i].masks[0].numpy(), truths[i]) for i in range(prompted, n_images)]
        out[prompted] = float(np.mean(scores))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--first-seed", type=int, default=9000)
    ap.add_argument("--mr-cases", type=int, default=3, help="per MR weighting; 0: skip")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, path = load(args.checkpoint)
    print(f"checkpoint: {path}; phantom seeds {args.first_seed}+\n")
    ph = phantom_study(model, args.cases, args.first_seed)
    print("| structure | self-sorting Dice | fifo Dice |\n|---|---|---|")
    for name in STRUCTURES:
        a, b = ph["per_structure"]["self-sorting"][name], ph["per_structure"]["fifo"][name]
        if a:
            print(f"| {name} | {np.mean(a):.3f} | {np.mean(b):.3f} |")
    allss = [v for vs in ph["per_structure"]["self-sorting"].values() for v in vs]
    allff = [v for vs in ph["per_structure"]["fifo"].values() for v in vs]
    print(f"| **all** | **{np.mean(allss):.3f}** | **{np.mean(allff):.3f}** |\n")
    print("| slices from the prompt | self-sorting slice Dice | fifo slice Dice |\n|---|---|---|")
    for bucket in range(6):
        a, b = ph["by_distance"]["self-sorting"][bucket], ph["by_distance"]["fifo"][bucket]
        label = f"{4 * bucket}-{4 * bucket + 3}" if bucket < 5 else "20+"
        if a:
            print(f"| {label} | {np.mean(a):.3f} | {np.mean(b):.3f} |")
    mr = (
        {w: phantom_study(model, args.mr_cases, args.first_seed, w) for w in ("T1", "T2")}
        if args.mr_cases
        else {}
    )
    if mr:
        print("\n| MR phantom structure (self-sorting) | T1 Dice | T2 Dice |\n|---|---|---|")
        for name in STRUCTURES:
            a, b = (mr[w]["per_structure"]["self-sorting"][name] for w in ("T1", "T2"))
            if a and b:
                print(f"| {name} | {np.mean(a):.3f} | {np.mean(b):.3f} |")
        means = [
            np.mean([v for vs in mr[w]["per_structure"]["self-sorting"].values() for v in vs]) for w in mr
        ]
        print(f"| **all** | **{means[0]:.3f}** | **{means[1]:.3f}** |")
    mni = mni_study(model)
    if mni:
        print("\n| real structure (MNI152 T1 template) | Dice |\n|---|---|")
        for k, v in mni.items():
            print(f"| {k} | {v:.3f} |")
    op = one_prompt_study(model)
    print("\n| prompted fundus images (of 12) | Dice on the others |\n|---|---|")
    for k, v in op.items():
        print(f"| {k} | {v:.3f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"phantoms": ph, "mr": mr, "mni": mni, "one_prompt": op}, default=list, indent=1)
        )


if __name__ == "__main__":
    main()
