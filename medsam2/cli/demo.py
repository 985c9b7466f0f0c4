"""``medsam2 demo``: the main job, offline, on a bundled sample and the embedded model.

Generates a held-out CT-like phantom (deterministic; not used in training), prompts one box on
the middle slice of a structure, propagates both ways with the self-sorting bank, writes the
mask in the input's geometry with overlays and a GIF, and prints Dice against the truth.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medsam2.cli.common import (
    add_common_arguments,
    load_cli_model,
    memory_options,
    parse_common,
    resolve_device,
)
from medsam2.errors import ConfigError

__all__ = ["register_demo_command", "cmd_demo", "DEMO_SEED"]

DEMO_SEED = 9001  # held out: the embedded model's training uses seeds < 1000


def register_demo_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="segment a bundled sample volume from one box (offline, embedded model)")
    p.add_argument(
        "--structure",
        default="liver",
        help="liver (default), spleen, kidney_right, kidney_left, aorta (docs/embedded_model.md has each "
        "one's measured Dice)",
    )
    p.add_argument("--sample-seed", default=str(DEMO_SEED), metavar="N", help="which phantom to generate")
    p.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    add_common_arguments(p, default_memory="self-sorting", output_help="output folder (default out/demo)")
    p.set_defaults(func=cmd_demo, output="out/demo")


def _middle_box(label: np.ndarray, value: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Tight box of `value` on its largest axial slice, as two voxel corners on that slice."""
    mask = label == value
    areas = mask.sum(axis=(0, 1))
    k = int(np.argmax(areas))
    ii, jj = np.nonzero(mask[:, :, k])
    return (int(ii.min()), int(jj.min()), k), (int(ii.max()), int(jj.max()), k)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    inter = float(np.logical_and(a, b).sum())
    total = float(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * inter / total


def cmd_demo(args: argparse.Namespace) -> int:
    from medsam2.data.phantoms import PHANTOM_LABELS, ct_phantom, write_phantom
    from medsam2.io.writers import write_mask
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    opts = parse_common(args)
    names = {v: k for k, v in PHANTOM_LABELS.items()}
    if args.structure not in names:
        raise ConfigError(f"--structure {args.structure}: choose one of {', '.join(names)}")
    device = resolve_device(opts.device)
    model, ckpt = load_cli_model(opts, device)
    out = opts.output
    out.mkdir(parents=True, exist_ok=True)
    phantom = ct_phantom(seed=int(args.sample_seed))
    write_phantom(phantom, out / "ct.nii.gz", out / "truth.nii.gz")
    value = names[args.structure]
    c0, c1 = _middle_box(phantom.label, value)
    t0 = time.perf_counter()
    result = segment_volume(
        model,
        phantom.volume,
        [VolumeObject(1, args.structure, boxes=(VoxelBox(c0, c1),))],
        memory=opts.memory,
        memory_options=memory_options(opts, model.config.num_maskmem),
        progress=opts.progress,
    )
    seconds = time.perf_counter() - t0
    mask_path = write_mask(result.labels, phantom.volume, out / f"{args.structure}.nii.gz")
    truth = phantom.label == value
    score = dice(result.labels == 1, truth)
    _extras(out, phantom, result, c0[2], not args.no_gif)
    report = {
        "structure": args.structure,
        "dice": score,
        "box": [list(c0), list(c1)],
        "seconds": seconds,
        "checkpoint": str(ckpt),
        "memory": opts.memory,
        "objects": [o.to_json() for o in result.objects],
    }
    (out / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{args.structure}: Dice {score:.3f} against the ground truth (box on slice {c0[2]}, "
        f"{phantom.volume.shape[2]} slices in {seconds:.1f} s)"
    )
    print(f"wrote {mask_path}, overlays and {'a GIF ' if not args.no_gif else ''}in {out}")
    return 0


def _extras(out: Path, phantom: object, result: object, prompt_slice: int, gif: bool) -> None:
    from medsam2.outputs.gif import GifRecorder
    from medsam2.outputs.overlay import render_overlay, write_overlay_png
    from medsam2.preprocessing import normalize_volume, volume_to_frames

    geom = result.geometry  # type: ignore[attr-defined]
    grey = volume_to_frames(normalize_volume(phantom.volume), geom)  # type: ignore[attr-defined]
    labels = volume_to_frames(result.labels, geom)  # type: ignore[attr-defined]
    (out / "overlays").mkdir(exist_ok=True)
    n = geom.num_frames
    for t in sorted({prompt_slice, n // 4, n // 2, (3 * n) // 4}):
        write_overlay_png(out / "overlays" / f"slice_{t:04d}.png", grey[t], labels[t])
    if gif:
        rec = GifRecorder()
        for t in range(n):
            rec.add(t, render_overlay(grey[t], labels[t]))
        rec.write(out / "propagation.gif")
