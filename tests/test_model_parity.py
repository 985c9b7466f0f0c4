"""End-to-end parity of `Sam2Model` (loaded through `load_model`) with the reference SAM2Base.

Reference models get random, perturbed weights (tests/_reference.py), are saved as
`{"model": state_dict}` and loaded back through our loader, so these tests cover the key names,
the loader and the maths together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _reference import reference_model, require_reference

from medsam2 import load_model
from medsam2.model.sam2_model import MemoryInput, PointerInput, Sam2Model

require_reference()


@pytest.fixture(autouse=True)
def _inference_only():
    """Parity runs need no autograd; scoped to these tests (a global switch would leak)."""
    with torch.no_grad():
        yield


def _ours(name: str, size: int, tmp: Path) -> tuple[Sam2Model, torch.nn.Module]:
    ref = reference_model(name, size)
    path = tmp / f"{name}.pt"
    torch.save({"model": ref.state_dict()}, path)
    return load_model(path, image_size=size), ref


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.fixture(scope="module", params=["sam2_hiera_t", "sam2.1_hiera_t"])
def pair512(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    model, ref = _ours(request.param, 512, tmp_path_factory.mktemp("ckpt"))
    torch.manual_seed(1)
    x = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        ref_out = ref.forward_image(x)
        _, vf, vp, sizes = ref._prepare_backbone_features(ref_out)
        return model, ref, x, model.encode_image(x), (vf, vp, sizes)


def test_backbone_features_and_pos(pair512) -> None:
    model, ref, x, feats, (vf, vp, sizes) = pair512
    h, w = sizes[-1]
    assert _maxdiff(feats.vision, vf[-1].permute(1, 2, 0).view(1, -1, h, w)) <= 1e-4
    assert _maxdiff(feats.pos, vp[-1].permute(1, 2, 0).view(1, -1, h, w)) <= 1e-4
    for ours, theirs, s in zip(feats.high_res, vf[:-1], sizes[:-1], strict=True):
        assert _maxdiff(ours, theirs.permute(1, 2, 0).view(1, -1, *s)) <= 1e-4


PROMPTS = {
    "one_positive": ([[200.0, 180.0]], [1], False),
    "pos_neg": ([[200.0, 180.0], [300.0, 330.0]], [1, 0], False),
    "box": ([[120.0, 100.0], [380.0, 400.0]], [2, 3], False),
    "box_point": ([[120.0, 100.0], [380.0, 400.0], [250.0, 260.0]], [2, 3, 1], False),
    "multimask": ([[256.0, 256.0]], [1], True),
}


@pytest.mark.parametrize("case", list(PROMPTS))
def test_prompt_to_masks(pair512, case: str) -> None:
    model, ref, x, feats, (vf, vp, sizes) = pair512
    coords, labels, multimask = PROMPTS[case]
    pts = torch.tensor([coords]), torch.tensor([labels], dtype=torch.int32)
    h, w = sizes[-1]
    pix_ref = (vf[-1] + ref.no_mem_embed).permute(1, 2, 0).view(1, -1, h, w)
    hr_ref = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(vf[:-1], sizes[:-1], strict=True)]
    r = ref._forward_sam_heads(
        pix_ref, {"point_coords": pts[0], "point_labels": pts[1]}, None, hr_ref, multimask_output=multimask
    )
    o = model.decode(model.add_no_memory(feats), feats.high_res, pts, None, multimask)
    assert _maxdiff(o.low_res_multimasks, r[0]) <= 1e-3
    assert _maxdiff(o.ious, r[2]) <= 1e-4
    assert _maxdiff(o.low_res_masks, r[3]) <= 1e-3
    assert _maxdiff(o.obj_ptr, r[5]) <= 1e-4
    assert _maxdiff(o.object_score_logits, r[6]) <= 1e-4


@pytest.mark.parametrize("binarize", [False, True])
def test_memory_encoder(pair512, binarize: bool) -> None:
    model, ref, x, feats, (vf, vp, sizes) = pair512
    torch.manual_seed(2)
    masks = torch.randn(1, 1, 512, 512) * 4
    for score in (2.0, -3.0):  # object present / absent (no_obj_embed_spatial in 2.1)
        logits = torch.tensor([[score]])
        ref.binarize_mask_from_pts_for_mem_enc = binarize
        rf, rp = ref._encode_new_memory(vf, sizes, masks, logits, is_mask_from_pts=True)
        of, op = model.encode_memory(feats.vision, masks, logits, binarize=binarize)
        assert _maxdiff(of, rf) <= 1e-4
        assert _maxdiff(op, rp[-1]) <= 1e-4


def test_memory_conditioning(pair512) -> None:
    """Memory attention on identical memories (a prompted frame, two recent frames, pointers)."""
    model, ref, x, feats, (vf, vp, sizes) = pair512
    g = torch.Generator().manual_seed(3)
    h, w = sizes[-1]

    def fake(t: int) -> dict:
        return {
            "maskmem_features": torch.randn(1, 64, h, w, generator=g),
            "maskmem_pos_enc": [torch.randn(1, 64, h, w, generator=g)],
            "obj_ptr": torch.randn(1, 256, generator=g),
        }

    outs = {0: fake(0), 2: fake(2), 3: fake(3)}
    output_dict = {"cond_frame_outputs": {0: outs[0]}, "non_cond_frame_outputs": {2: outs[2], 3: outs[3]}}
    expected = ref._prepare_memory_conditioned_features(
        frame_idx=4,
        is_init_cond_frame=False,
        current_vision_feats=vf[-1:],
        current_vision_pos_embeds=vp[-1:],
        feat_sizes=sizes[-1:],
        output_dict=output_dict,
        num_frames=8,
    )
    # SAM 2's order: prompted frame (slot 0), then older to newer (frame 2 = slot 5, frame 3 = slot 6)
    memories = [
        MemoryInput(outs[t]["maskmem_features"], outs[t]["maskmem_pos_enc"][0], tpos)
        for t, tpos in ((0, 0), (2, 5), (3, 6))
    ]
    signed = model.config.use_signed_tpos_enc_to_obj_ptrs
    pointers = [
        PointerInput(outs[0]["obj_ptr"], 4),
        PointerInput(outs[3]["obj_ptr"], 1),
        PointerInput(outs[2]["obj_ptr"], 2),
    ]
    assert signed or all(p.tdiff >= 0 for p in pointers)
    got = model.condition_on_memory(feats, memories, pointers, max_tdiff=7)
    assert _maxdiff(got, expected) <= 1e-4


def test_image_encoder_1024(tmp_path: Path) -> None:
    model, ref = _ours("sam2.1_hiera_t", 1024, tmp_path)
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(4))
    _, vf, vp, sizes = ref._prepare_backbone_features(ref.forward_image(x))
    feats = model.encode_image(x)
    assert _maxdiff(feats.vision, vf[-1].permute(1, 2, 0).view(1, -1, *sizes[-1])) <= 1e-4
    pts = torch.tensor([[[500.0, 400.0]]]), torch.tensor([[1]], dtype=torch.int32)
    pix_ref = (vf[-1] + ref.no_mem_embed).permute(1, 2, 0).view(1, -1, *sizes[-1])
    hr_ref = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(vf[:-1], sizes[:-1], strict=True)]
    r = ref._forward_sam_heads(pix_ref, {"point_coords": pts[0], "point_labels": pts[1]}, None, hr_ref, True)
    o = model.decode(model.add_no_memory(feats), feats.high_res, pts, None, True)
    assert _maxdiff(o.low_res_masks, r[3]) <= 1e-3
    assert _maxdiff(o.ious, r[2]) <= 1e-4


def test_bf16_v1_checkpoint_like_medsam2_paper(tmp_path: Path) -> None:
    """The MedSAM-2 paper's file: {"model": ...}, bfloat16, v1 key names (Hiera-T)."""
    ref = reference_model("sam2_hiera_t", 512)
    sd16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    path = tmp_path / "MedSAM2_pretrain.pth"
    torch.save({"model": sd16}, path)
    model = load_model(path, image_size=512)
    assert model.config.name == "sam2_hiera_t"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(5))
    _, vf, _, sizes = ref._prepare_backbone_features(ref.forward_image(x))
    ours = model.encode_image(x).vision
    theirs = vf[-1].permute(1, 2, 0).view(1, -1, *sizes[-1])
    rel = float((ours - theirs).norm() / theirs.norm())
    assert rel < 0.05, f"bf16 weights drift {rel:.3g} from the fp32 reference"
    for k, v in model.state_dict().items():  # exact upcast of the stored values
        assert torch.equal(v, sd16[k].float()), k
