"""Multi-process training through ``torchrun``: process group, device, DDP wrapping, reductions.

Launch ``torchrun --nproc_per_node=N -m medsam2.cli.main train ...`` (one process per GPU; on
CPU, gloo). Every process draws its share of each step's episodes (the same episodes one
process would draw, see :mod:`medsam2.training.recipes`); DistributedDataParallel averages the
gradients, so N processes follow the same trajectory as one process with the same global
``batch_size``. Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from medsam2.errors import ConfigError

__all__ = [
    "DistContext",
    "init_distributed",
    "resolve_device",
    "wrap_ddp",
    "reduce_mean",
    "local_indices",
    "barrier",
    "shutdown",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job (world_size 1 without torchrun)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> this process's GPU when CUDA is available, else CPU; "cuda" requires CUDA."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("training option 'device': 'cuda' was asked for but CUDA is not available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if preference == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("training option 'device': 'mps' was asked for but MPS is not available")
        return torch.device("mps")
    return torch.device("cpu")


def init_distributed(preference: str = "auto") -> DistContext:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, LOCAL_RANK) if any;
    backend nccl on CUDA, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(preference, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("process %d of %d joined (%s, %s)", rank, world, backend, device)
        if rank != 0:  # one voice in the log: the other ranks report warnings only
            logging.getLogger("medsam2").setLevel(max(logging.WARNING, logging.getLogger("medsam2").level))
    return DistContext(rank, world, local, device)


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``module`` in a multi-process job, else ``module`` itself.

    Unused parameters are expected (a clip without mask prompts never touches the mask
    down-sampler, a one-frame episode never uses memory attention).
    """
    if not ctx.enabled:
        return module
    return DistributedDataParallel(module, device_ids=None, find_unused_parameters=True)


def reduce_mean(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average numbers over processes (for logging)."""
    if not ctx.enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device(ctx))
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def _comm_device(ctx: DistContext) -> torch.device:
    return ctx.device if ctx.device.type == "cuda" else torch.device("cpu")


def local_indices(batch_size: int, ctx: DistContext) -> range:
    """This process's episode indices among 0..batch_size-1 (a contiguous share)."""
    if batch_size % ctx.world_size:
        raise ConfigError(
            f"training option 'batch_size': {batch_size} episodes cannot be shared evenly by "
            f"{ctx.world_size} processes; use a multiple of {ctx.world_size}"
        )
    share = batch_size // ctx.world_size
    return range(ctx.rank * share, (ctx.rank + 1) * share)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (when this module created one)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
