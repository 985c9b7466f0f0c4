"""Frames -> model tensors (resize, 3 channels, ImageNet normalisation), chunking, logits upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medsam2.errors import InputError
from medsam2.preprocessing import IMAGENET_MEAN, IMAGENET_STD, ModelFrames, to_model_frames, upsample_logits

MEAN = np.array(IMAGENET_MEAN)
STD = np.array(IMAGENET_STD)


def test_imagenet_constants() -> None:
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_one_pixel_without_resize(mode: str) -> None:
    frames = np.array([[[0.0, 0.25], [0.5, 1.0]]], dtype=np.float32)  # (1, 2, 2), already S x S
    out = to_model_frames(frames, 2, mode=mode)  # type: ignore[arg-type]
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0, :, 1, 0].numpy(), (0.5 - MEAN) / STD, rtol=1e-6)


def test_one_pixel_bilinear_upsampling_by_hand() -> None:
    a, b = 0.2, 0.6
    frames = np.array([[[a, b]]], dtype=np.float64)  # (1, 1, 2) -> 4 x 4
    out = to_model_frames(frames, 4)
    # column 1 of 4 samples source x = (1 + 0.5) * 2 / 4 - 0.5 = 0.25; a single source row
    expected = (0.75 * a + 0.25 * b - MEAN) / STD
    for row in range(4):
        np.testing.assert_allclose(out[0, :, row, 1].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), (a - MEAN) / STD, rtol=1e-6)  # edge clamps


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize(("h", "w", "s"), [(20, 30, 16), (9, 7, 16)])
def test_chunked_equals_full(mode: str, h: int, w: int, s: int) -> None:
    frames = np.random.default_rng(0).random((7, h, w)).astype(np.float32)
    full = to_model_frames(frames, s, mode=mode)  # type: ignore[arg-type]
    assert full.shape == (7, 3, s, s)
    mf = ModelFrames(frames, s, mode=mode)  # type: ignore[arg-type]
    pieces = list(mf.chunks(3))
    assert [start for start, _ in pieces] == [0, 3, 6]
    assert torch.equal(torch.cat([p for _, p in pieces]), full)
    assert torch.equal(to_model_frames(frames, s, start=2, stop=5, mode=mode), full[2:5])  # type: ignore[arg-type]
    assert len(mf) == 7 and mf.frame_size == (h, w)
    assert torch.equal(mf[4], full[4]) and torch.equal(mf[-1], full[6])
    with pytest.raises(IndexError):
        mf[7]


@pytest.mark.parametrize("size", [(40, 30), (100, 80)])
def test_bicubic_matches_pil(size: tuple[int, int]) -> None:
    """SAM 2's loader resizes with PIL bicubic; ours matches it on float images (up and down)."""
    img = np.random.default_rng(1).random(size).astype(np.float32)
    pil = np.asarray(Image.fromarray(img, mode="F").resize((64, 64), Image.Resampling.BICUBIC))
    ours = to_model_frames(img[None], 64, mode="bicubic")[0, 0].numpy() * STD[0] + MEAN[0]
    np.testing.assert_allclose(ours, np.clip(pil, 0, 1), atol=1e-5)


def test_rgb_frames_and_tensor_input() -> None:
    rgb = np.random.default_rng(2).random((2, 5, 6, 3)).astype(np.float32)
    out = to_model_frames(torch.from_numpy(rgb), 5)
    assert out.shape == (2, 3, 5, 5)
    grey = to_model_frames(rgb[..., 1], 5)
    assert torch.allclose(out[:, 1], grey[:, 1])
    same = to_model_frames(rgb[:, :5, :5], 5)
    expected = (rgb[0, 3, 4] - MEAN) / STD
    np.testing.assert_allclose(same[0, :, 3, 4].numpy(), expected, rtol=1e-6)


def test_output_stays_in_normalised_unit_range() -> None:
    frames = np.zeros((1, 8, 8), np.float32)
    frames[0, ::2] = 1.0  # a hard pattern that makes bicubic overshoot
    out = to_model_frames(frames, 13, mode="bicubic")
    lo = torch.tensor((0 - MEAN) / STD, dtype=torch.float32).view(3, 1, 1)
    hi = torch.tensor((1 - MEAN) / STD, dtype=torch.float32).view(3, 1, 1)
    assert torch.all(out[0] >= lo - 1e-6) and torch.all(out[0] <= hi + 1e-6)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": 16.0}, "image_size"),
        ({"mode": "nearest"}, "mode"),
        ({"start": 3, "stop": 3}, "range"),
        ({"start": 0, "stop": 9}, "range"),
        ({"start": -1}, "range"),
    ],
)
def test_to_model_frames_errors(kwargs: dict, needle: str) -> None:
    args = {"image_size": 8, **kwargs}
    with pytest.raises(InputError, match=needle):
        to_model_frames(np.zeros((4, 5, 5), np.float32), **args)


@pytest.mark.parametrize("shape", [(5, 5), (2, 5, 5, 2), (0, 5, 5)])
def test_bad_frame_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match="frames01"):
        to_model_frames(np.zeros(shape, np.float32), 8)


def test_model_frames_checks_options_up_front() -> None:
    with pytest.raises(InputError, match="mode"):
        ModelFrames(np.zeros((2, 4, 4)), 8, mode="area")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="chunk_size"):
        next(ModelFrames(np.zeros((2, 4, 4)), 8).chunks(0))


def test_upsample_logits() -> None:
    logits = torch.randn(2, 1, 8, 8)
    out = upsample_logits(logits, (20, 30))
    assert out.shape == (2, 1, 20, 30)
    assert torch.equal(out, F.interpolate(logits, (20, 30), mode="bilinear", align_corners=False))
    assert torch.equal(upsample_logits(logits, (8, 8)), logits)
    const = upsample_logits(torch.full((1, 1, 4, 4), -3.0), (9, 7))
    assert torch.allclose(const, torch.tensor(-3.0))
    with pytest.raises(InputError, match="logits"):
        upsample_logits(torch.zeros(1, 8, 8), (16, 16))
    with pytest.raises(InputError, match="size"):
        upsample_logits(logits, (0, 16))
