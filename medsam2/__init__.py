"""Medical SAM 2: promptable 2D/3D medical image segmentation with a self-sorting memory bank.

Entry points: `load_model`, `save_model`, `ImagePredictor`, `VideoPredictor`, `ImageSetPredictor`.
Heavy modules are imported lazily so `import medsam2` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "save_model", "ImagePredictor", "VideoPredictor", "ImageSetPredictor", "__version__"]

_LAZY = {
    "load_model": "medsam2.model.checkpoint",
    "save_model": "medsam2.model.checkpoint",
    "ImagePredictor": "medsam2.engine.image_predictor",
    "VideoPredictor": "medsam2.engine.video_predictor",
    "ImageSetPredictor": "medsam2.engine.image_set",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsam2' has no attribute {name!r}")
