"""The dense box prompt of models trained with ``box_mask_prompt`` (embedded models only).

Such a model gets a box as SAM 2's two corner tokens and, on a frame without an earlier output,
also as a mask through the prompt encoder's mask-input path (docs/embedded_model.md, stage 6).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["BOX_MASK_LOGIT", "CLICK_MASK_LOGIT", "CLICK_RADIUS", "box_mask_logits", "paint_clicks"]

BOX_MASK_LOGIT = 10.0  # |logit| of the dense box prompt of models with `box_mask_prompt`
CLICK_MASK_LOGIT = 20.0  # |logit| of a click's disc in it (`click_mask_prompt`): unlike the box's
CLICK_RADIUS = 1.5  # the disc's radius, in pixels of the dense prompt (S/4 x S/4)


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


def paint_clicks(dense: Tensor, coords: Tensor, labels: Tensor, image_size: int) -> Tensor:
    """The dense box ``dense`` (B, 1, S/4, S/4) with each click of ``coords`` (B, N, 2, model
    pixels, x then y) / ``labels`` (B, N: 1 positive, 0 negative, others ignored) painted as a
    disc of radius ``CLICK_RADIUS`` low-res pixels, +CLICK_MASK_LOGIT or -CLICK_MASK_LOGIT, so a
    click inside the box (positive) or on it (negative) differs from the box itself."""
    side = dense.shape[-1]
    step = image_size / side
    centre = (torch.arange(side, device=dense.device, dtype=torch.float32) + 0.5) * step
    out = dense.clone()
    for b in range(coords.shape[0]):
        for (x, y), label in zip(coords[b].float(), labels[b], strict=True):
            if int(label) not in (0, 1):
                continue
            near = ((centre[None, :] - x) ** 2 + (centre[:, None] - y) ** 2) <= (CLICK_RADIUS * step) ** 2
            out[b, 0][near] = CLICK_MASK_LOGIT if int(label) == 1 else -CLICK_MASK_LOGIT
    return out
