"""The embedded default model: `nano` weights trained with medsam2's own pipeline, shipped in
the package (`medsam2/assets/nano.safetensors` + `nano.json`). See docs/embedded_model.md."""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_path", "EMBEDDED_NAME"]

EMBEDDED_NAME = "nano.safetensors"


def checkpoint_path() -> Path | None:
    """The shipped weights file, or None when this installation has none."""
    path = Path(__file__).resolve().parent.parent / "assets" / EMBEDDED_NAME
    return path if path.is_file() and path.with_suffix(".json").is_file() else None
