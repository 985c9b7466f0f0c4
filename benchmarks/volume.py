"""Seconds per slice and peak memory of `segment_volume` as volumes get longer.

A synthetic 512 x 512 x N volume (int16, a bright ellipsoid in noise) is segmented from one box
on its middle slice, propagating both ways, with sam2.1_hiera_t random weights (object-score
head biased to "present" so memories carry masks). Each N runs in its own subprocess, so peak
RSS (``ru_maxrss``) is that run's alone. Printed per N: seconds per slice (wall clock and
process CPU time), peak RSS, the RSS before propagation (model, volume and its normalised
frames), the growth over it (preprocessing included), and, separately, the RSS when propagation
starts and the peak growth while it runs (the kernel's peak count is reset at that point).
Two more figures separate what the engine keeps from what the allocator keeps: "kept MB", the
tensor bytes the session still holds when propagation ends (results, memory entries, key and
feature caches), and "trimmed MB", the RSS growth over propagation start once glibc's
``malloc_trim(0)`` has returned the heap's free pages (the label volume's pages included).
Time should grow linearly with N; the propagation's growth should not grow with N.

    python benchmarks/volume.py [--slices 64 150 300] [--size 512] [--image-size 512]
        [--threads 2] [--memory fifo] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch


def _rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    """Peak resident set size since the last :func:`_reset_peak` (``VmHWM``) in MB."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    """Restart the kernel's peak-RSS count (``VmHWM``) from the current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _trimmed_rss_mb() -> float:
    """RSS in MB after glibc's ``malloc_trim(0)`` hands free heap pages back (NaN without glibc)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return float("nan")
    return _rss_mb()


def _kept_mb(session: Any) -> float:
    """Tensor bytes (MB) the session holds: results, memory entries, memory keys, encoded frames.

    Each storage is counted once (an object pointer is shared by a result and its entry)."""
    storages: dict[int, int] = {}

    def add(*tensors: Any) -> None:
        for t in tensors:
            if isinstance(t, torch.Tensor):
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()

    for obj in session.objects.values():
        for r in obj.results.values():
            add(r.low_res_logits, r.obj_ptr, r.score_logit, r.iou_pred)
        for e in obj.policy.entries():
            add(e.features, e.pos_enc, e.obj_ptr, e.iou, e.object_score, e.image_embed)
    for f in session.cache.values():
        add(f.vision, f.pos, *(f.high_res or ()))
    keys = sum(obj.keys.nbytes for obj in session.objects.values())
    return (sum(storages.values()) + keys) / 2**20


def _watch_propagation(marks: dict[str, float]) -> None:
    """Record RSS when propagation starts, its peak while it runs (preprocessing excluded), and
    at its end what the session keeps and the RSS once the allocator's free pages are trimmed."""
    from medsam2.engine.video_predictor import VideoPredictor

    original = VideoPredictor.propagate

    def propagate(self: Any, *args: Any, **kwargs: Any) -> Any:
        marks["start_mb"] = _rss_mb()
        _reset_peak()
        yield from original(self, *args, **kwargs)
        marks["peak_mb"] = _peak_mb()
        marks["kept_mb"] = _kept_mb(self.session)
        marks["trimmed_mb"] = _trimmed_rss_mb() - marks["start_mb"]

    VideoPredictor.propagate = propagate  # type: ignore[method-assign]


def synthetic_volume(slices: int, size: int) -> Any:
    """An int16 CT-like volume (i, j, k) = (size, size, slices) with an ellipsoid of +300 HU."""
    from medsam2.types import Volume

    rng = np.random.default_rng(0)
    i, j = np.mgrid[0:size, 0:size].astype(np.float32) / size
    arr = np.empty((size, size, slices), np.int16)
    for k in range(slices):
        r = 0.25 * np.sqrt(max(1.0 - ((k - slices / 2) / (0.45 * slices)) ** 2, 0.0))
        inside = ((i - 0.5) / max(r, 1e-3)) ** 2 + ((j - 0.45) / max(0.8 * r, 1e-3)) ** 2 <= 1
        arr[:, :, k] = (40 + 260 * inside + rng.normal(0, 15, (size, size))).astype(np.int16)
    return Volume(arr, (0.8, 0.8, 2.0), (0.0, 0.0, 0.0), np.eye(3), source="synthetic", modality="CT")


def _model(image_size: int) -> Any:
    from medsam2.model.presets import get_preset
    from medsam2.model.sam2_model import Sam2Model

    torch.manual_seed(0)
    model = Sam2Model(get_preset("sam2.1_hiera_t", image_size=image_size)).eval()
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return model


def run_one(slices: int, size: int, image_size: int, memory: str) -> dict[str, float]:
    """Segment one synthetic volume in this process; timings and memory figures."""
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    torch.set_grad_enabled(False)
    model = _model(image_size)
    volume = synthetic_volume(slices, size)
    mid = slices // 2
    box = VoxelBox((0.3 * size, 0.3 * size, mid), (0.7 * size, 0.6 * size, mid))
    before = _rss_mb()
    marks: dict[str, float] = {}
    _watch_propagation(marks)
    t0, c0 = time.perf_counter(), time.process_time()
    seg = segment_volume(model, volume, [VolumeObject(1, boxes=(box,))], memory=memory, tracker="memory")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "s_per_slice": wall / slices,
        "cpu_s_per_slice": cpu / slices,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
        "growth_mb": peak - before,
        "propagation_start_mb": marks["start_mb"],
        "propagation_growth_mb": marks["peak_mb"] - marks["start_mb"],
        "kept_mb": marks["kept_mb"],
        "trimmed_mb": marks["trimmed_mb"],
        "volume_mb": volume.array.nbytes / 2**20,
        "voxels": int((seg.labels > 0).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, nargs="+", default=[64, 150, 300])
    ap.add_argument("--size", type=int, default=512, help="in-plane size of the volume")
    ap.add_argument("--image-size", type=int, default=512, help="model input size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", default="fifo", help="fifo or self-sorting")
    ap.add_argument("--baseline", help="time the medsam2 package in this tree instead (before/after)")
    ap.add_argument("--child", type=int, metavar="SLICES")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_one(args.child, args.size, args.image_size, args.memory)))
        return
    print(
        f"{args.size}x{args.size} slices, model {args.image_size} px, {args.memory}, {args.threads} threads"
    )
    print(
        f"{'slices':>6} {'s/slice':>8} {'cpu s/slice':>11} {'peak RSS MB':>11} {'before MB':>9} {'growth MB':>9}"
        f" {'prop. start MB':>14} {'prop. growth MB':>15} {'kept MB':>7} {'trimmed MB':>10}"
    )
    for n in args.slices:
        cmd = [sys.executable, __file__, "--child", str(n), "--size", str(args.size)]
        cmd += ["--image-size", str(args.image_size), "--threads", str(args.threads), "--memory", args.memory]
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline)) if args.baseline else None
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        r = json.loads(out.splitlines()[-1])
        print(
            f"{n:>6} {r['s_per_slice']:>8.3f} {r['cpu_s_per_slice']:>11.3f} {r['peak_rss_mb']:>11.0f}"
            f" {r['rss_before_mb']:>9.0f} {r['growth_mb']:>9.0f}"
            f" {r['propagation_start_mb']:>14.0f} {r['propagation_growth_mb']:>15.0f}"
            f" {r['kept_mb']:>7.1f} {r['trimmed_mb']:>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
