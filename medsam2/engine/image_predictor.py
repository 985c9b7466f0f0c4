"""`ImagePredictor`: SAM-style prompt-to-mask on a single 2D image (holds a `Sam2Model`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medsam2.engine.frames import unit_float
from medsam2.errors import InputError, PromptError
from medsam2.model.sam2_model import FrameFeatures, Sam2Model
from medsam2.preprocessing.resize import IMAGENET_MEAN, IMAGENET_STD, to_model_frames

__all__ = ["ImagePredictor", "ImagePrediction", "image_to_tensor", "IMAGENET_MEAN", "IMAGENET_STD"]


@dataclass(frozen=True)
class ImagePrediction:
    """masks (M, H, W) bool at the input resolution; ious (M,); low_res_logits (M, 4h, 4w)
    (feed one back as `mask_input` to refine); logits (M, H, W) float before thresholding."""

    masks: np.ndarray
    ious: np.ndarray
    low_res_logits: np.ndarray
    logits: np.ndarray


def image_to_tensor(image: np.ndarray, image_size: int, name: str = "image") -> Tensor:
    """(H, W) or (H, W, 3) uint8 [0, 255] / float [0, 1] -> (1, 3, S, S) normalised model input.

    Same as SAM 2's image transforms: scale to [0, 1], resize to S x S (bilinear, antialiased),
    ImageNet mean/std.
    """
    arr = unit_float(np.asarray(image), name)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or Inf values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise InputError(
            f"{name}: float images must lie in [0, 1] (got {arr.min():.4g}..{arr.max():.4g}); "
            "normalise first, e.g. with medsam2.preprocessing intensity windows"
        )
    return to_model_frames(arr[None], image_size)


class ImagePredictor:
    """Prompt a single image: `set_image` once, then `predict` with points / box / mask.

    Coordinates are pixels of the image given to `set_image`: x = column, y = row.
    """

    def __init__(self, model: Sam2Model, mask_threshold: float = 0.0) -> None:
        self.model = model
        self.mask_threshold = mask_threshold
        self._features: FrameFeatures | None = None
        self._embed: Tensor | None = None
        self._hw: tuple[int, int] = (0, 0)

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """Encode `image` ((H, W) or (H, W, 3); uint8 or float in [0, 1])."""
        arr = np.asarray(image)
        x = image_to_tensor(arr, self.model.image_size).to(self.model.device)
        feats = self.model.encode_image(x)
        self._features = feats
        self._embed = self.model.add_no_memory(feats)
        self._hw = (int(arr.shape[0]), int(arr.shape[1]))

    def _prompt_points(
        self, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None
    ) -> tuple[Tensor, Tensor] | None:
        h, w = self._hw
        scale = torch.tensor([self.model.image_size / w, self.model.image_size / h])
        coords, labs = [], []
        if box is not None:
            b = np.asarray(box, dtype=np.float32).reshape(-1)
            if b.shape != (4,) or not np.isfinite(b).all():
                raise PromptError(f"box: expected 4 finite numbers x0,y0,x1,y1, got {box!r}")
            if b[2] < b[0] or b[3] < b[1]:
                raise PromptError(f"box: x1 < x0 or y1 < y0 in {b.tolist()}")
            coords.append(torch.from_numpy(b.reshape(2, 2)))
            labs.append(torch.tensor([2, 3], dtype=torch.int32))
        if points is not None:
            pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            if labels is None:
                raise PromptError("labels: required with points (1 positive, 0 negative)")
            lab = np.asarray(labels).reshape(-1)
            if len(lab) != len(pts):
                raise PromptError(f"labels: {len(lab)} labels for {len(pts)} points")
            if not set(lab.tolist()) <= {0, 1}:
                raise PromptError(f"labels: must be 0 or 1, got {sorted(set(lab.tolist()))}")
            coords.append(torch.from_numpy(pts))
            labs.append(torch.from_numpy(lab.astype(np.int32)))
        if not coords:
            return None
        dev = self.model.device
        return (torch.cat(coords)[None] * scale).to(dev), torch.cat(labs)[None].to(dev)

    @torch.no_grad()
    def predict(
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = True,
    ) -> ImagePrediction:
        """points (N, 2) x,y + labels (N,); box (4,) x0,y0,x1,y1; mask_input (1, 4h, 4w) or (4h, 4w)
        low-res logits from an earlier call. Returns masks at the image's resolution."""
        if self._features is None or self._embed is None:
            raise RuntimeError("call set_image() before predict()")
        prompt = self._prompt_points(points, labels, box)
        dense = None
        if mask_input is not None:
            dense = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32).to(self.model.device)
            dense = dense.reshape(1, 1, *dense.shape[-2:])
        m = self.model
        if dense is None:
            dense = m.box_dense_prompt(prompt)
        if prompt is None:
            prompt = (self._embed.new_zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32, device=m.device))
        sparse, dense_emb = m.sam_prompt_encoder(points=prompt, boxes=None, masks=dense)
        hr = self._features.high_res
        low, ious, _, _ = m.sam_mask_decoder(
            image_embeddings=self._embed,
            image_pe=m.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense_emb,
            multimask_output=multimask,
            repeat_image=False,
            high_res_features=None if hr is None else list(hr),
        )
        logits = F.interpolate(low.float(), size=self._hw, mode="bilinear", align_corners=False)
        low = torch.clamp(low, -32.0, 32.0)
        return ImagePrediction(
            masks=(logits > self.mask_threshold)[0].cpu().numpy(),
            ious=ious[0].float().cpu().numpy(),
            low_res_logits=low[0].float().cpu().numpy(),
            logits=logits[0].cpu().numpy(),
        )
