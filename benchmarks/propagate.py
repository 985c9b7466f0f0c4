"""Per-frame video propagation time: medsam2 vs the reference SAM 2 video predictor.

Same random weights (sam2.1_hiera_t), same JPEG frames, forward from a box on frame 0. Each
run is its own subprocess (so peak RSS is attributable), and the runs are interleaved
(reference, ours, reference, ours, ... for ``--rounds`` rounds, keeping each run's best) so that
load from other processes on a shared machine hits all of them alike. Ratios are from one run.

    python benchmarks/propagate.py [--sizes 512 1024] [--frames 16] [--threads 1] [--clock cpu]
        [--runs reference fifo self-sorting:7] [--rounds 2] [--profile] [--baseline DIR]

``--clock cpu`` times process CPU time (steadier than wall clock on a loaded machine; use it
with ``--threads 1``). ``--profile`` adds, per run, the operators that took the most time and
the number of host reads (``aten::_local_scalar_dense``, one per ``float(t)``/``.item()``)
per frame during propagation. ``--baseline DIR`` with runs named ``base:fifo`` etc. times the
medsam2 package found in DIR (e.g. ``git archive <commit> medsam2 | tar -x -C DIR``) in the same
interleaved rounds, for before/after ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
BOX = [200.0, 160.0, 420.0, 320.0]
DEFAULT_RUNS = ["reference", "fifo", "self-sorting:7", "self-sorting:16"]


def write_frames(folder: Path, n: int, h: int = 480, w: int = 640) -> None:
    """``n`` numbered JPEGs of a bright ellipse moving right over noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        inside = ((yy - h / 2) / 80) ** 2 + ((xx - 150 - 15 * t) / 110) ** 2 <= 1
        img = 60 + 120 * inside + rng.normal(0, 6, (h, w))
        Image.fromarray(np.clip(np.stack([img] * 3, -1), 0, 255).astype(np.uint8)).save(
            folder / f"{t:05d}.jpg"
        )


def reference(size: int) -> torch.nn.Module:
    """The reference video predictor with the tests' perturbed random weights."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from _reference import reference_model

    return reference_model("sam2.1_hiera_t", size, video=True)


def _frames_iter(which: str, size: int, frames: Path, weights: Path) -> Iterator[Any]:
    """Set up one run (prompt on frame 0, frame 0 decoded) and return its propagation iterator."""
    if which == "reference":
        ref = reference(size)
        state = ref.init_state(video_path=str(frames))
        ref.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=BOX)
        return iter(ref.propagate_in_video(state))
    from medsam2 import VideoPredictor, load_model

    model = load_model(weights, image_size=size)
    memory, capacity = (which.split(":") + ["0"])[:2]
    opts = {"capacity": int(capacity), "k": int(capacity)} if memory == "self-sorting" else {}
    vp = VideoPredictor(model, memory=memory, tracker="memory", **opts)
    vp.start(frames)
    vp.add_prompt(0, 1, box=BOX)
    return iter(vp.propagate(direction="forward"))


def _profiled(run: Callable[[], int]) -> tuple[int, dict[str, Any]]:
    """Run under the torch profiler: (frames, {top operators, host reads})."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        n = run()
    events = prof.key_averages()
    reads = sum(e.count for e in events if e.key == "aten::_local_scalar_dense")
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    rows = [[e.key, e.count, round(e.self_cpu_time_total / 1e6, 3)] for e in top]
    return n, {"host_reads_per_frame": reads / max(n, 1), "top_self_cpu_s": rows}


def run_one(which: str, size: int, frames: Path, weights: Path, clock: str, profile: bool) -> dict[str, Any]:
    """Time the propagation of one configuration in this process."""
    torch.set_grad_enabled(False)
    it = _frames_iter(which, size, frames, weights)
    now = time.process_time if clock == "cpu" else time.perf_counter
    t0 = now()
    extra: dict[str, Any] = {}
    if profile:
        n, extra = _profiled(lambda: sum(1 for _ in it))
    else:
        n = sum(1 for _ in it)
    dt = now() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds_per_frame": dt / n, "frames": n, "peak_rss_mb": rss_mb, **extra}


def _child(which: str, size: int, frames: Path, weights: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a subprocess; ``base:<run>`` imports medsam2 from ``--baseline`` instead."""
    env = dict(os.environ)
    if which.startswith("base:"):
        if args.baseline is None:
            raise SystemExit(f"{which}: pass --baseline DIR (a checkout whose medsam2 to time)")
        env["PYTHONPATH"] = str(Path(args.baseline).resolve())
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--clock", args.clock]
    cmd += ["--child", which.removeprefix("base:"), str(size), str(frames), str(weights)]
    cmd += ["--profile"] if args.profile else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _report(size: int, rows: dict[str, dict[str, Any]], profile: bool) -> None:
    base = rows.get("reference", next(iter(rows.values())))["seconds_per_frame"]
    for which, r in rows.items():
        ratio = base / r["seconds_per_frame"]
        print(
            f"{size:>5} {which:<18} {r['seconds_per_frame']:>8.3f} {ratio:>5.2f}x {r['peak_rss_mb']:>12.0f}"
        )
    if profile:
        for which, r in rows.items():
            print(f"--- {size} {which}: host reads/frame {r['host_reads_per_frame']:.1f}; top self CPU s:")
            for key, count, secs in r["top_self_cpu_s"]:
                print(f"      {secs:>8.3f}  {count:>6}  {key}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--baseline", help="a tree holding another medsam2 package, timed as runs 'base:<run>'")
    ap.add_argument("--child", nargs=4, metavar=("WHICH", "SIZE", "FRAMES", "WEIGHTS"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        which, size, frames, weights = args.child
        res = run_one(which, int(size), Path(frames), Path(weights), args.clock, args.profile)
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        write_frames(frames, args.frames)
        print(f"threads {args.threads}, clock {args.clock}, {args.frames} frames, best of {args.rounds}")
        print(f"{'size':>5} {'run':<18} {'s/frame':>8} {'ratio':>6} {'peak RSS MB':>12}")
        for size in args.sizes:
            weights = Path(tmp) / f"w{size}.pt"
            torch.save({"model": reference(size).state_dict()}, weights)
            rows: dict[str, dict[str, Any]] = {}
            for _ in range(args.rounds):
                for which in args.runs:
                    r = _child(which, size, frames, weights, args)
                    if which not in rows or r["seconds_per_frame"] < rows[which]["seconds_per_frame"]:
                        rows[which] = r
            _report(size, rows, args.profile)


if __name__ == "__main__":
    main()
