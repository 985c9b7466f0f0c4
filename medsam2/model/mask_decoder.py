"""SAM 2 mask decoder and the builder of the SAM heads (prompt encoder + mask decoder).

Learned output tokens (object score, IoU, 1 + `num_multimask_outputs` mask tokens) are
prepended to the prompt tokens and run through the two-way transformer together with the
image embedding.  Each mask token then drives a small hypernetwork MLP whose output is dotted
with the upscaled image embedding (4x the embedding resolution) to give one mask logit map.
Parameter names match the `sam_mask_decoder.*` entries of SAM 2 checkpoints.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from medsam2.config import ModelConfig
from medsam2.model.common import MLP, LayerNorm2d
from medsam2.model.prompt_encoder import PromptEncoder
from medsam2.model.transformer import TwoWayTransformer

__all__ = ["MaskDecoderOutput", "MaskDecoder", "build_sam_heads", "stability_scores"]

# Logit used for "object present" when the decoder has no object-score head (sigmoid(10) ~ 1).
_OBJECT_PRESENT_LOGIT = 10.0


class MaskDecoderOutput(NamedTuple):
    """What :meth:`MaskDecoder.forward` returns (unpacks like SAM 2's 4-tuple).

    masks: (B, M, 4h, 4w) low-resolution mask logits; M = num_multimask_outputs or 1.
    iou_pred: (B, M) predicted mask IoU (probabilities when the head ends in a sigmoid).
    sam_tokens: (B, M', C) mask-token outputs used for object pointers; M' = M for
        multimask output with `use_multimask_token_for_obj_ptr`, else 1 (single-mask token).
    object_score_logits: (B, 1) object-presence logits.
    """

    masks: Tensor
    iou_pred: Tensor
    sam_tokens: Tensor
    object_score_logits: Tensor


def stability_scores(mask_logits: Tensor, delta: float) -> Tensor:
    """IoU between a mask thresholded at +delta and at -delta: (..., H, W) -> (...).

    The score is 1 where no logit exceeds -delta (both masks empty).
    """
    flat = mask_logits.flatten(-2)
    inner = (flat > delta).sum(dim=-1).float()
    outer = (flat > -delta).sum(dim=-1).float()
    return torch.where(outer > 0, inner / outer, torch.ones_like(outer))


def _match_batch(x: Tensor, batch: int, what: str) -> Tensor:
    """Repeat each item of x (b, ...) consecutively so that it has `batch` items."""
    if x.shape[0] == batch:
        return x
    if x.shape[0] == 0 or batch % x.shape[0]:
        raise ValueError(f"{what}: batch {x.shape[0]} cannot be repeated to {batch} prompt sets")
    return torch.repeat_interleave(x, batch // x.shape[0], dim=0)


def _upscaling_stack(c: int) -> nn.Sequential:
    """Two stride-2 transposed convolutions C -> C/4 -> C/8 (weights at indices 0, 1, 3)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
        LayerNorm2d(c // 4),
        nn.GELU(),
        nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
        nn.GELU(),
    )


class MaskDecoder(nn.Module):
    """Predict mask logits, IoU scores and object scores from image and prompt embeddings.

    Args:
        transformer_dim: token / image-embedding width C.
        transformer: the two-way transformer (width C).
        num_multimask_outputs: masks predicted in multimask mode (3 in SAM).
        iou_head_depth / iou_head_hidden_dim: layers and width of the IoU MLP.
        use_high_res_features: add stride-4 / stride-8 backbone features (projected by
            `conv_s0` / `conv_s1`, see :meth:`project_high_res_features`) while upscaling.
        iou_prediction_use_sigmoid: end the IoU head with a sigmoid.
        pred_obj_scores: learn an object-score token and head; otherwise the score is +10.
        pred_obj_scores_mlp: 3-layer MLP object-score head instead of a linear one.
        use_multimask_token_for_obj_ptr: in multimask mode return the multimask tokens as
            `sam_tokens` (else always the single-mask token).
        dynamic_multimask_via_stability: in single-mask mode at eval time, fall back to the
            best (highest predicted IoU) multimask output when the single mask's stability
            score is below `dynamic_multimask_stability_thresh`.
        dynamic_multimask_stability_delta: logit offset of the stability score.
        dynamic_multimask_stability_thresh: minimum stability to keep the single mask.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        c = transformer_dim
        self.transformer_dim = c
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, c)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = _upscaling_stack(c)
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(c, c // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(c, c // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(c, c, c // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            c,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head: nn.Module = MLP(c, c, 1, 3) if pred_obj_scores_mlp else nn.Linear(c, 1)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def project_high_res_features(self, feat_s0: Tensor, feat_s1: Tensor) -> list[Tensor]:
        """Backbone features (B, C, 4h, 4w), (B, C, 2h, 2w) -> [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)].

        The result is what :meth:`forward` expects as `high_res_features` (SAM 2 applies these
        projections once per image, outside the decoder call).
        """
        if not self.use_high_res_features:
            raise RuntimeError("this decoder was built without high-resolution features")
        return [self.conv_s0(feat_s0), self.conv_s1(feat_s1)]

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> MaskDecoderOutput:
        """Decode masks.

        Args:
            image_embeddings: (B_img, C, h, w); B_img = B, or B_img divides B when `repeat_image`
                (each image is then repeated for B / B_img consecutive prompt sets).
            image_pe: (1, C, h, w), from :meth:`PromptEncoder.get_dense_pe`.
            sparse_prompt_embeddings: (B, N, C).
            dense_prompt_embeddings: (B, C, h, w).
            multimask_output: return the `num_multimask_outputs` multimask predictions
                instead of the single-mask prediction.
            repeat_image: allow B_img < B as above.
            high_res_features: [(B_img, C/8, 4h, 4w), (B_img, C/4, 2h, 2w)] already projected
                by `conv_s0` / `conv_s1`; required iff `use_high_res_features`.

        Returns:
            :class:`MaskDecoderOutput` (masks, iou_pred, sam_tokens, object_score_logits).
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self.select_stable_single_mask(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, :1], iou_pred[:, :1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens = mask_tokens_out[:, 1:]
        else:
            # the single-mask token is the object-memory token whenever multimask tokens are not used
            sam_tokens = mask_tokens_out[:, :1]
        return MaskDecoderOutput(masks, iou_pred, sam_tokens, object_score_logits)

    def predict_masks(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All outputs before selection (arguments as :meth:`forward`).

        Returns masks (B, 1+K, 4h, 4w), iou_pred (B, 1+K), mask tokens (B, 1+K, C) and object
        score logits (B, 1), where K = num_multimask_outputs and index 0 is the single mask.
        """
        batch = sparse_prompt_embeddings.shape[0]
        if image_pe.shape[0] != 1:
            raise ValueError("image_pe must have batch size 1 (see PromptEncoder.get_dense_pe)")
        if not repeat_image and image_embeddings.shape[0] != batch:
            raise ValueError(
                f"{image_embeddings.shape[0]} image embeddings for {batch} prompt sets; pass repeat_image=True"
            )
        src = _match_batch(image_embeddings, batch, "image_embeddings") + dense_prompt_embeddings
        pos = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape
        first = 1 if self.pred_obj_scores else 0
        tokens = torch.cat(
            [self._output_tokens().unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], 1
        )
        hs, keys = self.transformer(src, pos, tokens)
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens]
        upscaled = self._upscale(keys.transpose(1, 2).reshape(b, c, h, w), high_res_features, batch)
        masks = self._masks_from_tokens(mask_tokens_out, upscaled)
        iou_pred = self.iou_prediction_head(hs[:, first])
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = iou_pred.new_full((batch, 1), _OBJECT_PRESENT_LOGIT)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _output_tokens(self) -> Tensor:
        """(T, C) learned output tokens: [obj score,] iou, mask tokens."""
        parts = [self.obj_score_token.weight] if self.pred_obj_scores else []
        return torch.cat([*parts, self.iou_token.weight, self.mask_tokens.weight], dim=0)

    def _upscale(self, src: Tensor, high_res_features: list[Tensor] | None, batch: int) -> Tensor:
        """(B, C, h, w) -> (B, C/8, 4h, 4w), adding the projected high-res features when used."""
        if not self.use_high_res_features:
            out: Tensor = self.output_upscaling(src)
            return out
        if high_res_features is None or len(high_res_features) != 2:
            raise ValueError("high_res_features [feat_s0, feat_s1] are required by this decoder")
        up1, norm1, act1, up2, act2 = self.output_upscaling
        feat_s0 = _match_batch(high_res_features[0], batch, "high_res_features[0]")
        feat_s1 = _match_batch(high_res_features[1], batch, "high_res_features[1]")
        x = act1(norm1(up1(src) + feat_s1))
        out = act2(up2(x) + feat_s0)
        return out

    def _masks_from_tokens(self, mask_tokens_out: Tensor, upscaled: Tensor) -> Tensor:
        """Mask tokens (B, T, C) . upscaled embedding (B, C/8, H, W) -> (B, T, H, W) logits."""
        hyper = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        return (hyper @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)

    def select_stable_single_mask(self, all_masks: Tensor, all_iou: Tensor) -> tuple[Tensor, Tensor]:
        """Single-mask output with the stability fallback.

        all_masks (B, 1+K, H, W), all_iou (B, 1+K) -> (B, 1, H, W), (B, 1).  Keeps mask 0 where
        its stability score reaches the threshold, else the multimask output with the highest
        predicted IoU.
        """
        best = all_iou[:, 1:].argmax(dim=-1) + 1
        rows = torch.arange(all_iou.shape[0], device=all_iou.device)
        best_masks, best_iou = all_masks[rows, best].unsqueeze(1), all_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = all_masks[:, :1], all_iou[:, :1]
        stable = stability_scores(single_masks, self.dynamic_multimask_stability_delta)
        stable = stable >= self.dynamic_multimask_stability_thresh  # (B, 1)
        masks = torch.where(stable[..., None, None], single_masks, best_masks)
        iou = torch.where(stable, single_iou, best_iou)
        return masks, iou


def build_sam_heads(cfg: ModelConfig) -> tuple[PromptEncoder, MaskDecoder]:
    """Prompt encoder and mask decoder of a model described by `cfg` (backbone stride 16)."""
    side = cfg.image_size // 16
    prompt_encoder = PromptEncoder(
        embed_dim=cfg.d_model,
        image_embedding_size=(side, side),
        input_image_size=(cfg.image_size, cfg.image_size),
        mask_in_chans=cfg.mask_in_chans,
    )
    transformer = TwoWayTransformer(
        depth=cfg.decoder_depth,
        embedding_dim=cfg.d_model,
        num_heads=cfg.decoder_heads,
        mlp_dim=cfg.decoder_mlp_dim,
    )
    decoder = MaskDecoder(
        transformer_dim=cfg.d_model,
        transformer=transformer,
        num_multimask_outputs=cfg.num_multimask_outputs,
        iou_head_depth=cfg.iou_head_depth,
        iou_head_hidden_dim=cfg.iou_head_hidden_dim,
        use_high_res_features=cfg.use_high_res_features_in_sam,
        iou_prediction_use_sigmoid=cfg.iou_prediction_use_sigmoid,
        pred_obj_scores=cfg.pred_obj_scores,
        pred_obj_scores_mlp=cfg.pred_obj_scores_mlp,
        use_multimask_token_for_obj_ptr=cfg.use_multimask_token_for_obj_ptr,
        dynamic_multimask_via_stability=cfg.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=cfg.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=cfg.dynamic_multimask_stability_thresh,
    )
    return prompt_encoder, decoder
