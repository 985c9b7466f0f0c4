"""The dense box prompt of models trained with ``box_mask_prompt`` (embedded models only).

Such a model gets a box as SAM 2's two corner tokens and, on a frame without an earlier output,
also as a mask through the prompt encoder's mask-input path (docs/embedded_model.md, stage 6).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["BOX_MASK_LOGIT", "box_mask_logits"]

BOX_MASK_LOGIT = 10.0  # |logit| of the dense box prompt of models with `box_mask_prompt`


def box_mask_logits(corners: Tensor, image_size: int) -> Tensor:
    """Dense prompt of a box: corners (B, 2, 2) in model pixels ((x0, y0), (x1, y1)) ->
    (B, 1, S/4, S/4) logits, +BOX_MASK_LOGIT where a low-res pixel's centre lies in the box and
    -BOX_MASK_LOGIT elsewhere (S = image_size, the prompt encoder's mask-input size). A box too
    small to hold a pixel centre marks the pixels it overlaps instead, so it is never empty."""
    side = image_size // 4
    step = image_size / side
    start = torch.arange(side, device=corners.device, dtype=torch.float32) * step  # pixel edges
    lo = torch.minimum(corners[:, 0], corners[:, 1]).float()  # (B, 2) x, y
    hi = torch.maximum(corners[:, 0], corners[:, 1]).float()

    def along(axis: int, centre: bool) -> Tensor:  # (B, side): pixels selected along x or y
        a, b = lo[:, axis : axis + 1], hi[:, axis : axis + 1]
        if centre:
            c = start[None] + step / 2
            return (c >= a) & (c <= b)
        return (start[None] + step > a) & (start[None] <= b)

    inside = along(1, True)[:, :, None] & along(0, True)[:, None, :]
    touched = along(1, False)[:, :, None] & along(0, False)[:, None, :]
    empty = ~inside.flatten(1).any(dim=1)
    inside = torch.where(empty[:, None, None], touched, inside)
    return torch.where(inside, BOX_MASK_LOGIT, -BOX_MASK_LOGIT)[:, None]
