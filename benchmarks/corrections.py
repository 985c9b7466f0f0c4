"""Corrective clicks after propagation: does one click on a wrong slice make it better?

The annotator's loop (``medsam2 serve``): one box on a structure's largest slice, propagate, then
one click on each of the ``--slices`` worst propagated slices (lowest Dice where the structure is
present), then propagate again. Each click goes where a user would put it: at the most interior
point of the largest error region, positive on missed structure, negative on a spill. Every step
runs through ``VideoPredictor`` (``add_prompt``, ``propagate``), the path the browser app takes.

Per tracker (``--tracker``, comma list: memory, box-chain, auto = the model's own), next to
what a click must beat:

* ``slice, no click``: the slices' Dice as propagated (a click that does worse than nothing harms);
* ``slice, click``: the same slices right after their click;
* ``slice, new box``: the same slices boxed again instead (the tight box of the truth), what a
  user can do instead of clicking;
* ``3D before`` / ``3D after``: the structure's Dice after the first propagation and after the
  clicks and a second propagation.

    python benchmarks/corrections.py [--checkpoint CKPT] [--tracker auto,memory] [--cases 2]
        [--mr-cases 1] [--first-seed 9000] [--slices 3] [--threads 1] [--json out.json]

Validation seeds (for choices): ``--first-seed 8000`` (CT) with ``--mr-first-seed 8100``; the
report uses the held-out 9000+ (docs/embedded_model.md, "Corrections and stage 7h").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality import load_models
from quality_cases import Case3D, phantom_cases

from medsam2.engine.video_predictor import VideoPredictor
from medsam2.evaluation.metrics import dice_np
from medsam2.model.sam2_model import Sam2Model
from medsam2.preprocessing import normalize_volume, slice_geometry, volume_to_frames
from medsam2.types import Volume
from medsam2.volume import infer_modality

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the clicks, shared
from correction_helpers import tight_box, user_click  # noqa: E402

COLUMNS = ("slice, no click", "slice, click", "slice, new box", "3D before", "3D after")


def _propagate(vp: VideoPredictor) -> dict[int, np.ndarray]:
    return {o.frame_idx: o.masks[0].cpu().numpy() for o in vp.propagate()}


def run_case(case: Case3D, model: Sam2Model, tracker: str, slices: int) -> dict[str, Any] | None:
    """One structure: the scores of the module docstring, averaged over its corrected slices."""
    volume = Volume(**{**case.volume.__dict__, "modality": infer_modality(case.volume)})
    geom = slice_geometry(volume, case.plane)
    frames = volume_to_frames(normalize_volume(volume, None), geom)
    truth = volume_to_frames(case.truth, geom)
    k = int(np.argmax(truth.sum(axis=(1, 2))))
    chosen_tracker = None if tracker == "auto" else tracker  # None: the model's own
    vp = VideoPredictor(model, tracker=chosen_tracker)
    vp.start(frames)
    vp.add_prompt(k, 1, box=tight_box(truth[k]))
    first = _propagate(vp)
    before = np.stack([first[t] for t in range(len(truth))])
    ranked = sorted((dice_np(first[t], truth[t]), t) for t in first if t != k and truth[t].any())
    chosen = [(d, t, c) for d, t in ranked[:slices] if (c := user_click(first[t], truth[t])) is not None]
    if not chosen:
        return None
    clicked = []
    for _, t, (point, label) in chosen:
        out = vp.add_prompt(t, 1, points=[point], labels=[label])
        clicked.append(dice_np(out.masks[0].cpu().numpy(), truth[t]))
    second = _propagate(vp)
    after = np.stack([second[t] for t in range(len(truth))])
    boxed = []
    for _, t, _ in chosen:  # a fresh predictor: the same slice boxed again, from nothing else
        fresh = VideoPredictor(model, tracker=chosen_tracker)
        fresh.start(frames)
        boxed.append(
            dice_np(fresh.add_prompt(t, 1, box=tight_box(truth[t])).masks[0].cpu().numpy(), truth[t])
        )
    return {
        "study": case.study,
        "case": case.case,
        "structure": case.structure,
        "slices": [t for _, t, _ in chosen],
        "slice, no click": float(np.mean([d for d, _, _ in chosen])),
        "slice, click": float(np.mean(clicked)),
        "slice, new box": float(np.mean(boxed)),
        "3D before": dice_np(before, truth),
        "3D after": dice_np(after, truth),
    }


def table(rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown: one line per (method, study), the mean of each column over its structures."""
    lines = [
        "| method | study | structures | " + " | ".join(COLUMNS) + " |",
        "|---" * (3 + len(COLUMNS)) + "|",
    ]
    for method, found in rows.items():
        for study in dict.fromkeys(r["study"] for r in found):
            mine = [r for r in found if r["study"] == study]
            cells = [f"{np.mean([r[c] for r in mine]):.3f}" for c in COLUMNS]
            lines.append(f"| {method} | {study} | {len(mine)} | " + " | ".join(cells) + " |")
        cells = [f"{np.mean([r[c] for r in found]):.3f}" for c in COLUMNS]
        lines.append(f"| {method} | **all** | {len(found)} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", help="repeat to compare; default: the embedded model")
    ap.add_argument("--tracker", default="auto", help="comma list of auto, memory, box-chain")
    ap.add_argument("--cases", type=int, default=2, help="CT phantoms")
    ap.add_argument("--mr-cases", type=int, default=1, help="MR phantoms per weighting (T1, T2)")
    ap.add_argument("--first-seed", type=int, default=9000, help="the CT phantoms' first seed")
    ap.add_argument("--mr-first-seed", type=int, help="the MR phantoms' first seed (default: --first-seed)")
    ap.add_argument("--slices", type=int, default=3, help="slices clicked per structure")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--json")
    args = ap.parse_args()
    trackers = args.tracker.split(",")
    if not set(trackers) <= {"auto", "memory", "box-chain"}:
        ap.error(f"--tracker: unknown {sorted(set(trackers) - {'auto', 'memory', 'box-chain'})}")
    torch.set_num_threads(args.threads)
    models, _ = load_models(args.checkpoint)
    mr_seed = args.first_seed if args.mr_first_seed is None else args.mr_first_seed
    cases = [
        *phantom_cases("CT", args.cases, args.first_seed),
        *phantom_cases("T1", args.mr_cases, mr_seed),
        *phantom_cases("T2", args.mr_cases, mr_seed),
    ]
    rows: dict[str, list[dict[str, Any]]] = {}
    with torch.no_grad():
        for label, model in models.items():
            for tracker in trackers:
                name = f"{label} ({tracker if tracker != 'auto' else model.config.tracker})"
                found = [r for c in cases if (r := run_case(c, model, tracker, args.slices)) is not None]
                rows[name] = found
    print("\n".join(table(rows)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
