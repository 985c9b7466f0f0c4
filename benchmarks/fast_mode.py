"""``--speed fast`` vs ``exact`` vs the reference SAM 2: time per frame and mask IoU against exact.

Three cases, each run in its own subprocess, runs interleaved for ``--rounds`` rounds (best
time kept), masks saved by every run and compared with the ``exact`` run of the same case:

* ``ellipse``: benchmarks/propagate.py's moving ellipse (640 x 480 JPEGs), box on frame 0,
  forward, fifo (or ``--memory self-sorting:N``: capacity and top-k N; the reference row stays
  SAM 2's fifo); sam2.1_hiera_t with the parity tests' perturbed random weights at ``--size``;
* ``mni152``: the shipped MNI152 T1 (2 mm) axial slices as JPEGs, from the slice where the brain
  is largest upwards, box around the brain on the first; same weights, same engine settings;
* ``mni152-nano``: the embedded ``nano-synth`` model segmenting the whole MNI152 volume
  (``segment_volume``, box on the largest brain slice, both directions, ``--memory``). The reference
  cannot build this architecture, so this case has no reference row.

Run names: ``reference``, ``exact``, ``fast`` (bf16 encoder + memory attention), ``fast:encoder``
or ``fast:memory`` (one of them), with ``+recentN`` to attend to only the N nearest unprompted
memories (e.g. ``fast+recent3``). IoU is pooled over all frames (intersection / union of every
pixel); "min" is the worst single frame; "fg" is the exact run's foreground fraction (an IoU
near 1 means little when almost every pixel is foreground, so the background IoU is shown too).

    python benchmarks/fast_mode.py --threads 1 --clock cpu [--frames 12] [--rounds 2]
        [--cases ellipse mni152 mni152-nano] [--runs reference exact fast fast:encoder ...]
        [--memory fifo|self-sorting:N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from propagate import BOX, reference, write_frames  # noqa: E402

ASSETS = HERE.parent / "medsam2" / "assets"
CASES = ("ellipse", "mni152", "mni152-nano")
DEFAULT_RUNS = ["reference", "exact", "fast", "fast:encoder", "fast:memory", "fast+recent3"]


def _mni() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 array (i, j, k; k axial) and its brain mask (tissue labels 1-3)."""
    from medsam2.io import read_image

    image = read_image(ASSETS / "mni152_t1_2mm.nii.gz").array.astype(np.float32)
    brain = np.isin(read_image(ASSETS / "mni152_tissues_2mm.nii.gz").array, (1, 2, 3))
    return image, brain


def write_mni_frames(folder: Path, n: int) -> list[float]:
    """``n`` axial MNI152 slices as 8-bit JPEGs from the largest brain slice up; returns the box."""
    image, brain = _mni()
    k0 = int(np.argmax(brain.sum(axis=(0, 1))))
    lo, hi = np.percentile(image, [0.5, 99.5])
    folder.mkdir(parents=True, exist_ok=True)
    for t, k in enumerate(range(k0, min(k0 + n, image.shape[2]))):
        grey = np.clip((image[:, :, k] - lo) / (hi - lo), 0, 1) * 255
        Image.fromarray(np.stack([grey] * 3, -1).astype(np.uint8)).save(folder / f"{t:05d}.jpg")
    rows, cols = np.nonzero(brain[:, :, k0])
    return [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]


def plan_for(run: str, device: torch.device) -> Any:
    """The `SpeedPlan` a run name asks for (see the module docstring)."""
    from medsam2.engine.speed import PARTS, speed_plan

    name, _, recent = run.partition("+recent")
    speed, _, part = name.partition(":")
    plan = speed_plan(speed, device, (part,) if part else PARTS)
    return dataclasses.replace(plan, recent=int(recent)) if recent else plan


def memory_options(spec: str) -> tuple[str, dict[str, Any]]:
    """``fifo`` or ``self-sorting:N`` (capacity N, top-k retrieval of N) -> (policy, options)."""
    name, _, n = spec.partition(":")
    if name == "fifo":
        return name, {}
    return name, {"capacity": int(n or 16), "k": int(n or 16), "retrieval": "topk"}


def _video_masks(
    run: str, size: int, memory: str, frames: Path, weights: Path, box: list[float], clock: Any
) -> Any:
    """Propagate forward from a box on frame 0; (seconds, masks (T, H, W) bool)."""
    if run == "reference":
        ref = reference(size)
        state = ref.init_state(video_path=str(frames))
        ref.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=box)
        it = (m[0, 0] > 0 for _, _, m in ref.propagate_in_video(state))
    else:
        from medsam2 import VideoPredictor, load_model

        model = load_model(weights, image_size=size)
        policy, options = memory_options(memory)
        vp = VideoPredictor(
            model, memory=policy, speed=plan_for(run, model.device), tracker="memory", **options
        )
        vp.start(frames)
        vp.add_prompt(0, 1, box=box)
        it = (out.masks[0] for out in vp.propagate(direction="forward"))
    t0 = clock()
    masks = [m.numpy().copy() for m in it]
    return clock() - t0, np.stack(masks)


