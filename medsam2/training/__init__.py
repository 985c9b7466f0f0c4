"""Training: turn SAM 2 weights into MedSAM-2 on your own 2D and 3D data (see docs/training.md).

Heavy modules (torch.distributed, MONAI) load on first use of the names below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medsam2.training.config import TrainConfig

if TYPE_CHECKING:
    from medsam2.training.trainer import TrainResult, resume_config, train

__all__ = ["TrainConfig", "TrainResult", "train", "resume_config"]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "train", "resume_config"):
        from medsam2.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'medsam2.training' has no attribute {name!r}")
