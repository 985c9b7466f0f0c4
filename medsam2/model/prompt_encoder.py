"""SAM prompt encoder: points, boxes and a low-resolution mask turned into decoder inputs.

Sparse prompts (points, box corners) become one token each: a random-Fourier encoding of
the position plus a learned per-label vector.  A mask prompt becomes a dense map with the
shape of the image embedding; without one, a learned "no mask" vector is broadcast instead.
Parameter and buffer names match the `sam_prompt_encoder.*` entries of SAM 2 checkpoints.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from medsam2.model.common import LayerNorm2d

__all__ = ["PromptEncoder", "RandomFourierEncoding"]

# Point label conventions shared by SAM, SAM 2 and MedSAM-2.
LABEL_PADDING = -1
LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3
_NUM_POINT_TYPES = 4


class RandomFourierEncoding(nn.Module):
    """Positional encoding with fixed random spatial frequencies (Tancik et al. 2020).

    A point (x, y) normalised to [0, 1]^2 is mapped to [0, 1] -> [-1, 1], projected by the
    (2, F) Gaussian matrix `positional_encoding_gaussian_matrix`, multiplied by 2*pi and
    encoded as ``cat(sin, cos)``, giving 2F = `num_pos_feats * 2` channels.
    """

    positional_encoding_gaussian_matrix: Tensor

    def __init__(self, num_pos_feats: int, scale: float = 1.0) -> None:
        super().__init__()
        scale = scale if scale > 0 else 1.0
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def encode_unit(self, coords: Tensor) -> Tensor:
        """(..., 2) coordinates (x, y) in [0, 1] -> (..., 2F) encodings."""
        gauss = self.positional_encoding_gaussian_matrix
        proj = (2 * coords.to(gauss.dtype) - 1) @ gauss
        proj = proj * (2 * math.pi)
        return torch.cat([proj.sin(), proj.cos()], dim=-1)

    def encode_pixels(self, coords: Tensor, image_size: tuple[int, int]) -> Tensor:
        """(..., 2) pixel coordinates (x, y) in an image of `image_size` = (H, W) -> (..., 2F)."""
        height, width = image_size
        coords = coords.float()
        unit = torch.stack([coords[..., 0] / width, coords[..., 1] / height], dim=-1)
        return self.encode_unit(unit)

    def grid(self, size: tuple[int, int]) -> Tensor:
        """Encodings of the cell centres of an (h, w) grid: (2F, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        unit = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode_unit(unit).permute(2, 0, 1)

    def forward(self, size: tuple[int, int]) -> Tensor:
        """Alias of :meth:`grid`: (2F, h, w)."""
        return self.grid(size)


class PromptEncoder(nn.Module):
    """Encode point / box / mask prompts for the SAM mask decoder.

    Args:
        embed_dim: token width C (the decoder's transformer width).
        image_embedding_size: (h, w) of the image embedding the decoder attends to.
        input_image_size: (H, W) of the (padded) model input; point and box coordinates
            are pixels in this frame.
        mask_in_chans: hidden channels of the mask-downscaling convolutions.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
    ) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        self.embed_dim = embed_dim
        self.image_embedding_size: tuple[int, int] = (
            int(image_embedding_size[0]),
            int(image_embedding_size[1]),
        )
        self.input_image_size: tuple[int, int] = (int(input_image_size[0]), int(input_image_size[1]))
        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        # 0: negative point, 1: positive point, 2 / 3: box top-left / bottom-right corner
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(_NUM_POINT_TYPES))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        quarter = mask_in_chans // 4
        # indices 0, 1, 3, 4, 6 carry weights (checkpoint names `mask_downscaling.{i}`)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=2, stride=2),
            LayerNorm2d(quarter),
            nn.GELU(),
            nn.Conv2d(quarter, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        """Positional encoding of every image-embedding cell: (1, C, h, w)."""
        h, w = self.image_embedding_size
        return self.pe_layer.grid((h, w)).unsqueeze(0)

    def _label_table(self) -> Tensor:
        """(6, C) rows: padding, negative, positive, corner 2, corner 3, none (unknown labels)."""
        rows = [self.not_a_point_embed.weight]
        rows += [cast(nn.Embedding, emb).weight for emb in self.point_embeddings]
        rows.append(torch.zeros_like(self.not_a_point_embed.weight))
        return torch.cat(rows, dim=0)

    def embed_points(self, coords: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """Point tokens: coords (B, N, 2) pixels (x, y), labels (B, N) -> (B, N + pad, C).

        Positions are shifted by half a pixel to the pixel centre.  Label -1 tokens carry
        only `not_a_point_embed` (no position); labels 0..3 add their learned vector to the
        position encoding; any other label leaves the position encoding unchanged.  With
        `pad`, one padding token is appended (SAM does this when no box is given).
        """
        coords = coords + 0.5
        labels = labels.long()
        if pad:
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), LABEL_PADDING)], dim=1)
        pos = self.pe_layer.encode_pixels(coords, self.input_image_size)
        pos = pos.masked_fill((labels == LABEL_PADDING).unsqueeze(-1), 0.0)
        known = (labels >= LABEL_PADDING) & (labels <= LABEL_BOX_BOTTOM_RIGHT)
        rows = torch.where(known, labels + 1, torch.full_like(labels, _NUM_POINT_TYPES + 1))
        return pos + self._label_table()[rows]

    def embed_boxes(self, boxes: Tensor) -> Tensor:
        """Box tokens: boxes (B, 4) as (x0, y0, x1, y1) pixels -> (B, 2, C), one per corner.

        (B, K, 4) is also accepted and gives (B, 2K, C).
        """
        corners = boxes.reshape(boxes.shape[0], -1, 2)
        n_boxes = corners.shape[1] // 2
        corner_labels = torch.tensor([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], device=boxes.device)
        labels = corner_labels.repeat(n_boxes).unsqueeze(0).expand(boxes.shape[0], -1)
        return self.embed_points(corners, labels, pad=False)

    def embed_masks(self, masks: Tensor) -> Tensor:
        """Mask prompt (B, 1, 4h, 4w) logits -> dense embedding (B, C, h, w)."""
        out: Tensor = self.mask_downscaling(masks)
        return out

    def forward(
        self,
        points: tuple[Tensor, Tensor] | None,
        boxes: Tensor | None,
        masks: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Embed the given prompts.

        Args:
            points: (coords (B, N, 2) as (x, y) in input-image pixels, labels (B, N) int) with
                labels 1 positive, 0 negative, -1 padding, 2 / 3 box corners; or None.
            boxes: (B, 4) as (x0, y0, x1, y1) input-image pixels, or None.
            masks: (B, 1, 4h, 4w) mask logits, or None.

        Returns:
            sparse: (B, N', C) with N' = N (+1 padding token when points are given without a
                box) + 2 per box; N' = 0 without points and boxes.
            dense: (B, C, h, w); the broadcast `no_mask_embed` when `masks` is None.
            B is taken from points, else boxes, else masks, else 1.
        """
        bs = self._batch_size(points, boxes, masks)
        weight = self.no_mask_embed.weight
        parts = [weight.new_empty(bs, 0, self.embed_dim)]
        if points is not None:
            parts.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1)
        if masks is not None:
            dense = self.embed_masks(masks)
        else:
            h, w = self.image_embedding_size
            dense = weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense

    @staticmethod
    def _batch_size(points: tuple[Tensor, Tensor] | None, boxes: Tensor | None, masks: Tensor | None) -> int:
        if points is not None:
            return int(points[0].shape[0])
        if boxes is not None:
            return int(boxes.shape[0])
        if masks is not None:
            return int(masks.shape[0])
        return 1
