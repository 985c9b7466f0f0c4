"""ImagePredictor: SAM 2 image preprocessing and prompt-to-mask, against the reference model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _reference import reference_model, require_reference
from PIL import Image

from medsam2 import ImagePredictor, load_model
from medsam2.engine.image_predictor import IMAGENET_MEAN, IMAGENET_STD, image_to_tensor
from medsam2.errors import InputError, PromptError


def _image(h: int = 300, w: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - 150) ** 2 + (xx - 220) ** 2 < 70**2
    grey = 50 + 140 * disc + rng.normal(0, 8, (h, w))
    return np.clip(np.stack([grey, grey * 0.8, grey * 0.6], -1), 0, 255).astype(np.uint8)


def test_preprocessing_matches_antialiased_resize() -> None:
    """ToTensor -> Resize(S) (antialiased bilinear) -> Normalize, as SAM 2's image transform."""
    img = _image()
    x = image_to_tensor(img, 128)
    for c in range(3):
        chan = Image.fromarray(img[..., c].astype(np.float32) / 255.0, mode="F")
        expected = np.asarray(chan.resize((128, 128), Image.Resampling.BILINEAR))
        expected = (expected - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(x[0, c].numpy(), expected, atol=1e-4)
    grey = image_to_tensor(img[..., 0], 64)
    unit = [grey[0, c] * IMAGENET_STD[c] + IMAGENET_MEAN[c] for c in range(3)]
    torch.testing.assert_close(unit[0], unit[1])  # a grey image becomes three equal channels
    torch.testing.assert_close(unit[0], unit[2])


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4, 4), np.uint8), "expected an"),
        (np.full((8, 8), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((8, 8), np.nan, np.float32), "NaN"),
        (np.zeros((8, 8), np.int64), "unsupported dtype"),
    ],
)
def test_bad_images(image: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        image_to_tensor(image, 64)


CASES = {
    "box": {"box": [150.0, 70.0, 300.0, 230.0]},
    "point": {"points": [[220.0, 150.0]], "labels": [1]},
    "box_and_points": {
        "box": [150.0, 70.0, 300.0, 230.0],
        "points": [[220.0, 150.0], [20.0, 20.0]],
        "labels": [1, 0],
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_matches_reference(case: str, tmp_path: Path) -> None:
    require_reference()
    ref = reference_model("sam2.1_hiera_t", 512)
    torch.save({"model": ref.state_dict()}, tmp_path / "w.pt")
    pred = ImagePredictor(load_model(tmp_path / "w.pt", image_size=512))
    img = _image()
    pred.set_image(img)
    prompt = CASES[case]
    ours = pred.predict(multimask=case == "point", **prompt)

    with torch.no_grad():  # the reference image predictor's steps below its torchvision transform
        x = image_to_tensor(img, 512)
        _, vf, _, sizes = ref._prepare_backbone_features(ref.forward_image(x))
        vf[-1] = vf[-1] + ref.no_mem_embed
        feats = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(vf, sizes, strict=True)]
        scale = torch.tensor([512 / 400, 512 / 300])
        coords, labels = [], []
        if "box" in prompt:
            coords.append(torch.tensor(prompt["box"]).view(2, 2))
            labels.append(torch.tensor([2, 3]))
        if "points" in prompt:
            coords.append(torch.tensor(prompt["points"]))
            labels.append(torch.tensor(prompt["labels"]))
        pts = (torch.cat(coords)[None] * scale, torch.cat(labels)[None].int())
        sparse, dense = ref.sam_prompt_encoder(points=pts, boxes=None, masks=None)
        low, iou, _, _ = ref.sam_mask_decoder(
            feats[-1],
            ref.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            case == "point",
            False,
            feats[:-1],
        )
        up = F.interpolate(low, (300, 400), mode="bilinear", align_corners=False)
    assert ours.masks.shape == (low.shape[1], 300, 400)
    np.testing.assert_allclose(ours.low_res_logits, torch.clamp(low, -32, 32)[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(ours.ious, iou[0].numpy(), atol=1e-4)
    assert (ours.masks == (up[0] > 0).numpy()).mean() > 0.999
    # the low-res logits feed back as a mask prompt
    again = pred.predict(mask_input=ours.low_res_logits[:1], multimask=False, **prompt)
    assert again.masks.shape == (1, 300, 400)


def test_predict_errors(tmp_path: Path) -> None:
    from medsam2.model.presets import get_preset
    from medsam2.model.sam2_model import Sam2Model

    pred = ImagePredictor(Sam2Model(get_preset("tiny")).eval())
    with pytest.raises(RuntimeError, match="set_image"):
        pred.predict(box=[0, 0, 1, 1])
    pred.set_image(_image())
    with pytest.raises(PromptError, match="x1 < x0"):
        pred.predict(box=[10, 0, 5, 5])
    with pytest.raises(PromptError, match="labels"):
        pred.predict(points=[[1, 1]])
