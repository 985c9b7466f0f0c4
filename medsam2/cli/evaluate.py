"""``medsam2 evaluate --data DATASET --out RESULTS``: published protocols on a labelled dataset.

A thin layer over :func:`medsam2.evaluation.evaluate_dataset`; see docs/evaluate.md.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from medsam2.cli.common import (
    CommonOptions,
    add_speed_argument,
    add_tracker_argument,
    load_cli_model,
    parse_int,
    parse_speed,
    parse_tracker,
    resolve_device,
)
from medsam2.errors import ConfigError

__all__ = [
    "register_evaluate_command",
    "cmd_evaluate",
    "parse_list",
    "build_segmenters",
    "file_sha256",
    "process_device",
]

log = logging.getLogger("medsam2")


def register_evaluate_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "evaluate",
        help="evaluate models on a labelled nnU-Net dataset with a published protocol (docs/evaluate.md)",
    )
    p.add_argument("--data", required=True, metavar="DATASET", help="nnU-Net raw dataset folder")
    p.add_argument("--out", "-o", "--output", dest="out", required=True, metavar="DIR", help="results folder")
    add_model_arguments(p, memory_help="comma list: every combination with --memory-size is evaluated")
    g = p.add_argument_group("protocol")
    g.add_argument("--protocol", default="single-slice", help="single-slice (default), every-k, iterative, "
                   "legacy-medsam2, one-prompt-2d")  # fmt: skip
    g.add_argument("--slice", default="largest", help="prompted slice: largest (default), median-z, center")
    g.add_argument("--prompt", default="box", help="box (default), point or mask")
    g.add_argument("--box-jitter", default="0", metavar="PX", help="box sides moved out by U(0, PX) pixels")
    g.add_argument("--every-k", default="5", metavar="K", help="every-k: prompt every K slices (default 5)")
    g.add_argument("--clicks", default="5", metavar="N", help="iterative: corrective clicks (default 5)")
    g.add_argument("--noc-cap", default="20", metavar="N", help="iterative: click cap of NoC@85/90 (0: off)")
    g.add_argument("--stream-every", default="0", metavar="N", help="one-prompt-2d: prompt every N images")
    g.add_argument("--axis", default="axial", help="axial (default), coronal, sagittal or all (+ fusion)")
    g.add_argument(
        "--tolerance", default="2", metavar="MM", help="NSD tolerance: MM, or VALUE:MM,... per class"
    )
    g.add_argument("--classes", metavar="V,...", help="label values to evaluate (default all)")
    g.add_argument("--cases", metavar="NAME,...", help="cases to evaluate (default all)")
    g.add_argument(
        "--baselines",
        action="store_true",
        help="also score the trivial baselines: box-fill, otsu-in-box, copy-mask (one-prompt-2d: prompt-copy)",
    )
    g.add_argument("--no-model", action="store_true", help="baselines only (no checkpoint needed)")
    g.add_argument(
        "--save-predictions", action="store_true", help="write label volumes under DIR/predictions"
    )
    p.set_defaults(func=cmd_evaluate)


def add_model_arguments(p: argparse.ArgumentParser, memory_help: str) -> None:
    g = p.add_argument_group("model and memory")
    g.add_argument("--checkpoint", metavar="FILE", help="weights (default: the embedded model)")
    g.add_argument("--preset", metavar="NAME", help="force the architecture")
    g.add_argument("--image-size", metavar="PX", help="model input size (default: the checkpoint's)")
    g.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda[:N] or mps")
    g.add_argument(
        "--memory", default="self-sorting", metavar="P[,P]", help=f"fifo, self-sorting; {memory_help}"
    )
    g.add_argument(
        "--memory-size",
        metavar="N[,N]",
        help="self-sorting: bank capacity (default 16); fifo: memory slots incl. the prompted one "
        "(at most the model's, 7 for SAM 2)",
    )
    g.add_argument("--seed", default="0", metavar="N", help="prompt simulation and bank sampling seed")
    add_tracker_argument(g)
    add_speed_argument(g)
    g.add_argument("--progress", action="store_true", help="log each case")


def parse_list(value: str | None, flag: str, kind: type = str) -> list[Any]:
    if value is None or str(value).strip() == "":
        return []
    out = []
    for part in str(value).split(","):
        try:
            out.append(kind(part.strip()))
        except ValueError:
            raise ConfigError(f"{flag} {value}: {part.strip()!r} is not a valid {kind.__name__}") from None
    return out


def _float(value: str, flag: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{flag} {value}: expected a number") from None


def _tolerances(text: str) -> tuple[float, dict[int, float]]:
    if ":" not in text:
        return _float(text, "--tolerance"), {}
    per: dict[int, float] = {}
    for part in text.split(","):
        value, _, mm = part.partition(":")
        per[int(parse_int(value, "--tolerance") or 0)] = _float(mm, "--tolerance")
    return 2.0, per


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def process_device(name: str) -> str:
    local = os.environ.get("LOCAL_RANK")
    dev = resolve_device(name)
    return f"cuda:{local}" if dev == "cuda" and local is not None and name == "auto" else dev


def build_segmenters(
    args: argparse.Namespace, seed: int, unordered: bool
) -> tuple[list[Any], dict[str, Any]]:
    """Models (every memory x size) and baselines the flags ask for, plus metadata for summaries."""
    from medsam2.evaluation import BASELINES, BaselineSegmenter, ModelSegmenter
    from medsam2.evaluation.segmenters import BASELINES_2D

    memories = parse_list(args.memory, "--memory") or ["self-sorting"]
    sizes: list[int | None] = list(parse_list(args.memory_size, "--memory-size", int)) or [None]
    for m in memories:
        if m not in ("fifo", "self-sorting"):
            raise ConfigError(f"--memory {m}: choose fifo or self-sorting")
    speed = parse_speed(getattr(args, "speed", None))
    trackers = [parse_tracker(t) for t in parse_list(getattr(args, "tracker", None), "--tracker")] or [None]
    if unordered:
        trackers = [None]  # One-Prompt sets are unrelated images: always the memory
    segs: list[Any] = []
    meta: dict[str, Any] = {"skipped_models": []}
    if speed != "exact":
        meta["speed"] = speed
    if not args.no_model:
        opts = CommonOptions(
            Path(args.checkpoint) if args.checkpoint else None, args.preset,
            parse_int(args.image_size, "--image-size", 32), args.device, memories[0], None, seed,
            Path("."), False, False,
        )  # fmt: skip
        model, path = load_cli_model(
            opts, process_device(args.device), task="one-prompt" if unordered else "volume"
        )
        meta.update(checkpoint=str(path), model_id=file_sha256(path), preset=model.config.name)
        for t in dict.fromkeys(t or model.config.tracker for t in trackers):
            for m in memories:
                for s in sizes:
                    if m == "fifo" and s is not None and not 2 <= s <= model.config.num_maskmem:
                        meta["skipped_models"].append(
                            f"fifo/{s}: fifo takes 2..{model.config.num_maskmem} slots"
                        )
                        continue
                    segs.append(
                        ModelSegmenter(model, m, s, seed=seed, unordered=unordered, speed=speed, tracker=t)
                    )
    if args.baselines or args.no_model:
        segs += [BaselineSegmenter(k) for k in (BASELINES_2D if unordered else BASELINES)]
    if not segs:
        raise ConfigError("nothing to evaluate: every --memory/--memory-size combination was skipped")
    return segs, meta


def cmd_evaluate(args: argparse.Namespace) -> int:
    from medsam2.evaluation import AXES, EvalConfig, evaluate_dataset

    seed = parse_int(args.seed, "--seed", 0) or 0
    tol, per = _tolerances(args.tolerance)
    axes = AXES if args.axis == "all" else tuple(parse_list(args.axis, "--axis"))
    cfg = EvalConfig(
        protocol=args.protocol, slice_rule=args.slice, prompt=args.prompt,
        box_jitter=_float(args.box_jitter, "--box-jitter"), every_k=parse_int(args.every_k, "--every-k") or 0,
        clicks=parse_int(args.clicks, "--clicks") or 0, noc_cap=parse_int(args.noc_cap, "--noc-cap") or 0,
        stream_every=parse_int(args.stream_every, "--stream-every") or 0, axes=axes, tolerance_mm=tol,
        tolerances=per, classes=tuple(parse_list(args.classes, "--classes", int)) or None,
        cases=tuple(parse_list(args.cases, "--cases")) or None, seed=seed, save_predictions=args.save_predictions,
    )  # fmt: skip
    if args.progress:
        logging.getLogger("medsam2").setLevel(logging.INFO)
    segs, meta = build_segmenters(args, seed, unordered=cfg.protocol == "one-prompt-2d")
    outcome = evaluate_dataset(args.data, Path(args.out), segs, cfg, meta)
    if not outcome.merged:
        return 0
    for e in outcome.summary["per_model"]:
        d = e["dice"]["mean"]
        print(
            f"{e['model']:>18} {e['axis']:>8}: Dice {d if d is None else round(d, 3)} over {e['n']} objects"
        )
    if outcome.failed:
        print(
            f"medsam2 evaluate: {len(outcome.failed)} case(s) failed: {', '.join(outcome.failed)}",
            file=sys.stderr,
        )
    print(f"wrote {outcome.out}/per_case.csv, summary.json and report.md")
    return 1 if outcome.failed else 0
