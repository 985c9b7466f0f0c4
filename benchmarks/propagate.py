"""Per-frame video propagation time: medsam2 vs the reference SAM 2 video predictor.

Same random weights (sam2.1_hiera_t), same JPEG frames, fifo memory, 2 threads. Each
configuration runs in its own subprocess so peak RSS is attributable. Also times the
self-sorting bank at capacity 7 and 16. Prints a table; ratios are from this one run.

    python benchmarks/propagate.py [--sizes 512 1024] [--frames 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent


def write_frames(folder: Path, n: int, h: int = 480, w: int = 640) -> None:
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
    sys.path.insert(0, str(HERE.parent / "tests"))
    from _reference import reference_model

    return reference_model("sam2.1_hiera_t", size, video=True)


def run_one(which: str, size: int, frames: Path, weights: Path) -> dict[str, float]:
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    box = [200.0, 160.0, 420.0, 320.0]
    if which == "reference":
        ref = reference(size)
        state = ref.init_state(video_path=str(frames))
        ref.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=box)
        t0 = time.perf_counter()
        n = sum(1 for _ in ref.propagate_in_video(state))
    else:
        from medsam2 import VideoPredictor, load_model

        model = load_model(weights, image_size=size)
        memory, capacity = (which.split(":") + ["0"])[:2]
        opts = {"capacity": int(capacity), "k": int(capacity)} if memory == "self-sorting" else {}
        vp = VideoPredictor(model, memory=memory, **opts)
        vp.start(frames)
        vp.add_prompt(0, 1, box=box)
        t0 = time.perf_counter()
        n = sum(1 for _ in vp.propagate(direction="forward"))
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds_per_frame": dt / n, "frames": n, "peak_rss_mb": rss_mb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--child", nargs=4, metavar=("WHICH", "SIZE", "FRAMES", "WEIGHTS"))
    args = ap.parse_args()
    if args.child:
        which, size, frames, weights = args.child
        print(json.dumps(run_one(which, int(size), Path(frames), Path(weights))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        write_frames(frames, args.frames)
        print(f"{'size':>5} {'run':<18} {'s/frame':>8} {'ratio':>6} {'peak RSS MB':>12}")
        for size in args.sizes:
            weights = Path(tmp) / f"w{size}.pt"
            torch.save({"model": reference(size).state_dict()}, weights)
            rows = {}
            for which in ("reference", "fifo", "self-sorting:7", "self-sorting:16"):
                cmd = [sys.executable, __file__, "--child", which, str(size), str(frames), str(weights)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rows[which] = json.loads(out.strip().splitlines()[-1])
            base = rows["reference"]["seconds_per_frame"]
            for which, r in rows.items():
                ratio = base / r["seconds_per_frame"]
                print(
                    f"{size:>5} {which:<18} {r['seconds_per_frame']:>8.3f} {ratio:>5.2f}x {r['peak_rss_mb']:>12.0f}"
                )


if __name__ == "__main__":
    main()
