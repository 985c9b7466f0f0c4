"""Registry of the segmentation / training sub-commands (each lives in its own module)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the pipeline sub-commands to the `medsam2` parser."""
    return None
