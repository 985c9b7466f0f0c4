"""Inference speed modes: ``exact`` (identical math to SAM 2) and ``fast`` (bf16 arithmetic).

``exact`` (the default) changes nothing: float32 throughout, the reference's masks
(tests/test_video_parity.py). ``fast`` trades the last bits of the arithmetic for speed while
keeping the masks (mask IoU against ``exact`` is measured by ``benchmarks/fast_mode.py``; see
docs/benchmarks.md, "Fast mode"):

* the image encoder (part ``encoder``), the memory attention with each memory's cached keys
  and the memory encoder (part ``memory``; memories are stored in bf16 in both modes) run
  under bf16 autocast: matrix products and convolutions in bfloat16, normalisations in
  float32; on the CPU their attention runs as plain bf16 products
  (`medsam2.model.common.attention`). Their outputs are cast back to float32; the mask
  decoder, where a mask is chosen among candidates by predicted IoU, and every memory rule
  stay float32;
* on the CPU only where it has native bf16 instructions (AVX512-BF16 or AMX): elsewhere oneDNN
  emulates bf16, slower than float32, so ``fast`` falls back to float32 with a logged warning;
  on CUDA bf16 autocast is used when the card supports it; on MPS ``fast`` runs in float32.

On CUDA, ``fast`` also encodes 4 upcoming frames per image-encoder call (``encode_batch``):
one launch of a batch instead of four of one frame, which is what keeps a GPU busy with small
models; on the CPU one frame already fills the cores, so the batch stays 1 there (a
`SpeedPlan` may set it anywhere; the results are the same, frame by frame).

A `SpeedPlan` holds the resolved choices; the engine asks it for an autocast context around
the two expensive steps (`SpeedPlan.autocast`) and casts their results (`SpeedPlan.restore`).
``recent`` (attend to fewer memories) is measured but not part of ``fast``: it changes SAM 2's
memory rule; int8 dynamic quantisation was measured and dropped (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from medsam2.engine.memory import SelectedMemory
from medsam2.errors import ConfigError

__all__ = ["SPEEDS", "SpeedPlan", "EXACT", "check_speed", "speed_plan", "cpu_has_bf16"]

log = logging.getLogger(__name__)

SPEEDS = ("exact", "fast")
GPU_ENCODE_BATCH = 4  # frames per encoder call for ``fast`` on CUDA
PARTS = ("encoder", "memory")  # the steps a plan may run in reduced precision


@dataclass(frozen=True)
class SpeedPlan:
    """Resolved speed choices for one device.

    name: the requested mode (``exact`` or ``fast``); dtype: the autocast dtype, or None for
    float32; device_type: the autocast device type (``cpu``, ``cuda``); parts: which steps run
    under autocast (a subset of ``("encoder", "memory")``).
    """

    name: str = "exact"
    dtype: torch.dtype | None = None
    device_type: str = "cpu"
    parts: frozenset[str] = field(default_factory=frozenset)
    recent: int | None = None  # attend to at most this many unprompted memories (None: all)
    encode_batch: int = 1  # frames per image-encoder call during propagation (encoded ahead)

    def __post_init__(self) -> None:
        if (
            isinstance(self.encode_batch, bool)
            or not isinstance(self.encode_batch, int)
            or self.encode_batch < 1
        ):
            raise ConfigError(f"encode_batch must be an int >= 1, got {self.encode_batch!r}")

    @property
    def exact(self) -> bool:
        """True when the encoder's arithmetic is float32 (identical math)."""
        return self.dtype is None or not self.parts

    def select(self, memories: Sequence[SelectedMemory]) -> list[SelectedMemory]:
        """The memories to attend to: every prompted one, and the ``recent`` unprompted ones with
        the highest temporal slot (nearest frames); all of them when ``recent`` is None."""
        if self.recent is None:
            return list(memories)
        others = [m for m in memories if not m.entry.prompted]
        nearest = sorted(others, key=lambda m: -(m.tpos or 0))[: self.recent]
        keep = {id(m) for m in nearest}
        return [m for m in memories if id(m) in keep or m.entry.prompted]

    def autocast(self, part: str) -> contextlib.AbstractContextManager[None]:
        """Autocast context for one step (``encoder`` or ``memory``), a no-op when exact."""
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
        if self.dtype is None or part not in self.parts:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def restore(self, x: Tensor) -> Tensor:
        """A step's result back in float32 (unchanged when it already is)."""
        return x if x.dtype == torch.float32 or not x.is_floating_point() else x.float()

    def describe(self) -> str:
        """One line for logs and benchmark tables."""
        limit = "" if self.recent is None else f", {self.recent} recent memories"
        if self.encode_batch > 1:
            limit += f", {self.encode_batch} frames per encoder call"
        if self.exact:
            return f"{self.name}: float32{limit}"
        parts = " + ".join(p for p in PARTS if p in self.parts)
        dtype = str(self.dtype).removeprefix("torch.")
        return f"{self.name}: {dtype} autocast on {self.device_type} ({parts}){limit}"


EXACT = SpeedPlan()


def check_speed(value: object, flag: str = "speed") -> str:
    """Normalise a speed name; ConfigError naming ``flag`` and the choices otherwise."""
    key = str(value).strip().lower()
    if key not in SPEEDS:
        raise ConfigError(f"{flag} {value!r}: unknown speed; choose {' or '.join(SPEEDS)}")
    return key


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 products natively (AVX512-BF16 or AMX), per oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return False
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # pragma: no cover - depends on the build
        return False


def _cuda_has_bf16(device: torch.device) -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):  # pragma: no cover - depends on the machine
        return False


def speed_plan(
    speed: str | SpeedPlan = "exact",
    device: torch.device | str = "cpu",
    parts: tuple[str, ...] = PARTS,
) -> SpeedPlan:
    """The plan for ``speed`` on ``device``.

    ``exact`` -> float32. ``fast`` -> bf16 autocast on ``parts`` (default: encoder and memory
    attention) where the device supports it, else float32 with a logged warning. A `SpeedPlan`
    passes through unchanged (benchmarks build variants directly).
    """
    if isinstance(speed, SpeedPlan):
        return speed
    name = check_speed(speed)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"speed parts {unknown}: expected a subset of {list(PARTS)}")
    if name == "exact":
        return EXACT
    dev = torch.device(device)
    if dev.type == "cpu":
        if not cpu_has_bf16():
            log.warning(
                "speed fast: this CPU has no native bf16 instructions (AVX512-BF16/AMX); "
                "bf16 would be slower here, so float32 is used (same as --speed exact)"
            )
            return SpeedPlan(name, None, "cpu", frozenset())
    elif dev.type == "cuda":
        if not _cuda_has_bf16(dev):
            log.warning("speed fast: this GPU does not support bf16; float32 is used")
            return SpeedPlan(name, None, "cuda", frozenset())
    else:
        log.warning("speed fast: no reduced-precision path on %s; float32 is used", dev.type)
        return SpeedPlan(name, None, dev.type, frozenset())
    batch = GPU_ENCODE_BATCH if dev.type == "cuda" else 1
    plan = SpeedPlan(name, torch.bfloat16, dev.type, frozenset(parts), encode_batch=batch)
    log.info("speed %s", plan.describe())
    return plan
