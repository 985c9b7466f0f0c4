"""The embedded models: ``nano`` weights trained with medsam2's own pipeline, shipped in the package
(``medsam2/assets/*.safetensors`` + the model config ``*.json``). See docs/embedded_model.md.

A default per task (``DEFAULTS``), each chosen on validation data only
(``benchmarks/select_embedded.py``, two draws): ``nano-chain`` for volumes and single images,
with box chaining through volumes (its config's ``tracker``); ``nano-track`` for videos, which
propagate through the memory (``nano-chain``'s memory path no longer carries a mask);
``nano-synth`` for sets of unrelated 2D images (One-Prompt), which it segments better than any
other shipped model.

* ``nano-chain`` (the default): ``nano-track`` fine-tuned on one-slice box episodes only, its
  memory modules frozen (stage 7f), then with corrective clicks (stages 7h and 7j), then with
  its clicks on a boxed slice drawn into the dense box too (stage 9c, ``click_mask_prompt``),
  then with objects that fill their box (stage 9e): the box answer box chaining needs. Chained
  through volumes it scores, on validation, CT / T1 / T2 / generated volumes 0.91 / 0.85 / 0.73
  / 0.50 (``nano-track`` chained 0.84 / 0.64 / 0.31 / 0.35), and a click on a boxed slice is
  obeyed 29-69 % of the time (stage 7j: 0-20 %) without collapsing a large object (stage 9c did).
  Its memory path does not carry a mask (the copy test 0.04), so it is for box chaining only;
  One-Prompt sets are not its job.
* ``nano-track`` (the video default): ``nano`` given the dense box and fine-tuned on phantoms, generated volumes and
  one-slice box episodes on basic shapes (stage 7). It answers the box and keeps a working memory
  (the copy test 0.96); chained (its config's tracker) or through its memory (``--tracker
  memory``); One-Prompt 2D sets are its weak point.
* ``nano-synth`` (the One-Prompt default): stages 1-3, then domain-randomised synthetic volumes
  (stage 4). On held-out real MRI it gives MNI152 whole brain Dice 0.97 from one box; it often
  ignores a small box (the phantoms' abdominal organs, basic shapes).
* ``nano``: phantoms, then CT/MR phantoms and the MNI152 template (stages 1-3), then phantoms with
  generated volumes (stage 3b); strong on the phantoms' organs, near 0 on real MRI. Chosen with
  ``--checkpoint embedded:nano``.
* ``nano-box``: ``nano-synth`` fine-tuned to answer the box (stage 6): trained with
  ``box_mask_prompt`` (a box reaches the decoder as a dense mask as well as two corners), it
  segments the boxed object on the prompted slice far better than the others; what it
  propagates, and One-Prompt sets, are no better (docs/embedded_model.md, stage 6).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_path", "EMBEDDED_NAME", "EMBEDDED_MODELS", "DEFAULT_EMBEDDED", "DEFAULTS", "TASKS"]

EMBEDDED_MODELS = {
    "nano": "nano.safetensors",
    "nano-synth": "nano_synth.safetensors",
    "nano-box": "nano_box.safetensors",
    "nano-track": "nano_track.safetensors",
    "nano-chain": "nano_chain.safetensors",
}
TASKS = ("volume", "video", "one-prompt")
DEFAULTS = {
    "volume": "nano-chain",  # volumes (box chaining: nano_chain.json's tracker) and single images
    "video": "nano-track",  # frames propagated through the memory, which nano-track keeps working
    "one-prompt": "nano-synth",  # sets of unrelated 2D images segmented from one prompted image
}
DEFAULT_EMBEDDED = DEFAULTS["volume"]
EMBEDDED_NAME = EMBEDDED_MODELS[DEFAULT_EMBEDDED]


def checkpoint_path(name: str = DEFAULT_EMBEDDED) -> Path | None:
    """The shipped weights file of embedded model ``name``, or None when this installation has none."""
    file = EMBEDDED_MODELS.get(name)
    if file is None:
        return None
    path = Path(__file__).resolve().parent.parent / "assets" / file
    return path if path.is_file() and path.with_suffix(".json").is_file() else None
