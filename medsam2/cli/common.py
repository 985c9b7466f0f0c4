"""Options shared by every segmentation command (frames, image sets, volumes).

``--checkpoint`` (default: the embedded model when the package ships one), ``--preset`` /
``--image-size`` overrides, ``--device auto|cpu|cuda|mps``, ``--memory fifo|self-sorting``,
``--memory-size N``, ``--seed``, ``--speed exact|fast``, ``-o/--output``, ``--overwrite``,
``--progress``.

Values are parsed here rather than by argparse (no ``type=``/``choices=``) so that every bad
value gives the one-line error of ``medsam2.cli.main`` (``MedSam2Error`` -> exit code 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsam2.errors import ConfigError, InputError

__all__ = [
    "DEVICES",
    "MEMORIES",
    "CommonOptions",
    "add_common_arguments",
    "parse_common",
    "parse_int",
    "resolve_device",
    "resolve_checkpoint",
    "load_cli_model",
    "memory_options",
    "add_speed_argument",
    "parse_speed",
]

log = logging.getLogger("medsam2")

DEVICES = ("auto", "cpu", "cuda", "mps")
MEMORIES = ("fifo", "self-sorting")
EMBEDDED_MODULE = "medsam2.model.embedded"


@dataclass(frozen=True)
class CommonOptions:
    """The shared options, validated."""

    checkpoint: Path | None
    preset: str | None
    image_size: int | None
    device: str  # as requested: auto, cpu, cuda[:N], mps
    memory: str  # fifo or self-sorting
    memory_size: int | None
    seed: int
    output: Path
    overwrite: bool
    progress: bool
    speed: str = "exact"  # exact (SAM 2's float32 math) or fast (bf16 encoder and memory modules)


def add_common_arguments(parser: argparse.ArgumentParser, *, default_memory: str, output_help: str) -> None:
    """Add the shared options to a segmentation sub-command."""
    g = parser.add_argument_group("model and memory")
    g.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="model weights: Meta's SAM 2/2.1 .pt, MedSAM-2 .pth, bowang-lab MedSAM2 .pt or a medsam2 "
        ".safetensors, or embedded:NAME for a shipped model (embedded:nano-synth, the default; embedded:nano, "
        "trained on phantoms; embedded:nano-box, best on the boxed slice; embedded:nano-track, box and "
        "propagation on MR/CT; docs/embedded_model.md)",
    )
    g.add_argument(
        "--preset",
        metavar="NAME",
        help="force the architecture instead of detecting it (see `medsam2 presets`)",
    )
    g.add_argument(
        "--image-size", metavar="PX", help="model input size, a multiple of 32 (default: the checkpoint's)"
    )
    g.add_argument(
        "--device",
        default="auto",
        metavar="DEV",
        help="auto (default: cuda, then mps, then cpu), cpu, cuda[:N] or mps",
    )
    g.add_argument(
        "--memory",
        default=default_memory,
        metavar="POLICY",
        help=f"fifo (SAM 2: prompted + recent frames) or self-sorting (MedSAM-2's bank); default {default_memory}",
    )
    g.add_argument(
        "--memory-size",
        metavar="N",
        help="self-sorting: bank capacity (default 16); fifo: memory slots, the prompted slot + the most "
        "recent frames (SAM 2's num_maskmem: 2 up to the model's, 7 for every SAM 2 checkpoint, the default)",
    )
    g.add_argument(
        "--seed", default="0", metavar="N", help="seed of the self-sorting bank's sampling (default 0)"
    )
    add_speed_argument(g)
    o = parser.add_argument_group("output")
    o.add_argument("-o", "--output", metavar="PATH", help=output_help)
    o.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --output"
    )
    o.add_argument("--progress", action="store_true", help="show a progress bar on stderr")


def add_speed_argument(group: Any) -> None:
    """``--speed exact|fast`` (shared by every command that propagates)."""
    group.add_argument(
        "--speed",
        default="exact",
        metavar="MODE",
        help="exact (default: SAM 2's float32 arithmetic, the reference's masks) or fast (bf16 image "
        "encoder and memory modules on CUDA and on CPUs with AVX512-BF16/AMX, float32 elsewhere; "
        "about 2.8x faster than exact at 512 px on such CPUs, masks close to exact's; docs/benchmarks.md)",
    )


def add_tracker_argument(group: Any) -> None:
    """``--tracker auto|memory|box-chain`` (shared by the commands that propagate through volumes)."""
    group.add_argument(
        "--tracker",
        default="auto",
        metavar="T",
        help="how unprompted slices are segmented: auto (default: the model's own; box-chain for "
        "the embedded nano-chain and nano-track, memory for SAM 2 / MedSAM-2 checkpoints), memory "
        "(SAM 2's memory) or box-chain (each slice boxed from the previous slice's mask; "
        "docs/embedded_model.md)",
    )


def parse_tracker(value: str | None) -> str | None:
    """Validate ``--tracker``: None for auto (the model's own), else the tracker named."""
    from medsam2.config import TRACKERS

    if value is None or value == "auto":
        return None
    if value not in TRACKERS:
        raise ConfigError(f"--tracker {value}: choose auto, {' or '.join(TRACKERS)}")
    return value


def parse_speed(value: str | None) -> str:
    """Validate ``--speed`` (None -> exact); ConfigError naming the flag otherwise."""
    from medsam2.engine.speed import check_speed

    return "exact" if value is None else check_speed(value, "--speed")


def parse_int(value: str | None, flag: str, minimum: int | None = None) -> int | None:
    """An integer option given as text (None stays None); ConfigError naming the flag otherwise."""
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{flag} {value}: expected an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{flag} {value}: must be >= {minimum}")
    return number


def _memory_name(value: str) -> str:
    key = str(value).strip().lower().replace("_", "-")
    if key not in MEMORIES:
        raise ConfigError(f"--memory {value}: unknown memory policy; choose fifo or self-sorting")
    return key


def _check_preset(name: str) -> None:
    from medsam2.model.presets import get_preset

    try:
        get_preset(name)
    except ConfigError as exc:
        raise ConfigError(f"--preset {name}: {exc}") from None


def parse_common(args: argparse.Namespace) -> CommonOptions:
    """Validate the shared options (cheap checks only: no model, no device probing)."""
    if not args.output:
        raise ConfigError("-o/--output is required: where to write the results")
    device = str(args.device).strip().lower()
    if device.split(":")[0] not in DEVICES:
        raise ConfigError(f"--device {args.device}: unknown device; choose auto, cpu, cuda, cuda:N or mps")
    seed = parse_int(args.seed, "--seed", 0)
    assert seed is not None
    if args.preset:
        _check_preset(args.preset)
    return CommonOptions(
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        preset=args.preset,
        image_size=parse_int(args.image_size, "--image-size", 32),
        device=device,
        memory=_memory_name(args.memory),
        memory_size=parse_int(args.memory_size, "--memory-size", 1),
        seed=seed,
        output=Path(args.output),
        overwrite=bool(args.overwrite),
        progress=bool(args.progress),
        speed=parse_speed(getattr(args, "speed", None)),
    )


def resolve_device(name: str) -> str:
    """``auto`` -> the best available device; an unavailable device -> ConfigError."""
    import torch

    name = name.strip().lower()
    mps_ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    kind, _, index = name.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: CUDA is not available on this machine; use --device cpu or auto"
            )
        n = torch.cuda.device_count()
        if index and (not index.isdigit() or int(index) >= n):
            raise ConfigError(f"--device {name}: no such CUDA device (this machine has cuda:0..cuda:{n - 1})")
        return name
    if kind == "mps" and not index:
        if not mps_ok:
            raise ConfigError(
                f"--device {name}: Apple MPS is not available on this machine; use --device cpu or auto"
            )
        return "mps"
    raise ConfigError(f"--device {name}: unknown device; choose auto, cpu, cuda, cuda:N or mps")


