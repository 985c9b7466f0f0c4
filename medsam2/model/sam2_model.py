"""`Sam2Model`: the stateless SAM 2 network as building blocks the engine composes.

Holds the sub-networks under the checkpoint's parameter names and exposes tensor-in /
tensor-out steps: image encoding, prompt decoding, memory conditioning and memory encoding.
It keeps no per-video state; sessions, memory policies and propagation live in
`medsam2.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsam2.config import ModelConfig
from medsam2.errors import ConfigError
from medsam2.model.box_prompt import BOX_MASK_LOGIT, box_mask_logits, paint_clicks
from medsam2.model.common import MLP
from medsam2.model.image_encoder import build_image_encoder
from medsam2.model.mask_decoder import build_sam_heads
from medsam2.model.memory_attention import build_memory_attention
from medsam2.model.memory_encoder import build_memory_encoder
from medsam2.model.memory_kv import MemoryKeys, assemble_memory, project_memory

__all__ = [
    "Sam2Model",
    "FrameFeatures",
    "DecoderOutput",
    "MemoryInput",
    "PointerInput",
    "NO_OBJ_SCORE",
    "BOX_MASK_LOGIT",
    "box_mask_logits",
]

NO_OBJ_SCORE = -1024.0  # logit given to every pixel of a frame where the object is judged absent


@dataclass(frozen=True)
class FrameFeatures:
    """Encoder output of B frames, ready for decoding.

    vision: (B, C, h, w) top-level features (h = w = image_size / 16), before memory fusion.
    pos: (B, C, h, w) their sine position encoding.
    high_res: ((B, C/8, 4h, 4w), (B, C/4, 2h, 2w)) skip features (already projected by the
    decoder's conv_s0/conv_s1) or None when the model does not use them.
    """

    vision: Tensor
    pos: Tensor
    high_res: tuple[Tensor, Tensor] | None

    def select(self, index: Tensor | slice) -> FrameFeatures:
        hr = None if self.high_res is None else (self.high_res[0][index], self.high_res[1][index])
        return FrameFeatures(self.vision[index], self.pos[index], hr)


@dataclass(frozen=True)
class DecoderOutput:
    """Mask decoder result for B prompts (M = 3 with multimask output, else 1).

    low_res_multimasks (B, M, 4h, 4w) logits; high_res_multimasks (B, M, S, S);
    ious (B, M); low_res_masks / high_res_masks: the chosen mask (B, 1, ...);
    obj_ptr (B, C); object_score_logits (B, 1).
    """

    low_res_multimasks: Tensor
    high_res_multimasks: Tensor
    ious: Tensor
    low_res_masks: Tensor
    high_res_masks: Tensor
    obj_ptr: Tensor
    object_score_logits: Tensor


@dataclass(frozen=True)
class MemoryInput:
    """One remembered frame: features/pos (B, mem_dim, h, w) and its temporal slot.

    tpos: 0 for prompted frames, 1..num_maskmem-1 for others (num_maskmem-1 = nearest), or None
    for no temporal encoding (memories of unordered image sets).
    """

    features: Tensor
    pos_enc: Tensor
    tpos: int | None
    keys: MemoryKeys | None = None  # precomputed by `Sam2Model.memory_keys` (inference cache)


@dataclass(frozen=True)
class PointerInput:
    """One object pointer (B, C) and its temporal distance to the current frame."""

    pointer: Tensor
    tdiff: int


def sine_1d(positions: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """1D sine/cosine encoding: (N,) -> (N, dim), sines in the first half, cosines in the second."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=positions.device)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)
    ang = positions.float()[:, None] / freq
    return torch.cat((ang.sin(), ang.cos()), dim=-1)


class Sam2Model(nn.Module):
    """SAM 2 / SAM 2.1 network with checkpoint-compatible parameter names (see DESIGN.md §3)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.directly_add_no_mem_embed:
            raise ConfigError(
                "directly_add_no_mem_embed=False is not supported (no public checkpoint uses it; "
                "no_mem_pos_enc is kept only so checkpoints load strictly)"
            )
        self.config = config
        c, mem = config.d_model, config.mem_dim
        self.image_encoder = build_image_encoder(config)
        self.sam_prompt_encoder, self.sam_mask_decoder = build_sam_heads(config)
        self.memory_attention = build_memory_attention(config)
        self.memory_encoder = build_memory_encoder(config)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, c))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, c))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, c))
        self.obj_ptr_proj: nn.Module = MLP(c, c, c, 3) if config.use_mlp_for_obj_ptr_proj else nn.Linear(c, c)
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(c, mem) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        self.no_obj_embed_spatial: nn.Parameter | None = (
            nn.Parameter(torch.zeros(1, mem)) if config.no_obj_embed_spatial else None
        )
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)
        if self.no_obj_embed_spatial is not None:
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ image encoding
    def encode_image(self, images: Tensor) -> FrameFeatures:
        """images: (B, 3, S, S) normalised with ImageNet mean/std -> per-frame features."""
        out = self.image_encoder(images)
        fpn = list(out.backbone_fpn)
        high_res: tuple[Tensor, Tensor] | None = None
        if self.config.use_high_res_features_in_sam:
            high_res = (self.sam_mask_decoder.conv_s0(fpn[0]), self.sam_mask_decoder.conv_s1(fpn[1]))
        return FrameFeatures(out.vision_features, out.vision_pos_enc[-1], high_res)

    # ------------------------------------------------------------------ SAM heads
    def box_dense_prompt(self, points: tuple[Tensor, Tensor] | None) -> Tensor | None:
        """The dense prompt a model with ``box_mask_prompt`` gets for a box among ``points``
        (coords (1, N, 2) in model pixels, labels (1, N) with the corners labelled 2 and 3):
        (1, 1, S/4, S/4) logits from :func:`box_mask_logits`, with ``click_mask_prompt`` the
        clicks among ``points`` painted in (:func:`~medsam2.model.box_prompt.paint_clicks`);
        None for other models or no box."""
        if not self.config.box_mask_prompt or points is None:
            return None
        coords, labels = points
        first, second = (labels[0] == 2).nonzero(), (labels[0] == 3).nonzero()
        if not len(first) or not len(second):
            return None
        corners = torch.stack([coords[0, first[0, 0]], coords[0, second[0, 0]]])[None]
        dense = box_mask_logits(corners, self.image_size)
        if self.config.click_mask_prompt:
            dense = paint_clicks(dense, coords, labels, self.image_size)
        return dense

    def decode(
        self,
        pix_feat: Tensor,
        high_res: tuple[Tensor, Tensor] | None,
        points: tuple[Tensor, Tensor] | None = None,
        mask_inputs: Tensor | None = None,
        multimask: bool = False,
    ) -> DecoderOutput:
        """Prompt -> masks on (memory-conditioned) features pix_feat (B, C, h, w).

        points: coords (B, N, 2) in model-input pixels (0..S, x then y) and labels (B, N)
        (1 pos, 0 neg, 2/3 box corners, -1 padding); mask_inputs: (B, 1, H, W) logits,
        resized to the prompt encoder's 4h x 4w when needed.
        """
        b = pix_feat.shape[0]
        if points is None:
            coords = pix_feat.new_zeros(b, 1, 2)
            labels = -torch.ones(b, 1, dtype=torch.int32, device=pix_feat.device)
        else:
            coords, labels = points
        dense_in = None
        if mask_inputs is not None:
            size = tuple(self.sam_prompt_encoder.mask_input_size)
            dense_in = mask_inputs.float()
            if tuple(dense_in.shape[-2:]) != size:
                dense_in = F.interpolate(
                    dense_in, size=size, mode="bilinear", align_corners=False, antialias=True
                )
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=dense_in)
        low_multi, ious, tokens, obj_logits = self.sam_mask_decoder(
            image_embeddings=pix_feat,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=False,
            high_res_features=None if high_res is None else list(high_res),
        )
        return self._select(low_multi, ious, tokens, obj_logits, multimask)

    def _select(
        self, low_multi: Tensor, ious: Tensor, tokens: Tensor, obj_logits: Tensor, multimask: bool
    ) -> DecoderOutput:
        """Blank absent objects, upsample, keep the best candidate and derive the object pointer."""
        present = obj_logits > 0
        if self.config.pred_obj_scores:
            low_multi = torch.where(present[:, None, None], low_multi, NO_OBJ_SCORE)
        low_multi = low_multi.float()
        s = self.config.image_size
        high_multi = F.interpolate(low_multi, size=(s, s), mode="bilinear", align_corners=False)
        token = tokens[:, 0]
        if multimask:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(low_multi.shape[0], device=low_multi.device)
            low, high = low_multi[rows, best][:, None], high_multi[rows, best][:, None]
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low, high = low_multi, high_multi
        obj_ptr = self._gate_pointer(self.obj_ptr_proj(token), present.float())
        return DecoderOutput(low_multi, high_multi, ious, low, high, obj_ptr, obj_logits)

    def _gate_pointer(self, obj_ptr: Tensor, present: Tensor) -> Tensor:
        """Replace the pointer of absent objects by the learned `no_obj_ptr` (present: (B, 1))."""
        if not self.config.pred_obj_scores:
            return obj_ptr
        if self.config.soft_no_obj_ptr:
            raise NotImplementedError("soft_no_obj_ptr is not used by any public checkpoint")
        if self.config.fixed_no_obj_ptr:
            obj_ptr = present * obj_ptr
        return obj_ptr + (1 - present) * self.no_obj_ptr

    def mask_as_output(
        self, pix_feat: Tensor, high_res: tuple[Tensor, Tensor] | None, mask: Tensor
    ) -> DecoderOutput:
        """Use a binary mask prompt (B, 1, S, S) directly as the output (SAM 2's mask-input path)."""
        scale, bias = 20.0, -10.0
        m = mask.float()
        high = m * scale + bias
        low = F.interpolate(
            high,
            size=(high.shape[-2] // 4, high.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = m.new_ones(m.shape[0], 1)
        ptr = self.decode(pix_feat, high_res, mask_inputs=self.mask_downsample(m)).obj_ptr
        present = (m.flatten(1) > 0).any(dim=1, keepdim=True).float()
        obj_logits = scale * present + bias
        if self.config.pred_obj_scores:
            if self.config.fixed_no_obj_ptr:
                ptr = present * ptr
            ptr = ptr + (1 - present) * self.no_obj_ptr
        return DecoderOutput(low, high, ious, low, high, ptr, obj_logits)

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """SAM 2's rule for multimask output (one click on a new frame -> 3 candidates)."""
        cfg = self.config
        return (
            cfg.multimask_output_in_sam
            and (is_init_cond_frame or cfg.multimask_output_for_tracking)
            and cfg.multimask_min_pt_num <= num_points <= cfg.multimask_max_pt_num
        )

    # ------------------------------------------------------------------ memory
    def add_no_memory(self, feats: FrameFeatures) -> Tensor:
        """Features of a frame decoded without memory (B, C, h, w)."""
        return feats.vision + self.no_mem_embed.view(1, -1, 1, 1)

    def pointer_tokens(
        self, pointers: list[PointerInput], max_tdiff: int, batch: int
    ) -> tuple[Tensor, Tensor]:
        """Object pointers -> memory tokens (P * C/mem_dim, B, mem_dim) and their position encodings."""
        cfg = self.config
        c, mem = cfg.d_model, cfg.mem_dim
        ptrs = torch.stack([p.pointer.expand(batch, -1) for p in pointers], dim=0)  # (P, B, C)
        if cfg.add_tpos_enc_to_obj_ptrs:
            tdiff = torch.tensor([p.tdiff for p in pointers], device=ptrs.device, dtype=torch.float32)
            dim = c if cfg.proj_tpos_enc_in_obj_ptrs else mem
            pos = self.obj_ptr_tpos_proj(sine_1d(tdiff / max(max_tdiff, 1), dim))
            pos = pos[:, None, :].expand(-1, batch, mem)
        else:
            pos = ptrs.new_zeros(len(pointers), batch, mem)
        if mem < c:
            split = c // mem
            ptrs = ptrs.reshape(-1, batch, split, mem).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(split, dim=0)
        return ptrs, pos

    def condition_on_memory(
        self,
        feats: FrameFeatures,
        memories: list[MemoryInput],
        pointers: list[PointerInput],
        max_tdiff: int,
    ) -> Tensor:
        """Fuse the current frame's features with remembered frames and object pointers.

        memories: spatial memories (features (B, mem_dim, h, w)); pointers: object pointers;
        max_tdiff: the distance normalising pointer encodings (min(num_frames, 16) - 1 in SAM 2).
        Returns (B, C, h, w). With neither memories nor pointers, falls back to the no-memory path.
        """
        if not memories and not pointers:
            return self.add_no_memory(feats)
        if not self.training and not torch.is_grad_enabled():
            return self._condition_prepared(feats, memories, pointers, max_tdiff)
        b = feats.vision.shape[0]
        n = self.config.num_maskmem
        tokens, tokens_pos = [], []
        for m in memories:
            tokens.append(m.features.expand(b, -1, -1, -1).flatten(2).permute(2, 0, 1))
            enc = m.pos_enc.expand(b, -1, -1, -1).flatten(2).permute(2, 0, 1)
            tokens_pos.append(enc if m.tpos is None else enc + self.maskmem_tpos_enc[n - m.tpos - 1])
        num_ptr_tokens = 0
        if pointers and self.config.use_obj_ptrs_in_encoder:
            ptr_tok, ptr_pos = self.pointer_tokens(pointers, max_tdiff, b)
            tokens.append(ptr_tok)
            tokens_pos.append(ptr_pos)
            num_ptr_tokens = ptr_tok.shape[0]
        return self._attend(feats, torch.cat(tokens, 0), torch.cat(tokens_pos, 0), num_ptr_tokens)

    def memory_keys(self, features: Tensor, pos_enc: Tensor) -> MemoryKeys:
        """Cross-attention keys of one memory, features and pos_enc (1, mem_dim, h, w), for every
        memory-attention layer (computed once per memory and reused, see `MemoryInput.keys`)."""
        return project_memory(self.memory_attention, features, pos_enc)

    def _condition_prepared(
        self, feats: FrameFeatures, memories: list[MemoryInput], pointers: list[PointerInput], max_tdiff: int
    ) -> Tensor:
        """Inference path of `condition_on_memory`: per-memory keys reused, values unprojected."""
        b, c, h, w = feats.vision.shape
        n = self.config.num_maskmem
        slots = {t: self.maskmem_tpos_enc[n - t - 1] for t in {m.tpos for m in memories} if t is not None}
        items: list[tuple[MemoryKeys, Tensor | None]] = []
        for m in memories:
            keys = m.keys if m.keys is not None else self.memory_keys(m.features, m.pos_enc)
            items.append((keys, None if m.tpos is None else slots[m.tpos]))
        ptrs = None
        if pointers and self.config.use_obj_ptrs_in_encoder:
            ptrs = self.pointer_tokens(pointers, max_tdiff, b)
        prepared = assemble_memory(self.memory_attention, items, ptrs, b, (h, w))
        curr = feats.vision.flatten(2).permute(2, 0, 1)
        curr_pos = feats.pos.flatten(2).permute(2, 0, 1)
        out = self.memory_attention.forward_prepared(
            curr, curr_pos, prepared.layer_keys, prepared.values, (h, w)
        )
        return out.permute(1, 2, 0).reshape(b, c, h, w)

    def _attend(
        self, feats: FrameFeatures, memory: Tensor, memory_pos: Tensor, num_ptr_tokens: int
    ) -> Tensor:
        b, c, h, w = feats.vision.shape
        curr = feats.vision.flatten(2).permute(2, 0, 1)
        curr_pos = feats.pos.flatten(2).permute(2, 0, 1)
        out = self.memory_attention(
            curr=curr,
            curr_pos=curr_pos,
            memory=memory,
            memory_pos=memory_pos,
            num_obj_ptr_tokens=num_ptr_tokens,
        )
        return out.permute(1, 2, 0).reshape(b, c, h, w)

    def encode_memory(
        self, vision: Tensor, high_res_masks: Tensor, object_score_logits: Tensor, binarize: bool
    ) -> tuple[Tensor, Tensor]:
        """Memory of a decoded frame: vision (B, C, h, w) features before memory fusion,
        high_res_masks (B, 1, S, S) logits -> (features, pos_enc), each (B, mem_dim, h, w).

        binarize: threshold the mask at 0 instead of a sigmoid (SAM 2 does this for frames whose
        mask came from clicks, so the memory holds exactly what the user saw).
        """
        cfg = self.config
        mask = (high_res_masks > 0).float() if binarize else torch.sigmoid(high_res_masks)
        mask = mask * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        out = self.memory_encoder(vision, mask, skip_mask_sigmoid=True)
        features, pos = out[0], out[1]
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).float()[..., None, None]  # (B, 1, 1, 1)
            features = features + absent * self.no_obj_embed_spatial[..., None, None]
        return features, pos
