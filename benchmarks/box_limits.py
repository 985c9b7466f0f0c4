"""What limits the answer on the boxed slice: the decoder's grid, the box, or the model?

For each structure, on its largest slice with the tight box of its truth (the prompt
``benchmarks/quality.py`` gives), through ``VideoPredictor`` as users run it:

* ``ceiling``: the truth itself sent through the decoder's low-resolution grid (the frame
  resized to the model's input, averaged down to its S/4 x S/4 logits, thresholded at 0.5 and
  upsampled back as the engine upsamples logits): the best Dice any answer can reach at that
  resolution. Far above the model: resolution is not what limits it.
* ``model`` and ``otsu-in-box``: Dice, with the pixels each adds (``FP``) and misses (``FN``).
  On a structure that shares its box with a larger one (grey or white matter in the brain's
  box) both answer the larger one: large FP, FN near 0.
* ``box IoU``, for a structure inside another (MNI152 grey and white matter in the whole
  brain): its box against the enclosing structure's box on the same slice, and how many of the
  enclosing structure's pixels its box holds. A box that is the enclosing one's asks for it.
* ``click 1..3``: Dice after 1, 2, 3 corrective clicks on that slice, each where a user clicks
  (the most interior point of the largest error region, positive on a miss, negative on a
  spill; ``tests/correction_helpers.py``, as ``benchmarks/corrections.py``): whether the
  model can be told which of the two was meant; ``obeyed``: the share of those clicks whose
  own pixel took the click's side (in, for a positive click; out, for a negative one).

Sets: ``mni`` (the held-out MNI152 structures on three planes: an analysis of the report's
figures, never used to choose anything) and ``ct``, ``t1``, ``shapes`` (validation seeds 8000
and 6000, as ``select_embedded.py``) and ``parts`` (24 generated parts of generator seed 5001,
a validation set: a label whose box holds other labels, whose box alone cannot say it) and
``wholes`` (24 generated compound objects filling at least 60 % of their box, generator seed
5002, a validation set: what the whole brain is to its box).

    python benchmarks/box_limits.py [--checkpoint CKPT] [--sets mni,ct,shapes] [--clicks 3]
        [--image-size 512] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from quality import load_models
from quality_cases import Case3D, mni_cases, part_cases, phantom_cases, shape_cases, whole_cases

from medsam2.engine.video_predictor import VideoPredictor
from medsam2.evaluation.baselines import otsu_in_box
from medsam2.evaluation.metrics import dice_np
from medsam2.model.sam2_model import Sam2Model
from medsam2.preprocessing import normalize_volume, slice_geometry, volume_to_frames
from medsam2.preprocessing.resize import upsample_logits
from medsam2.types import Volume
from medsam2.volume import infer_modality

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the click rule, shared
from correction_helpers import tight_box, user_click  # noqa: E402

SETS = ("mni", "ct", "t1", "shapes", "parts", "wholes")


def grid_ceiling(truth: np.ndarray, image_size: int) -> float:
    """Dice of ``truth`` (H, W) after the decoder's grid: resized to ``image_size``, averaged to
    ``image_size // 4``, thresholded at 0.5 and upsampled back to (H, W) as the engine's logits are."""
    t = torch.from_numpy(truth.astype(np.float32))[None, None]
    x = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    low = F.adaptive_avg_pool2d(x, image_size // 4) - 0.5
    back = upsample_logits(low, truth.shape)[0, 0] > 0
    return dice_np(back.numpy(), truth)


def errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"dice": dice_np(pred, truth), "FP": int((pred & ~truth).sum()), "FN": int((truth & ~pred).sum())}


def cases(names: list[str]) -> Iterator[tuple[Case3D, np.ndarray | None]]:
    """(case, the truth of the structure that encloses it, or None): MNI152's grey and white
    matter lie in the whole brain."""
    for name in names:
        if name == "mni":
            brain: np.ndarray | None = None
            for case in mni_cases(["axial", "coronal", "sagittal"]):  # the whole brain comes first
                brain = case.truth if case.structure == "whole brain" else brain
                yield case, None if case.structure == "whole brain" else brain
        elif name in ("ct", "t1"):
            yield from ((c, None) for c in phantom_cases(name.upper(), 1, 8000))
        elif name == "shapes":
            yield from ((c, None) for c in shape_cases(24, 6000))
        elif name == "parts":
            yield from ((c, None) for c in part_cases(24))
        elif name == "wholes":
            yield from ((c, None) for c in whole_cases(24))
        else:
            raise SystemExit(f"--sets: unknown set {name!r}; choose from {', '.join(SETS)}")


