"""The embedded models: ``nano`` weights trained with medsam2's own pipeline, shipped in the package
(``medsam2/assets/*.safetensors`` + the model config ``*.json``). See docs/embedded_model.md.

* ``nano`` (the default): phantoms, then CT/MR phantoms and the MNI152 template (stages 1-3);
  strong on the phantoms' abdominal organs, weak on real images.
* ``nano-synth``: ``nano`` trained on domain-randomised synthetic data (stage 4); far better on
  real MRI (MNI152 whole brain Dice 0.97 from one box) and One-Prompt sets, but it loses small
  abdominal organs. Chosen with ``--checkpoint embedded:nano-synth``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_path", "EMBEDDED_NAME", "EMBEDDED_MODELS", "DEFAULT_EMBEDDED"]

EMBEDDED_MODELS = {"nano": "nano.safetensors", "nano-synth": "nano_synth.safetensors"}
DEFAULT_EMBEDDED = "nano"
EMBEDDED_NAME = EMBEDDED_MODELS[DEFAULT_EMBEDDED]


def checkpoint_path(name: str = DEFAULT_EMBEDDED) -> Path | None:
    """The shipped weights file of embedded model ``name``, or None when this installation has none."""
    file = EMBEDDED_MODELS.get(name)
    if file is None:
        return None
    path = Path(__file__).resolve().parent.parent / "assets" / file
    return path if path.is_file() and path.with_suffix(".json").is_file() else None