def _embedded_checkpoint(name: str | None = None, task: str = "volume") -> Path | None:
    """Embedded model ``name``'s weights file (default: the default for ``task``, one of
    ``medsam2.model.embedded.TASKS``), or None when not shipped."""
    try:
        module = importlib.import_module(EMBEDDED_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (EMBEDDED_MODULE, "medsam2.model"):
            return None
        raise
    if name is None:
        name = getattr(module, "DEFAULTS", {}).get(task)
    getter = getattr(module, "checkpoint_path", None)
    path = (getter() if name is None else getter(name)) if callable(getter) else None
    return Path(path) if path is not None and Path(path).is_file() else None


EMBEDDED_PREFIX = "embedded:"


def _embedded_names() -> list[str]:
    """Names of the embedded models this installation ships (``--checkpoint embedded:NAME``)."""
    try:
        module = importlib.import_module(EMBEDDED_MODULE)
    except ModuleNotFoundError:
        return []
    models = getattr(module, "EMBEDDED_MODELS", {})
    return [n for n in models if _embedded_checkpoint(n) is not None]


def resolve_checkpoint(opts: CommonOptions, task: str = "volume") -> tuple[Path, bool]:
    """(weights file, whether it is the embedded model); errors name ``--checkpoint``. Without
    ``--checkpoint``: the default embedded model for ``task`` ("volume", "video" or "one-prompt":
    a set of unrelated 2D images)."""
    if opts.checkpoint is not None and str(opts.checkpoint).startswith(EMBEDDED_PREFIX):
        name = str(opts.checkpoint)[len(EMBEDDED_PREFIX) :]
        chosen = _embedded_checkpoint(name)
        if chosen is None:
            names = ", ".join(EMBEDDED_PREFIX + n for n in _embedded_names())
            raise InputError(
                f"--checkpoint {opts.checkpoint}: no such embedded model (installed: {names or 'none'})"
            )
        return chosen, True
    if opts.checkpoint is not None:
        if opts.checkpoint.is_dir():
            raise InputError(f"--checkpoint {opts.checkpoint}: is a folder; give the weights file")
        if not opts.checkpoint.is_file():
            raise InputError(f"--checkpoint {opts.checkpoint}: file not found")
        return opts.checkpoint, False
    embedded = _embedded_checkpoint(task=task)
    if embedded is None:
        raise ConfigError(
            "no --checkpoint given and no embedded model is installed: pass --checkpoint FILE "
            "(SAM 2/2.1 .pt, MedSAM-2 .pth or a medsam2 .safetensors)"
        )
    return embedded, True


def load_cli_model(opts: CommonOptions, device: str, task: str = "volume") -> tuple[Any, Path]:
    """Load the model the options ask for on ``device``; returns (Sam2Model, weights path).
    ``task``: what the job is, for the default embedded model (see ``resolve_checkpoint``)."""
    import torch

    from medsam2.model.checkpoint import load_model

    path, embedded = resolve_checkpoint(opts, task)
    if embedded and opts.checkpoint is None:
        print(f"medsam2: no --checkpoint given; using the embedded model ({path.name})", file=sys.stderr)
    elif embedded:
        print(f"medsam2: using the embedded model {opts.checkpoint} ({path.name})", file=sys.stderr)
    torch.manual_seed(opts.seed)
    model = load_model(path, preset=opts.preset, image_size=opts.image_size, device=device)
    log.info("model %s at %d px on %s", model.config.name, model.image_size, device)
    return model, path


def memory_options(opts: CommonOptions, num_maskmem: int) -> dict[str, Any]:
    """Policy keyword arguments for ``VideoPredictor`` from ``--memory-size`` and ``--seed``.

    ``--memory-size`` means the same in every command (``evaluate`` and ``segment-batch`` too):
    self-sorting's bank capacity; fifo's memory slots, SAM 2's ``num_maskmem`` (the prompted slot
    + the ``N - 1`` most recent frames), from 2 up to the model's own (7 for SAM 2), which is the
    default. More slots than the model has temporal encodings for are refused.
    """
    if opts.memory == "self-sorting":
        options: dict[str, Any] = {"seed": opts.seed}
        if opts.memory_size is not None:
            options["capacity"] = opts.memory_size
        return options
    if opts.memory_size is None:
        return {}
    if not 2 <= opts.memory_size <= num_maskmem:
        raise ConfigError(
            f"--memory-size {opts.memory_size}: fifo takes 2..{num_maskmem} memory slots (the prompted "
            f"slot + the most recent frames; this model has {num_maskmem}), or use --memory self-sorting "
            "to choose the bank size"
        )
    return {"num_maskmem": opts.memory_size}