def box_iou(a: list[float], b: list[float]) -> float:
    """IoU of two x0, y0, x1, y1 pixel boxes, corners inclusive."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return w * h / (area - w * h)


def run_case(
    case: Case3D, model: Sam2Model, clicks: int, enclosing: np.ndarray | None = None
) -> dict[str, Any]:
    """One structure's row: the figures of the module docstring on its largest slice; with the
    ``enclosing`` structure's truth, how alike the two boxes are there (``box IoU``) and how
    many of its pixels the structure's box holds (``enclosing pixels``)."""
    volume = Volume(**{**case.volume.__dict__, "modality": infer_modality(case.volume)})
    geom = slice_geometry(volume, case.plane)
    frames = volume_to_frames(normalize_volume(volume, None), geom)
    truth = volume_to_frames(case.truth, geom)
    k = int(np.argmax(truth.sum(axis=(1, 2))))
    box = tight_box(truth[k])
    vp = VideoPredictor(model)
    vp.start(frames[k : k + 1])  # the boxed slice alone: nothing is propagated
    pred = vp.add_prompt(0, 1, box=box).masks[0].cpu().numpy()
    row: dict[str, Any] = {
        "study": case.study,
        "structure": case.structure if case.plane == "auto" else f"{case.structure} ({case.plane})",
        "pixels": int(truth[k].sum()),
        "ceiling": grid_ceiling(truth[k], model.image_size),
        "model": errors(pred, truth[k]),
        "otsu": errors(otsu_in_box(frames[k], (box[0], box[1], box[2], box[3])), truth[k]),
        "clicks": [],
    }
    if enclosing is not None:
        outer = volume_to_frames(enclosing, geom)[k]
        x0, y0, x1, y1 = (int(v) for v in box)
        row["box IoU"] = box_iou(box, tight_box(outer))
        row["enclosing pixels"] = int(outer[y0 : y1 + 1, x0 : x1 + 1].sum())
    row["obeyed"] = []  # per click made: did its own pixel take its side
    for _ in range(clicks):
        click = user_click(pred, truth[k])
        if click is not None:
            pred = vp.add_prompt(0, 1, points=[click[0]], labels=[click[1]]).masks[0].cpu().numpy()
            (x, y), label = click
            row["obeyed"].append(bool(pred[int(y), int(x)]) == bool(label))
        row["clicks"].append(dice_np(pred, truth[k]))
    return row


def table(rows: list[dict[str, Any]], clicks: int) -> list[str]:
    """Markdown: one line per structure, then the mean of each study."""
    heads = ["ceiling", "model", "FP", "FN", "otsu-in-box", "FP", "FN"]
    heads += [f"click {i + 1}" for i in range(clicks)] + (["obeyed"] if clicks else [])
    out = ["| study | structure | pixels | " + " | ".join(heads) + " |", "|---" * (3 + len(heads)) + "|"]

    def cells(found: list[dict[str, Any]]) -> list[str]:
        def m(get: Any) -> float:
            return float(np.mean([get(r) for r in found]))

        vals = [f"{m(lambda r: r['ceiling']):.3f}"]
        for who in ("model", "otsu"):
            vals += [f"{m(lambda r, w=who: r[w]['dice']):.3f}"]
            vals += [f"{m(lambda r, w=who, e=e: r[w][e]):.0f}" for e in ("FP", "FN")]
        vals += [f"{m(lambda r, i=i: r['clicks'][i]):.3f}" for i in range(clicks)]
        made = [o for r in found for o in r["obeyed"]]  # the share of all clicks made
        return vals + ([f"{np.mean(made):.2f}" if made else "—"] if clicks else [])

    for study in dict.fromkeys(r["study"] for r in rows):
        mine = [r for r in rows if r["study"] == study]
        for r in mine:
            out.append(f"| {study} | {r['structure']} | {r['pixels']} | " + " | ".join(cells([r])) + " |")
        if len(mine) > 1:
            pixels = float(np.mean([r["pixels"] for r in mine]))
            out.append(
                f"| {study} | **mean of {len(mine)}** | {pixels:.0f} | " + " | ".join(cells(mine)) + " |"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="default: the embedded model")
    ap.add_argument("--sets", default="mni,ct,shapes", help=f"comma list of {', '.join(SETS)}")
    ap.add_argument("--clicks", type=int, default=3)
    ap.add_argument("--image-size", type=int, help="run the model at this input size (default: its own)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models, files = load_models([args.checkpoint] if args.checkpoint else None)
    ((label, model),) = models.items()
    if args.image_size:
        from medsam2 import load_model

        model = load_model(files[label], image_size=args.image_size)
    rows = [run_case(c, model, args.clicks, outer) for c, outer in cases(args.sets.split(","))]
    print(f"`python benchmarks/box_limits.py {' '.join(sys.argv[1:])}` ({label}: {files[label]})\n")
    print("\n".join(table(rows, args.clicks)))
    inside = [r for r in rows if "box IoU" in r]
    if inside:
        print(
            "\n| structure | pixels | its box's IoU with the enclosing structure's box | enclosing pixels in its box |"
        )
        print("|---|---|---|---|")
        for r in inside:
            print(f"| {r['structure']} | {r['pixels']} | {r['box IoU']:.3f} | {r['enclosing pixels']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
