"""Segmentation quality of checkpoints (default: the embedded model), next to honest baselines.

Every model Dice stands beside three baselines that get the very same box on the same cases
(`medsam2.evaluation.baselines`): box-fill, Otsu-in-box (largest component), and for 3D the true
prompted-slice mask copied over the structure's true slice range. 3D scores are split into the
prompted slice and the propagated slices, and shown against the distance from the prompt
(benchmarks/quality_cases.py). Studies (``--only``, comma-separated):

* ``shapes``: ``--shapes`` generated cases of one disc, ellipse, rectangle or blob, bright or
  dark, 3-35 % of the field in radius (``medsam2.data.synth.shapes``, generator seed
  ``--first-seed``), one box on the largest slice: SAM's most basic job, by size and polarity.
* ``ct``, ``mr`` (``phantoms`` = both): held-out phantoms, seeds ``--first-seed``+ (never in
  training; choose between candidate models with another ``--first-seed``, e.g. 8000, than the
  one you report), the five organs of each, one box on each organ's largest axial slice.
* ``mni``: nilearn's real MNI152 T1 template, whole brain / grey matter / white matter, one box on
  the largest slice of each ``--planes`` plane (axial, coronal, sagittal).
* ``liver``: pydicom-data's liver SEG with its CT, when that CT ships (it does not: reported).
* ``oneprompt``: One-Prompt 2D on stardist's real nuclei and the synthetic fundus set
  (benchmarks/quality_real.py), Dice vs the number of prompted images, next to prompt-copy.
* ``oneprompt-gen``: the same study on generated sets only, the fundus set and a fluorescent-cell
  set (the nuclei's stand-in) at seed ``--first-seed``: run it at a validation seed (8000) to
  choose checkpoints without looking at the held-out real sets.

    python benchmarks/quality.py [--checkpoint A.safetensors [--checkpoint B.pt ...]] [--cases 6]
        [--mr-cases 3] [--shapes 24] [--first-seed 9000] [--memory self-sorting,fifo] [--planes axial,coronal,sagittal]
        [--only shapes,ct,mr,mni,liver,oneprompt,oneprompt-gen] [--json out.json] [--markdown out.md]
Prints markdown tables (``--markdown`` also writes them, under the command line).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality_cases import BINS, mni_cases, phantom_cases, run_case, shape_cases
from quality_real import COUNTS, cells_images, fundus_images, liver_seg_check, nuclei_set, one_prompt_study

from medsam2.evaluation.baselines import BASELINES_3D
from medsam2.model.sam2_model import Sam2Model

STUDIES = ("shapes", "ct", "mr", "mni", "liver", "oneprompt", "oneprompt-gen")
# the default report; oneprompt-gen (the generated twins) is for choosing checkpoints
REPORT = tuple(s for s in STUDIES if s != "oneprompt-gen")
MEASURES = (("dice", "3D"), ("prompted", "prompted slice"), ("propagated", "propagated"))


def load_models(paths: list[str] | None) -> tuple[dict[str, Sam2Model], dict[str, str]]:
    """Models by table label (the file's stem, or ``embedded``) and the file each came from."""
    from medsam2 import load_model
    from medsam2.model.embedded import checkpoint_path

    if not paths:
        default = checkpoint_path()
        if default is None:
            raise SystemExit("no --checkpoint and no embedded model")
        return {"embedded": load_model(default)}, {"embedded": str(default)}
    models, files = {}, {}
    for n, path in enumerate(paths):
        label = Path(path).stem if Path(path).stem not in models else f"{Path(path).stem}#{n + 1}"
        models[label], files[label] = load_model(path), str(path)
    return models, files


def mean(values: Iterable[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def fmt(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3f}"


def methods_of(rows: list[dict[str, Any]]) -> list[str]:
    models = list(dict.fromkeys(r["method"] for r in rows if r["method"] not in BASELINES_3D))
    return models + [b for b in BASELINES_3D if any(r["method"] == b for r in rows)]


def key(row: dict[str, Any]) -> str:
    return (
        row["structure"]
        if row["study"].endswith(("phantoms", "shapes"))
        else f"{row['structure']} ({row['plane']})"
    )


def study_table(rows: list[dict[str, Any]]) -> list[str]:
    """Mean per structure and measure (3D / prompted slice / propagated), one column per method."""
    methods = methods_of(rows)
    out = [f"| structure | Dice | {' | '.join(methods)} |", "|---|---|" + "---|" * len(methods)]
    groups = list(dict.fromkeys(key(r) for r in rows)) + ["**all**"]
    for g in groups:
        for field, label in MEASURES:
            cells = [
                fmt(mean(r[field] for r in rows if r["method"] == m and g in (key(r), "**all**")))
                for m in methods
            ]
            out.append(f"| {g} | {label} | {' | '.join(cells)} |")
    return out


def distance_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per-slice Dice by distance from the prompted slice, pooled over the study's structures."""
    methods = methods_of(rows)
    out = [f"| slices from the prompt | {' | '.join(methods)} |", "|---|" + "---|" * len(methods)]
    for _, _, name in BINS:
        cells = [
            mean(v for r in rows if r["method"] == m for v in r["by_distance"].get(name, [])) for m in methods
        ]
        if not all(math.isnan(c) for c in cells):
            out.append(f"| {name} | {' | '.join(fmt(c) for c in cells)} |")
    return out


def run_3d(cases: Iterable[Any], models: dict[str, Sam2Model], memories: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for case in cases:
        start = time.perf_counter()
        rows += run_case(case, models, memories)
        print(f"  {case.case} {case.structure}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return rows


def one_prompt_table(study: dict[str, Any]) -> list[str]:
    methods = list(study["dice"])
    scored = len(study["scored"])
    out = [
        f"| prompted images (of {study['images']}) | {' | '.join(methods)} |",
        "|---|" + "---|" * len(methods),
    ]
    for k in COUNTS:
        out.append(f"| {k} | {' | '.join(fmt(mean(study['dice'][m][k])) for m in methods)} |")
    return out + [
        f"\nDice on the same {scored} unprompted images for every count; prompt: {study['prompt']}."
    ]


def run_one_prompt(models: dict[str, Sam2Model]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nuclei = nuclei_set()
    if nuclei is not None:
        out["stardist nuclei (real, 16 tiles of 128 px)"] = one_prompt_study(models, *nuclei, "mask")
        # the box of all nuclei covers most of a tile, yet it is the prompt users give (and
        # the one medsam2 evaluate simulates by default)
        out["stardist nuclei, box prompt"] = one_prompt_study(models, *nuclei, "box")
    out["fundus optic disc (synthetic, seeds 9000+)"] = one_prompt_study(models, *fundus_images(), "box")
    return out


def run_one_prompt_generated(models: dict[str, Sam2Model], seed: int) -> dict[str, Any]:
    """The generated twins of :func:`run_one_prompt`, at ``seed`` (for choosing checkpoints)."""
    cells = cells_images(seed=seed)
    return {
        f"cells (synthetic, seed {seed}), mask prompt": one_prompt_study(models, *cells, "mask"),
        f"cells (synthetic, seed {seed}), box prompt": one_prompt_study(models, *cells, "box"),
        f"fundus optic disc (synthetic, seed {seed})": one_prompt_study(
            models, *fundus_images(seed=seed), "box"
        ),
    }


def clean(obj: Any) -> Any:
    """JSON-safe: NaN -> null, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj.item() if isinstance(obj, np.generic) else obj


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", help="repeat to compare; default: the embedded model")
    ap.add_argument("--cases", type=int, default=6, help="CT phantoms")
    ap.add_argument("--mr-cases", type=int, default=3, help="MR phantoms per weighting (T1, T2)")
    ap.add_argument("--shapes", type=int, default=24, help="basic-shape cases")
    ap.add_argument(
        "--first-seed", type=int, default=9000, help="phantom seeds and the shapes' generator seed"
    )
    ap.add_argument(
        "--memory",
        default="self-sorting,fifo",
        help="3D memory policies, comma-separated; box-chain: box chaining instead of the memory",
    )
    ap.add_argument("--planes", default="axial,coronal,sagittal", help="MNI152 planes")
    ap.add_argument("--only", default=",".join(REPORT), help=f"studies among {','.join(STUDIES)},phantoms")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    args.only = set(args.only.replace("phantoms", "ct,mr").split(","))
    if not args.only <= set(STUDIES):
        ap.error(f"--only: unknown {sorted(args.only - set(STUDIES))}")
    return args


def run_studies(args: argparse.Namespace, models: dict[str, Sam2Model]) -> dict[str, Any]:
    memories = args.memory.split(",")
    results: dict[str, Any] = {"3d": []}
    if "shapes" in args.only:
        results["3d"] += run_3d(shape_cases(args.shapes, args.first_seed), models, memories)
    if "ct" in args.only:
        results["3d"] += run_3d(phantom_cases("CT", args.cases, args.first_seed), models, memories)
    if "mr" in args.only:
        for w in ("T1", "T2"):
            results["3d"] += run_3d(phantom_cases(w, args.mr_cases, args.first_seed), models, memories)
    if "mni" in args.only:
        results["3d"] += run_3d(mni_cases(args.planes.split(",")), models, memories)
    if "liver" in args.only:
        results["liver"] = liver_seg_check()
    if "oneprompt" in args.only:
        results["one_prompt"] = run_one_prompt(models)
    if "oneprompt-gen" in args.only:
        results.setdefault("one_prompt", {}).update(run_one_prompt_generated(models, args.first_seed))
    return results


def report(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    rows = results["3d"]
    for study in dict.fromkeys(r["study"] for r in rows):
        sub = [r for r in rows if r["study"] == study]
        cases = len({r["case"] for r in sub})
        lines += [f"\n### {study}: {cases} case(s), one box per structure\n", *study_table(sub)]
        lines += ["", *distance_table(sub)]
    if "liver" in results:
        lines += ["\n### pydicom-data liver SEG\n", results["liver"]["note"] + "."]
    for name, study in results.get("one_prompt", {}).items():
        lines += [f"\n### One-Prompt 2D: {name}\n", *one_prompt_table(study)]
    return lines


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    models, files = load_models(args.checkpoint)
    results = run_studies(args, models)
    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    head = [f"`{command}`", "", *(f"- `{k}`: {v}" for k, v in files.items())]
    head.append(f"- phantom seeds {args.first_seed}+; {time.perf_counter() - start:.0f} s on this machine")
    lines = head + report(results)
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    if args.json:
        payload = {
            "command": command,
            "checkpoints": files,
            "args": {**vars(args), "only": sorted(args.only)},
        }
        Path(args.json).write_text(json.dumps(clean({**payload, **results}), indent=1))


if __name__ == "__main__":
    main()