def _volume_masks(run: str, memory: str, clock: Any) -> Any:
    """The embedded nano-synth model on MNI152, both directions; (seconds, labels (I, J, K) bool)."""
    from medsam2 import load_model
    from medsam2.io import read_image
    from medsam2.model.embedded import checkpoint_path
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    path = checkpoint_path("nano-synth")
    if path is None:
        raise SystemExit("the embedded model nano-synth is not installed")
    model = load_model(path)
    volume = read_image(ASSETS / "mni152_t1_2mm.nii.gz")
    _, brain = _mni()
    k = int(np.argmax(brain.sum(axis=(0, 1))))
    ii, jj = np.nonzero(brain[:, :, k])
    box = VoxelBox((int(ii.min()), int(jj.min()), k), (int(ii.max()), int(jj.max()), k))
    speed = plan_for(run, model.device)
    policy, options = memory_options(memory)
    t0 = clock()
    result = segment_volume(
        model,
        volume,
        [VolumeObject(1, "brain", boxes=(box,))],
        memory=policy,
        memory_options=options,
        speed=speed,
        tracker="memory",
    )
    return clock() - t0, np.asarray(result.labels) > 0


def run_child(
    case: str, run: str, size: int, memory: str, work: Path, out: Path, clock_name: str
) -> dict[str, Any]:
    """One run in this process: time it, save its masks to ``out``."""
    torch.set_grad_enabled(False)
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    if case == "mni152-nano":
        seconds, masks = _volume_masks(run, memory, clock)
    else:
        box = json.loads((work / f"{case}.box.json").read_text())
        seconds, masks = _video_masks(run, size, memory, work / case, work / f"w{size}.pt", box, clock)
    np.save(out, masks)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds_per_frame": seconds / masks.shape[-1 if case == "mni152-nano" else 0],
        "peak_rss_mb": rss,
    }


def compare(exact: np.ndarray, other: np.ndarray, frame_axis: int) -> dict[str, float]:
    """Pooled foreground IoU, worst per-frame IoU, background IoU and exact's foreground share."""
    a, b = np.moveaxis(exact, frame_axis, 0), np.moveaxis(other, frame_axis, 0)
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    per_frame = inter[union > 0] / union[union > 0]
    bg_union = (~a | ~b).sum()
    return {
        "iou": float(inter.sum() / max(union.sum(), 1)),
        "min": float(per_frame.min()) if len(per_frame) else 1.0,
        "bg_iou": float((~a & ~b).sum() / max(bg_union, 1)),
        "fg": float(a.mean()),
    }


def _spawn(case: str, run: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"{case}.{run.replace(':', '_').replace('+', '_')}.npy"
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--clock", args.clock]
    cmd += ["--size", str(args.size), "--memory", args.memory, "--child", case, run, str(work), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    text = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return {**json.loads(text.strip().splitlines()[-1]), "masks": out}


def _report(case: str, rows: dict[str, dict[str, Any]]) -> None:
    base = rows["reference"]["seconds_per_frame"] if "reference" in rows else None
    exact = np.load(rows["exact"]["masks"]) if "exact" in rows else None
    axis = -1 if case == "mni152-nano" else 0
    for run, r in rows.items():
        ratio = f"{base / r['seconds_per_frame']:5.2f}x" if base else "    -"
        vs_exact = rows["exact"]["seconds_per_frame"] / r["seconds_per_frame"] if exact is not None else 0.0
        cmp = ""
        if exact is not None:
            c = compare(exact, np.load(r["masks"]), axis)
            cmp = f"{c['iou']:.4f} {c['min']:.4f} {c['bg_iou']:.4f} {c['fg']:.3f}"
        spf = r["seconds_per_frame"]
        print(
            f"{case:<12} {run:<16} {spf:>8.3f} {ratio:>7} {vs_exact:>6.2f}x {r['peak_rss_mb']:>7.0f}  {cmp}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--memory", default="fifo", help="fifo (default) or self-sorting:N")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", nargs=4, metavar=("CASE", "RUN", "WORK", "OUT"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        case, run, work, out = args.child
        print(json.dumps(run_child(case, run, args.size, args.memory, Path(work), Path(out), args.clock)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if {"ellipse", "mni152"} & set(args.cases):
            torch.save({"model": reference(args.size).state_dict()}, work / f"w{args.size}.pt")
            write_frames(work / "ellipse", args.frames)
            (work / "ellipse.box.json").write_text(json.dumps(BOX))
            box = write_mni_frames(work / "mni152", args.frames)
            (work / "mni152.box.json").write_text(json.dumps(box))
        print(
            f"threads {args.threads}, clock {args.clock}, {args.size} px, {args.frames} frames, "
            f"memory {args.memory}, best of {args.rounds}"
        )
        print(
            f"{'case':<12} {'run':<16} {'s/frame':>8} {'vs ref':>7} {'vs exact':>7} {'RSS MB':>7}  IoU min bgIoU fg"
        )
        for case in args.cases:
            runs = [r for r in args.runs if not (case == "mni152-nano" and r == "reference")]
            rows: dict[str, dict[str, Any]] = {}
            for _ in range(args.rounds):
                for run in runs:
                    r = _spawn(case, run, args, work)
                    if run not in rows or r["seconds_per_frame"] < rows[run]["seconds_per_frame"]:
                        rows[run] = r  # the masks file is rewritten each round; they are identical
            _report(case, rows)


if __name__ == "__main__":
    main()
