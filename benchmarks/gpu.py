"""Video propagation frames/s on one accelerator: medsam2 (fp32, bf16 autocast, torch.compile,
``--speed fast``) vs the reference SAM 2 video predictor (sam2==1.1.0), same card, same random
weights. ``bf16`` wraps the whole propagation in autocast; ``fast`` is the engine's fast mode
(bf16 encoder and memory modules only, decoder float32; docs/benchmarks.md, "Fast mode"),
which on CUDA also encodes 4 upcoming frames per encoder call; ``fast1`` is the same with one
frame per call, so the pair shows what the batched encoding buys.

For each image size: the reference (fp32) and medsam2 in each mode propagate the same JPEG
frames forward from a box on frame 0 (one warm-up pass first, then the timed pass). Printed:
frames/s, the ratio to the reference, and host reads per frame (``aten::_local_scalar_dense``
calls, i.e. ``float(t)`` / ``.item()``, counted by the profiler over one extra short pass; on a
GPU each one waits for the queue to drain). A mode that fails prints its error and the rest go on.
Sized to finish in under 5 minutes on one GPU with the defaults.

    python benchmarks/gpu.py                      # cuda, 512 and 1024 px, 24 frames
    python benchmarks/gpu.py --device cpu --quick  # a smoke test of every path on the CPU
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from propagate import BOX, write_frames  # noqa: E402

MODES = ("reference", "fp32", "bf16", "compile", "fast", "fast1")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reference(size: int, device: torch.device) -> Any:
    from _reference import reference_model

    return reference_model("sam2.1_hiera_t", size, video=True).to(device)


def _ours(weights: Path, size: int, device: torch.device, mode: str) -> Any:
    from medsam2 import load_model

    model = load_model(weights, image_size=size, device=device)
    if mode == "compile":
        model.image_encoder = torch.compile(model.image_encoder)
        model.memory_attention = torch.compile(model.memory_attention, dynamic=True)
    return model


def _propagator(mode: str, model: Any, frames: Path, n: int) -> Callable[[], Iterator[Any]]:
    """A function that opens a session with a box on frame 0 and yields ``n`` frames' outputs."""
    if mode == "reference":

        def run_ref() -> Iterator[Any]:
            state = model.init_state(video_path=str(frames))
            model.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=BOX)
            yield from model.propagate_in_video(state, max_frame_num_to_track=n - 1)

        return run_ref
    import dataclasses

    from medsam2 import VideoPredictor
    from medsam2.engine.speed import speed_plan

    plan = speed_plan("fast" if mode.startswith("fast") else "exact", model.device)
    if mode == "fast1":
        plan = dataclasses.replace(plan, encode_batch=1)

    def run_ours() -> Iterator[Any]:
        vp = VideoPredictor(model, memory="fifo", speed=plan, tracker="memory")
        vp.start(frames)
        vp.add_prompt(0, 1, box=BOX)
        for i, out in enumerate(vp.propagate(direction="forward")):
            if i >= n:
                break
            yield out

    return run_ours


def _context(mode: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if mode == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _host_reads(run: Callable[[], Iterator[Any]]) -> float:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        n = sum(1 for _ in run())
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_local_scalar_dense") / max(n, 1)


def measure(mode: str, model: Any, frames: Path, n: int, device: torch.device) -> dict[str, float]:
    """Warm up, time one pass of ``n`` frames, then count host reads over a short pass."""
    with torch.inference_mode(), _context(mode, device):
        sum(1 for _ in _propagator(mode, model, frames, min(n, 4))())  # warm-up (and compilation)
        _sync(device)
        t0 = time.perf_counter()
        done = sum(1 for _ in _propagator(mode, model, frames, n)())
        _sync(device)
        dt = time.perf_counter() - t0
        reads = _host_reads(_propagator(mode, model, frames, min(n, 4)))
    return {"fps": done / dt, "reads": reads}


def _one_size(size: int, args: argparse.Namespace, frames: Path, weights: Path, device: torch.device) -> None:
    ref = _reference(size, device)
    torch.save({"model": {k: v.cpu() for k, v in ref.state_dict().items()}}, weights)
    base = None
    for mode in args.modes:
        try:
            model = ref if mode == "reference" else _ours(weights, size, device, mode)
            r = measure(mode, model, frames, args.frames, device)
        except Exception as exc:  # report and go on: one broken mode must not hide the others
            print(f"{size:>5} {mode:<10} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        base = r["fps"] if mode == "reference" else base
        ratio = f"{r['fps'] / base:>5.2f}x" if base else "    -"
        print(f"{size:>5} {mode:<10} {r['fps']:>9.2f} {ratio} {r['reads']:>11.1f}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--quick", action="store_true", help="256 px, 3 frames: checks every path runs")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.frames = [256], 3
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for both implementations
        torch.backends.cudnn.allow_tf32 = False
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"device: {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'size':>5} {'mode':<10} {'frames/s':>9} {'ratio':>6} {'reads/frame':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        write_frames(frames, args.frames)
        for size in args.sizes:
            _one_size(size, args, frames, Path(tmp) / f"w{size}.pt", device)


if __name__ == "__main__":
    main()
