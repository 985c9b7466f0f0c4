"""`python -m medsam2.training [train options]`: the `medsam2 train` command on its own.

Handy as a torchrun entry point: ``torchrun --nproc_per_node=2 -m medsam2.training --data ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from medsam2.cli.train import register
from medsam2.errors import MedSam2Error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsam2.training")
    parser.add_argument("-v", "--verbose", action="store_true")
    register(parser.add_subparsers(dest="command"))
    given = list(sys.argv[1:] if argv is None else argv)
    top = [a for a in given if a in ("-v", "--verbose")]
    args = parser.parse_args([*top, "train", *(a for a in given if a not in top)])
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args))
    except MedSam2Error as exc:
        print(f"medsam2 train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
