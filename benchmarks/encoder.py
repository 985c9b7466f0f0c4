"""Image-encoder speed: ours vs the reference sam2==1.1.0, same weights, fp32 on the CPU.

Usage: .venv/bin/python benchmarks/encoder.py [--sizes 512 1024] [--rounds 5] [--threads 2]

For every image size it reports per-image seconds (best of `rounds`; runs of ours, the reference
and a 2048^3 matmul interleaved, so that load from other processes hits all alike), the ratio,
the FLOP count of one forward (torch.utils.flop_counter.FlopCounterMode, attention included)
and the achieved FLOP rate as a fraction of this machine's best fp32 matmul rate in the run.
Ours does fewer FLOPs than the reference (no projections of padding tokens); each model's rate
is computed from its own count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils import flop_counter

from medsam2.config import ModelConfig
from medsam2.model.image_encoder import build_image_encoder

REF_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def _sdpa_cpu_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))


def _addmm_inplace_flops(self_shape: Any, a_shape: Any, b_shape: Any, *args: Any, **kwargs: Any) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn` (matmuls, convolutions and attention; elementwise ops are free).

    The CPU attention kernel and in-place `addmm_` are not in the counter's table: added here.
    """
    mapping = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
        torch.ops.aten.addmm_: _addmm_inplace_flops,
    }
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_rate(n: int = 2048, repeats: int = 3) -> float:
    """Best fp32 FLOP/s of an (n x n) @ (n x n) product on this machine, now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = min(_timed(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best


def _cpu_idle_fraction(interval: float = 1.0) -> float:
    """Share of idle CPU time over `interval` seconds (Linux /proc/stat; 1.0 elsewhere)."""
    try:
        samples = []
        for i in range(2):
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:9]]
            samples.append((fields[3] + fields[4], sum(fields)))
            if i == 0:
                time.sleep(interval)
    except OSError:
        return 1.0
    (idle0, total0), (idle1, total1) = samples
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(timeout: float) -> bool:
    """Wait up to `timeout` seconds for a second with >= 90% idle CPUs (others share this machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _cpu_idle_fraction() >= 0.9:
            return True
    return False


# wall clock, or with --clock cpu this process's CPU time: with --threads 1 that is immune to
# other processes taking turns on the cores (though not to their use of caches and memory)
_CLOCK: Callable[[], float] = time.perf_counter


def _timed(fn: Callable[[], Any]) -> float:
    start = _CLOCK()
    fn()
    return _CLOCK() - start


def build_pair(image_size: int) -> tuple[nn.Module, nn.Module]:
    """(reference encoder, ours) with identical (random) weights."""
    from sam2.build_sam import build_sam2

    overrides = [f"++model.image_size={image_size}"]
    ref = build_sam2(REF_CONFIG, ckpt_path=None, device="cpu", hydra_overrides_extra=overrides).image_encoder
    ours = build_image_encoder(ModelConfig(image_size=image_size))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


def bench_size(ref: nn.Module, ours: nn.Module, size: int, rounds: int, idle_wait: float) -> dict[str, Any]:
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {"ref": [], "ours": [], "matmul": []}
    idle_rounds = 0
    with torch.inference_mode():
        for model in (ref, ours, ref, ours):  # warm-up: allocator, oneDNN primitives, caches
            model(images)
        for _ in range(rounds):  # interleaved, so that load from other processes hits all alike
            idle_rounds += wait_for_idle(idle_wait) if idle_wait > 0 else 0
            times["ref"].append(_timed(lambda: ref(images)))
            times["ours"].append(_timed(lambda: ours(images)))
            times["matmul"].append(2 * 2048**3 / matmul_rate())
        flops = count_flops(lambda: ours(images))
        ref_flops = count_flops(lambda: ref(images))
    peak = 2 * 2048**3 / min(times["matmul"])
    best_ref, best_ours = min(times["ref"]), min(times["ours"])
    return {
        "size": size,
        "ref_s": best_ref,
        "ours_s": best_ours,
        "ref_median_s": statistics.median(times["ref"]),
        "ours_median_s": statistics.median(times["ours"]),
        "ours_over_ref": best_ours / best_ref,
        "gflop": flops / 1e9,
        "ref_gflop": ref_flops / 1e9,
        "matmul_gflops": peak / 1e9,
        "ours_gflops": flops / best_ours / 1e9,
        "ref_gflops": ref_flops / best_ref / 1e9,
        "ours_fraction_of_matmul": flops / best_ours / peak,
        "ref_fraction_of_matmul": ref_flops / best_ref / peak,
        "rounds_started_idle": f"{idle_rounds}/{rounds}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--idle-wait", type=float, default=0.0, help="seconds to wait for idle CPUs per round"
    )
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: process CPU time")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    global _CLOCK
    _CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    ref, ours = build_pair(max(args.sizes))
    results = [bench_size(ref, ours, size, args.rounds, args.idle_wait) for size in args.sizes]
    load_after = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, batch 1, sam2.1_hiera_t, "
        f"{args.clock} clock"
    )
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(
        "size  ref s/img  ours s/img  ours/ref  GFLOP ours (ref)  matmul GFLOP/s  "
        "ours GFLOP/s (frac)  ref GFLOP/s (frac)  idle rounds"
    )
    for r in results:
        print(
            f"{r['size']:>4}  {r['ref_s']:>9.3f}  {r['ours_s']:>10.3f}  {r['ours_over_ref']:>8.3f}  "
            f"{r['gflop']:>10.1f} ({r['ref_gflop']:.1f})  {r['matmul_gflops']:>14.1f}  "
            f"{r['ours_gflops']:>8.1f} ({r['ours_fraction_of_matmul']:.2f})  "
            f"{r['ref_gflops']:>8.1f} ({r['ref_fraction_of_matmul']:.2f})  {r['rounds_started_idle']:>11}"
        )
        print(f"      medians: ref {r['ref_median_s']:.3f} s, ours {r['ours_median_s']:.3f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_before": load_before, "load_after": load_after, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
