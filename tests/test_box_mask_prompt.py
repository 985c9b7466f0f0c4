"""`box_mask_prompt`: models trained with it get a box as a dense mask as well as two corners.

SAM 2 checkpoints never set it (their decoder gets the corners only, tested against the reference
in test_video_parity.py / test_image_predictor.py); these tests pin down what the engine, the
image predictor and training do when a model does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medsam2 import ImagePredictor, VideoPredictor
from medsam2.errors import ConfigError
from medsam2.model.box_prompt import CLICK_MASK_LOGIT, CLICK_RADIUS, paint_clicks
from medsam2.model.checkpoint import load_model, save_model
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import BOX_MASK_LOGIT, Sam2Model, box_mask_logits
from medsam2.training.config import TrainConfig
from medsam2.training.trainer import build_model


@pytest.mark.parametrize(
    ("corners", "rows", "cols"),
    [
        # image 64 px -> 16 x 16 low-res pixels with centres at 2, 6, 10, ...
        (((8.0, 16.0), (24.0, 40.0)), (4, 10), (2, 6)),
        (((24.0, 40.0), (8.0, 16.0)), (4, 10), (2, 6)),  # corners in either order
        (((0.0, 0.0), (64.0, 64.0)), (0, 16), (0, 16)),  # the whole image
        # no centre inside: the pixels the box overlaps ([28, 32) and [32, 36)), never nothing
        (((31.0, 31.0), (33.0, 33.0)), (7, 9), (7, 9)),
        (((30.0, 5.0), (30.0, 5.0)), (1, 2), (7, 8)),  # a point-sized box: the pixel holding it
    ],
)
def test_box_mask_logits_marks_pixels_whose_centre_is_inside(
    corners: tuple[tuple[float, float], tuple[float, float]], rows: tuple[int, int], cols: tuple[int, int]
) -> None:
    out = box_mask_logits(torch.tensor([corners]), 64)
    assert out.shape == (1, 1, 16, 16)
    expected = torch.full((16, 16), -BOX_MASK_LOGIT)
    expected[rows[0] : rows[1], cols[0] : cols[1]] = BOX_MASK_LOGIT
    torch.testing.assert_close(out[0, 0], expected)


def _model(box_mask: bool) -> Sam2Model:
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny").replace(box_mask_prompt=box_mask)).eval()
    head = m.sam_mask_decoder.pred_obj_score_head
    with torch.no_grad():
        (head.layers[-1] if hasattr(head, "layers") else head).bias.fill_(20.0)
    return m


def _frames(t: int = 4, h: int = 72, w: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (t, h, w)).astype(np.uint8)


def _corners(size: int) -> torch.Tensor:
    """The box [12, 18, 60, 54] of a 72 x 96 frame in model pixels, (1, 2, 2)."""
    return torch.tensor([[[12 * size / 96, 18 * size / 72], [60 * size / 96, 54 * size / 72]]])


def _spy(model: Sam2Model) -> list[Any]:
    """Record the dense prompt of every decode call (None when there is none)."""
    seen: list[Any] = []
    decode: Callable[..., Any] = model.decode

    def spy(*args: Any, **kwargs: Any) -> Any:
        dense = args[3] if len(args) > 3 else kwargs.get("mask_inputs")
        seen.append(None if dense is None else dense.clone())
        return decode(*args, **kwargs)

    model.decode = spy  # type: ignore[method-assign]
    return seen


def test_video_box_prompt_gets_the_dense_box_on_every_answer_of_its_frame() -> None:
    model = _model(True)
    seen = _spy(model)
    vp = VideoPredictor(model)
    vp.start(_frames())  # 72 x 96 frames
    vp.add_prompt(0, 1, box=[12, 18, 60, 54])
    dense = box_mask_logits(_corners(model.image_size), model.image_size)
    torch.testing.assert_close(seen[-1], dense)
    vp.add_prompt(0, 1, points=[[30, 30]], labels=[0])  # a click after the box: the box again
    torch.testing.assert_close(seen[-1], dense)
    vp.add_prompt(1, 1, points=[[30, 30]], labels=[1])  # clicks only: no dense prompt
    assert seen[-1] is None
    list(vp.propagate())
    vp.add_prompt(1, 1, points=[[40, 30]], labels=[1])  # clicks on a tracked frame: its logits
    assert seen[-1] is not None and seen[-1].shape == dense.shape and not torch.equal(seen[-1], dense)
    vp.add_prompt(2, 1, box=[12, 18, 60, 54])  # a box on a tracked frame: the box, not its logits
    torch.testing.assert_close(seen[-1], dense)


@pytest.mark.parametrize(
    ("centre", "label", "value"),
    [
        ((20.0, 20.0), 0, -CLICK_MASK_LOGIT),  # a negative click inside the box
        ((20.0, 20.0), 1, CLICK_MASK_LOGIT),  # a positive one there differs from the box too
        ((60.0, 60.0), 1, CLICK_MASK_LOGIT),  # a positive click outside the box
    ],
)
def test_paint_clicks_puts_a_disc_of_the_click_sign_where_it_is(
    centre: tuple[float, float], label: int, value: float
) -> None:
    dense = box_mask_logits(torch.tensor([[[8.0, 8.0], [40.0, 40.0]]]), 64)  # 16 x 16, step 4
    pad = torch.tensor([[[0.0, 0.0]]]), torch.tensor([[-1]])  # padding points change nothing
    coords = torch.cat([torch.tensor([[centre]]), pad[0]], dim=1)
    out = paint_clicks(dense, coords, torch.cat([torch.tensor([[label]]), pad[1]], dim=1), 64)
    changed = (out != dense)[0, 0] | (out == value)[0, 0]
    rows, cols = changed.nonzero().T
    assert (out[0, 0][changed] == value).all()
    # the low-res pixels whose centres lie within CLICK_RADIUS pixels of the click
    cy, cx = centre[1] / 4 - 0.5, centre[0] / 4 - 0.5
    assert ((rows - cy) ** 2 + (cols - cx) ** 2 <= CLICK_RADIUS**2).all() and len(rows) >= 4
    assert torch.equal(out[(out != value)], dense[(out != value)])  # the rest is the box


def test_clicks_after_a_box_are_painted_into_the_dense_box_with_click_mask_prompt() -> None:
    model = _model(True)
    model.config = model.config.replace(click_mask_prompt=True)
    seen = _spy(model)
    vp = VideoPredictor(model)
    vp.start(_frames())  # 72 x 96 frames
    vp.add_prompt(0, 1, box=[12, 18, 60, 54])
    size = model.image_size
    dense = box_mask_logits(_corners(size), size)
    torch.testing.assert_close(seen[-1], dense)  # no click yet: the box alone
    vp.add_prompt(0, 1, points=[[30, 30]], labels=[0])
    click = torch.tensor([[[30 * size / 96, 30 * size / 72]]])
    want = paint_clicks(dense, click, torch.tensor([[0]]), size)
    assert not torch.equal(want, dense)
    torch.testing.assert_close(seen[-1], want)
    vp.add_prompt(1, 1, points=[[30, 30]], labels=[1])  # clicks only: still no dense prompt
    assert seen[-1] is None


def test_sam2_models_never_get_a_dense_box_and_correct_from_their_logits() -> None:
    model = _model(False)
    seen = _spy(model)
    vp = VideoPredictor(model)
    vp.start(_frames())
    vp.add_prompt(0, 1, box=[12, 18, 60, 54])
    assert seen == [None]
    session = vp.session
    assert session is not None
    first = session.objects[1].results[0].low_res_logits.clone()
    vp.add_prompt(0, 1, points=[[30, 30]], labels=[0])  # SAM 2's correction: the previous logits
    torch.testing.assert_close(seen[1], torch.clamp(first, -32.0, 32.0))


def test_image_predictor_box_equals_explicit_dense_box() -> None:
    image = _frames(1)[0]
    box = np.array([12.0, 18.0, 60.0, 54.0])
    with_flag = ImagePredictor(_model(True))
    with_flag.set_image(image)
    got = with_flag.predict(box=box, multimask=False)
    plain = ImagePredictor(_model(False))  # the same weights, without the flag
    plain.set_image(image)
    size = plain.model.image_size
    explicit = plain.predict(
        box=box, mask_input=box_mask_logits(_corners(size), size).numpy(), multimask=False
    )
    np.testing.assert_allclose(got.logits, explicit.logits, atol=1e-5)
    assert not np.allclose(got.logits, plain.predict(box=box, multimask=False).logits, atol=1e-3)


def test_training_sets_model_options_and_checkpoints_keep_them(tmp_path: Path) -> None:
    options = {"box_mask_prompt": True, "click_mask_prompt": True, "dynamic_multimask_via_stability": False}
    cfg = TrainConfig(data="d", out="o", preset="tiny", model_options=options)
    model = build_model(cfg, torch.device("cpu"))
    assert model.config.box_mask_prompt and not model.config.dynamic_multimask_via_stability
    assert not model.sam_mask_decoder.dynamic_multimask_via_stability  # the module reads the config
    plain = build_model(cfg.replace(model_options={}), torch.device("cpu")).config
    assert not plain.box_mask_prompt and plain.dynamic_multimask_via_stability
    loaded = load_model(save_model(model, tmp_path / "m.safetensors")).config
    assert loaded.box_mask_prompt and loaded.click_mask_prompt and not loaded.dynamic_multimask_via_stability


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_size": 128}, "unknown flag 'image_size'"),
        ({"box_mask_prompt": "yes"}, "box_mask_prompt must be true or false"),
        (["box_mask_prompt"], "must be an object"),
    ],
)
def test_bad_model_options_are_refused(options: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data="d", out="o", preset="tiny", model_options=options)


def test_info_says_how_boxes_are_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medsam2.cli.main import main

    for flag in (True, False):
        path = save_model(_model(flag), tmp_path / f"m{flag}.safetensors")
        assert main(["info", str(path)]) == 0
        out = capsys.readouterr().out
        assert ("dense box mask" in out) == flag and "click_mask_prompt" not in out
    model = _model(True)
    model.config = model.config.replace(click_mask_prompt=True)
    assert main(["info", str(save_model(model, tmp_path / "clicks.safetensors"))]) == 0
    assert "discs in the dense box" in capsys.readouterr().out
