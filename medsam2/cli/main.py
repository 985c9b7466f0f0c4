"""`medsam2` command line: a thin layer over the API. Errors: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from medsam2.errors import MedSam2Error

__all__ = ["main", "build_parser"]

log = logging.getLogger("medsam2")
Handler = Callable[[argparse.Namespace], int]


def _cmd_presets(args: argparse.Namespace) -> int:
    import torch

    from medsam2.model.presets import PRESETS
    from medsam2.model.sam2_model import Sam2Model

    print(f"{'preset':18} {'version':8} {'image':>5} {'trunk':>18} {'params':>12}")
    for name, cfg in PRESETS.items():
        with torch.device("meta"):
            n = sum(p.numel() for p in Sam2Model(cfg).parameters())
        t = cfg.trunk
        trunk = f"{t.embed_dim}d {'-'.join(map(str, t.stages))}"
        print(f"{name:18} {cfg.version:8} {cfg.image_size:>5} {trunk:>18} {n:>12,}")
    return 0


def _size_reason(path: str, preset: str, given: int | None) -> str:
    from pathlib import Path

    from medsam2.model.checkpoint import input_size_for

    if given:
        return "--image-size"
    if path.endswith(".safetensors") and Path(path).with_suffix(".json").is_file():
        return "from the config saved beside the weights"
    return input_size_for(path, preset)[1]


def _cmd_info(args: argparse.Namespace) -> int:
    from medsam2.model.checkpoint import detect_preset, load_model, read_state_dict

    sd = read_state_dict(args.checkpoint)
    det = detect_preset(sd)
    model = load_model(args.checkpoint, preset=args.preset, image_size=args.image_size)
    cfg = model.config
    print(f"file:        {args.checkpoint}")
    print(f"preset:      {cfg.name} ({det.reason})")
    print(f"version:     {cfg.version}")
    print(f"image size:  {cfg.image_size} ({_size_reason(str(args.checkpoint), cfg.name, args.image_size)})")
    print(f"parameters:  {det.num_params:,}")
    if cfg.box_mask_prompt:
        print("box prompt:  corners + dense box mask (trained with box_mask_prompt; not SAM 2's)")
    if cfg.box_mask_prompt and cfg.click_mask_prompt:
        print("clicks:      points + discs in the dense box on a boxed frame (click_mask_prompt)")
    print(f"file dtype:  {det.dtype} (loaded as float32)")
    print("load:        ok (strict: every key and shape matched)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other medsam2 error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="medsam2", description="Medical SAM 2: promptable 2D/3D segmentation")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("presets", help="list the model architectures")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("info", help="inspect a checkpoint: detected preset, parameters, dtype, load status")
    p.add_argument("checkpoint")
    p.add_argument("--preset", default=None, help="force an architecture instead of detecting it")
    p.add_argument("--image-size", type=int, default=None)
    p.set_defaults(func=_cmd_info)

    from medsam2.cli import commands

    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    func: Handler = args.func
    try:
        return func(args)
    except MedSam2Error as exc:
        message = " ".join(str(exc).split())  # always one line, even for multi-line details
        print(f"medsam2 {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medsam2 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
