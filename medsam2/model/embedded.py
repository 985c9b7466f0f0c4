"""The embedded models: ``nano`` weights trained with medsam2's own pipeline, shipped in the package
(``medsam2/assets/*.safetensors`` + the model config ``*.json``). See docs/embedded_model.md.

Two defaults, each chosen on validation data only (``benchmarks/select_embedded.py``, two draws):
``nano-track`` for volumes, videos and single images, with box chaining through volumes (its
config's ``tracker``); ``nano-synth`` for sets of unrelated 2D images (One-Prompt), which it
segments better than any other shipped model.

* ``nano-track`` (the default): ``nano`` given the dense box and fine-tuned on phantoms, generated
  volumes and one-slice box episodes on basic shapes (stage 7). It answers the box (the boxed
  slice of basic shapes: 0.76 on validation, ``nano-synth`` 0.01) and, chained from box to box,
  propagates through volumes (validation CT / T1 / generated volumes 0.78 / 0.64 / 0.35 against
  ``nano-synth``'s 0.16 / 0.04 / 0.17); One-Prompt 2D sets are its weak point.
* ``nano-synth`` (the One-Prompt default): stages 1-3, then domain-randomised synthetic volumes
  (stage 4). On held-out real MRI it gives MNI152 whole brain Dice 0.97 from one box; it often
  ignores a small box (the phantoms' abdominal organs, basic shapes).
* ``nano``: phantoms, then CT/MR phantoms and the MNI152 template (stages 1-3), then phantoms with
  generated volumes (stage 3b); strong on the phantoms' organs, near 0 on real MRI. Chosen with
  ``--checkpoint embedded:nano`` (and by ``medsam2 demo --sample phantom``).
* ``nano-box``: ``nano-synth`` fine-tuned to answer the box (stage 6): trained with
  ``box_mask_prompt`` (a box reaches the decoder as a dense mask as well as two corners), it
  segments the boxed object on the prompted slice far better than the others; what it
  propagates, and One-Prompt sets, are no better (docs/embedded_model.md, stage 6).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_path", "EMBEDDED_NAME", "EMBEDDED_MODELS", "DEFAULT_EMBEDDED", "DEFAULT_ONE_PROMPT"]

EMBEDDED_MODELS = {
    "nano": "nano.safetensors",
    "nano-synth": "nano_synth.safetensors",
    "nano-box": "nano_box.safetensors",
    "nano-track": "nano_track.safetensors",
}
DEFAULT_EMBEDDED = "nano-track"  # volumes (box chaining: nano_track.json's tracker), videos, images
DEFAULT_ONE_PROMPT = "nano-synth"  # sets of unrelated 2D images segmented from one prompted image
EMBEDDED_NAME = EMBEDDED_MODELS[DEFAULT_EMBEDDED]


def checkpoint_path(name: str = DEFAULT_EMBEDDED) -> Path | None:
    """The shipped weights file of embedded model ``name``, or None when this installation has none."""
    file = EMBEDDED_MODELS.get(name)
    if file is None:
        return None
    path = Path(__file__).resolve().parent.parent / "assets" / file
    return path if path.is_file() and path.with_suffix(".json").is_file() else None
