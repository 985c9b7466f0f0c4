"""``medsam2 segment-batch INPUTS... | --data DATASET --out DIR``: many volumes, resumable.

A thin layer over :func:`medsam2.evaluation.batch.segment_batch`; see docs/evaluate.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.cli.common import CommonOptions, load_cli_model, parse_int, parse_speed, parse_tracker
from medsam2.cli.evaluate import add_model_arguments, file_sha256, parse_list, process_device
from medsam2.errors import ConfigError, PromptError
from medsam2.types import Volume

__all__ = ["register_segment_batch_command", "cmd_segment_batch"]

log = logging.getLogger("medsam2")


def register_segment_batch_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "segment-batch",
        help="segment many volumes from per-case prompts (or prompts simulated from labels), resumably",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="volume files or DICOM folders")
    p.add_argument(
        "--data", metavar="DATASET", help="an nnU-Net dataset instead of INPUTS (prompts simulated)"
    )
    p.add_argument("--prompts", metavar="FILE", help="JSON or CSV prompts per case (docs/evaluate.md)")
    p.add_argument("--out", "-o", "--output", dest="out", required=True, metavar="DIR", help="output folder")
    add_model_arguments(p, memory_help="one policy")
    g = p.add_argument_group("simulated prompts (--data without --prompts)")
    g.add_argument("--protocol", default="single-slice", help="single-slice (default) or every-k")
    g.add_argument("--slice", default="largest", help="largest (default), median-z or center")
    g.add_argument("--prompt", default="box", help="box (default) or point")
    g.add_argument("--box-jitter", default="0", metavar="PX")
    g.add_argument("--every-k", default="5", metavar="K")
    g.add_argument("--classes", metavar="V,...")
    g.add_argument("--cases", metavar="NAME,...")
    r = p.add_argument_group("slicing")
    r.add_argument("--axis", default="auto", help="auto (axial), axial, coronal or sagittal")
    r.add_argument("--window", default="auto", help="intensity window (as for `medsam2 segment`)")
    p.set_defaults(func=cmd_segment_batch)


def _no_masks(path: Path, where: str) -> np.ndarray:
    raise PromptError(f"{where}: mask prompts are not supported by segment-batch; use boxes or points")


def _parse_objects(prompts: dict[str, Any], where: str, volume: Volume) -> list[Any]:
    from medsam2.cli.volume_prompts import objects_from_data

    return objects_from_data(prompts, where, Path("."), False, _no_masks)


def _cases(args: argparse.Namespace, seed: int) -> list[Any]:
    from medsam2.evaluation import EvalConfig
    from medsam2.evaluation.batch_prompts import cases_from_file, simulated_cases

    if args.data and args.inputs:
        raise ConfigError("give INPUTS or --data, not both")
    if args.data and not args.prompts:
        cfg = EvalConfig(
            protocol=args.protocol, slice_rule=args.slice, prompt=args.prompt,
            box_jitter=float(args.box_jitter), every_k=parse_int(args.every_k, "--every-k") or 1,
            classes=tuple(parse_list(args.classes, "--classes", int)) or None,
            cases=tuple(parse_list(args.cases, "--cases")) or None, seed=seed,
        )  # fmt: skip
        return simulated_cases(args.data, cfg, "axial" if args.axis == "auto" else args.axis)
    if not args.prompts:
        raise ConfigError("--prompts FILE is required with INPUTS (or use --data DATASET to simulate them)")
    inputs = [Path(p) for p in args.inputs]
    if args.data:
        from medsam2.data.datasets import read_dataset_json, scan_cases

        inputs = [c.image for c in scan_cases(read_dataset_json(args.data))]
    if not inputs:
        raise ConfigError("no inputs: give INPUT files/folders or --data DATASET")
    return cases_from_file(inputs, Path(args.prompts))


def cmd_segment_batch(args: argparse.Namespace) -> int:
    from medsam2.evaluation import ModelSegmenter
    from medsam2.evaluation.batch import BatchOptions, segment_batch

    seed = parse_int(args.seed, "--seed", 0) or 0
    speed = parse_speed(args.speed)
    tracker = parse_tracker(args.tracker)  # a bad flag fails before any case is read
    memories = parse_list(args.memory, "--memory")
    if len(memories) != 1 or memories[0] not in ("fifo", "self-sorting"):
        raise ConfigError(f"--memory {args.memory}: choose one of fifo or self-sorting")
    cases = _cases(args, seed)
    opts = CommonOptions(
        Path(args.checkpoint) if args.checkpoint else None, args.preset,
        parse_int(args.image_size, "--image-size", 32), args.device, memories[0],
        parse_int(args.memory_size, "--memory-size", 1), seed, Path(args.out), False, False,
    )  # fmt: skip
    if args.progress:
        logging.getLogger("medsam2").setLevel(logging.INFO)
    model, path = load_cli_model(opts, process_device(args.device))
    size = opts.memory_size
    if opts.memory == "fifo" and size is not None and not 2 <= size <= model.config.num_maskmem:
        raise ConfigError(f"--memory-size {size}: fifo takes 2..{model.config.num_maskmem} memory slots")
    options = BatchOptions(
        axis=args.axis,
        window=None if args.window == "auto" else args.window,
        memory=opts.memory,
        memory_options=ModelSegmenter(model, opts.memory, size, seed=seed).policy_options(),
        speed=speed,
        tracker=tracker or model.config.tracker,
    )
    outcome = segment_batch(model, file_sha256(path), cases, Path(args.out), options, _parse_objects)
    if not outcome.merged:
        return 0
    print(
        f"{len(outcome.entries)} cases, {outcome.failed} failed (this process: {outcome.done} segmented, {outcome.skipped} already done)"
    )
    for e in outcome.entries:
        if e.status != "ok":
            print(f"medsam2 segment-batch: {e.case}: {e.error}", file=sys.stderr)
    print(f"wrote {args.out}/manifest.json")
    return 1 if outcome.failed else 0
