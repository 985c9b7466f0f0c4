"""Training losses: SAM 2's recipe with MONAI's Dice and focal losses.

Per object and frame, with M candidate masks (M = 3 when the decoder gives several):

* mask loss: focal (MONAI ``FocalLoss``, alpha 0.25, gamma 2) or BCE with ``pos_weight`` (the
  MedSAM-2 paper's 2D code), mean over pixels, weight ``loss_mask``;
* Dice loss (MONAI ``DiceLoss`` on sigmoid probabilities), weight ``loss_dice``;
  with several candidates only the one with the smallest ``loss_mask * mask + loss_dice * dice``
  is penalised (SAM 2), so the candidates may specialise;
* IoU-prediction loss: MSE between the predicted IoUs and the real IoU of each candidate's
  binary mask with the target (all candidates, or the best one), weight ``loss_iou``;
* object-score loss: BCE of the object-score logit against "the object is present", weight
  ``loss_object``.

Mask, Dice and IoU losses count only where the object is present (as SAM 2), so frames where it
is absent teach the object score alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, FocalLoss
from torch import Tensor

from medsam2.training.config import TrainConfig

__all__ = ["LossConfig", "MultiMaskLoss", "binary_iou", "LOSS_TERMS"]

LOSS_TERMS = ("mask", "dice", "iou", "object")
_LOGIT_CLAMP = 32.0  # absent-object logits are -1024: keep their (gradient-free) losses finite


@dataclass(frozen=True)
class LossConfig:
    """Weights and options of :class:`MultiMaskLoss` (defaults: SAM 2 / MedSAM2)."""

    mask_loss: str = "focal"
    mask: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    bce_pos_weight: float = 1.0
    iou_all_candidates: bool = True

    @staticmethod
    def from_train_config(cfg: TrainConfig) -> LossConfig:
        return LossConfig(
            cfg.mask_loss,
            cfg.loss_mask,
            cfg.loss_dice,
            cfg.loss_iou,
            cfg.loss_object,
            cfg.focal_alpha,
            cfg.focal_gamma,
            cfg.bce_pos_weight,
            cfg.iou_loss_all_candidates,
        )


def binary_iou(logits: Tensor, target: Tensor) -> Tensor:
    """IoU of each binarised candidate (logits > 0) with the target; (M, H, W), (H, W) -> (M,).

    An empty prediction of an empty target counts as IoU 1.
    """
    pred = logits.detach() > 0
    t = target.bool()[None]
    inter = (pred & t).flatten(1).sum(1).float()
    union = (pred | t).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


class MultiMaskLoss:
    """The loss of one object on one frame (see the module docstring)."""

    def __init__(self, config: LossConfig | None = None) -> None:
        self.config = config or LossConfig()
        c = self.config
        self._dice = DiceLoss(sigmoid=True, reduction="none")
        self._focal = FocalLoss(use_softmax=False, gamma=c.focal_gamma, alpha=c.focal_alpha, reduction="none")

    def _pixel_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """(M, 1, H, W) logits and targets -> (M,) mean focal or BCE loss."""
        c = self.config
        if c.mask_loss == "bce":
            pw = torch.tensor(c.bce_pos_weight, device=logits.device, dtype=logits.dtype)
            bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
            return bce.flatten(1).mean(1)
        return self._focal(logits, target).flatten(1).mean(1)

    def __call__(
        self, logits: Tensor, ious: Tensor, object_logit: Tensor, target: Tensor
    ) -> dict[str, Tensor]:
        """logits (M, H, W) candidate mask logits; ious (M,) predicted IoUs; object_logit (1,);
        target (H, W) bool or {0, 1} float at the logits' resolution.

        Returns scalar tensors "mask", "dice", "iou", "object" (unweighted) and "total" (weighted).
        """
        c = self.config
        x = logits.float().clamp(-_LOGIT_CLAMP, _LOGIT_CLAMP)[:, None]
        t = target.float()[None, None].expand_as(x)
        present = bool(target.any())
        mask_l = self._pixel_loss(x, t)
        dice_l = self._dice(x, t).flatten()
        best = int(torch.argmin((c.mask * mask_l + c.dice * dice_l).detach()))
        real_iou = binary_iou(logits, target)
        pred_iou = ious.float()
        if c.iou_all_candidates:
            iou_l = F.mse_loss(pred_iou, real_iou)
        else:
            iou_l = F.mse_loss(pred_iou[best], real_iou[best])
        obj_target = torch.full_like(object_logit.float().reshape(1), float(present))
        obj_l = F.binary_cross_entropy_with_logits(object_logit.float().reshape(1), obj_target)
        gate = 1.0 if present else 0.0
        parts = {
            "mask": mask_l[best] * gate,
            "dice": dice_l[best] * gate,
            "iou": iou_l * gate,
            "object": obj_l,
        }
        parts["total"] = (
            c.mask * parts["mask"] + c.dice * parts["dice"] + c.iou * parts["iou"] + c.object * obj_l
        )
        return parts
