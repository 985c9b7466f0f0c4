"""Registry of the segmentation / training sub-commands (each lives in its own module)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the pipeline sub-commands to the `medsam2` parser (one line per command module)."""
    from medsam2.cli.video import register_video_commands

    register_video_commands(sub)
    from medsam2.cli.segment import register_segment_command

    register_segment_command(sub)
    from medsam2.cli.demo import register_demo_command

    register_demo_command(sub)
    from medsam2.cli.train import register as register_train

    register_train(sub)
    from medsam2.cli.serve import register_serve_command

    register_serve_command(sub)
    from medsam2.cli.evaluate import register_evaluate_command

    register_evaluate_command(sub)
    from medsam2.cli.segment_batch import register_segment_batch_command

    register_segment_batch_command(sub)
