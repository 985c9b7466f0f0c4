"""`python -m medsam2.training [train options]`: the `medsam2 train` command on its own.

Handy as a torchrun entry point: ``torchrun --nproc_per_node=2 -m medsam2.training --data ...``.
Errors, logging and exit codes are those of `medsam2` itself.
"""

from __future__ import annotations

import sys

from medsam2.cli.main import main as medsam2_main


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    top = [a for a in given if a in ("-v", "--verbose")]
    return medsam2_main([*top, "train", *(a for a in given if a not in top)])


if __name__ == "__main__":
    sys.exit(main())
