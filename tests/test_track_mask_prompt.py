"""`track_mask_prompt`: a tracked frame of a model trained with it gets its neighbour's mask.

The neighbour is the frame decoded just before it in the same pass (the previous slice going
forward, the next one going backward); its low-res mask reaches the decoder as a dense prompt,
+-BOX_MASK_LOGIT, next to the memory. SAM 2 checkpoints never set the flag, and image sets
(unrelated images) never get a guide.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medsam2 import VideoPredictor
from medsam2.engine.image_set import ImageSetPredictor
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import BOX_MASK_LOGIT, Sam2Model
from medsam2.training.config import TrainConfig


def _model(guided: bool) -> Sam2Model:
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny").replace(track_mask_prompt=guided)).eval()
    head = m.sam_mask_decoder.pred_obj_score_head
    with torch.no_grad():  # every frame "present", so masks are not blanked
        (head.layers[-1] if hasattr(head, "layers") else head).bias.fill_(20.0)
    return m


def _frames(t: int, h: int = 72, w: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (t, h, w)).astype(np.uint8)


def _spy(model: Sam2Model) -> list[tuple[Any, torch.Tensor]]:
    """Record (dense prompt or None, low-res mask out) of every decode call, in order."""
    seen: list[tuple[Any, torch.Tensor]] = []
    decode: Callable[..., Any] = model.decode

    def spy(*args: Any, **kwargs: Any) -> Any:
        dense = args[3] if len(args) > 3 else kwargs.get("mask_inputs")
        out = decode(*args, **kwargs)
        seen.append((None if dense is None else dense.clone(), out.low_res_masks.detach().clone()))
        return out

    model.decode = spy  # type: ignore[method-assign]
    return seen


def _guide(low_res: torch.Tensor) -> torch.Tensor:
    return torch.where(low_res > 0, BOX_MASK_LOGIT, -BOX_MASK_LOGIT)


@pytest.mark.parametrize("one_shot", [False, True])
def test_tracked_frames_get_the_previous_frame_of_their_pass(one_shot: bool) -> None:
    model = _model(True)
    seen = _spy(model)
    vp = VideoPredictor(model, one_shot=one_shot)
    vp.start(_frames(6))
    vp.add_prompt(1, 1, points=[[40, 30]], labels=[1])
    vp.add_prompt(4, 1, points=[[50, 40]], labels=[1])
    outputs = list(vp.propagate())  # forward 1..5, then backward 0
    assert [o.frame_idx for o in outputs] == [1, 2, 3, 4, 5, 0]
    # decode calls: prompt 1, prompt 4 (on a fresh propagation), then tracked 2, 3, 5, 0
    calls = {"p1": 0, "p4": 1, 2: 2, 3: 3, 5: 4, 0: 5}
    assert len(seen) == 6
    assert seen[calls["p1"]][0] is None and seen[calls["p4"]][0] is None  # clicks: no dense prompt
    for frame, neighbour in ((2, "p1"), (3, 2), (5, "p4"), (0, "p1")):
        dense, _ = seen[calls[frame]]
        assert dense is not None, frame
        torch.testing.assert_close(dense, _guide(seen[calls[neighbour]][1]))
    # a guide that was all background or all object would make this test vacuous
    masks = [seen[calls[f]][1] > 0 for f in ("p1", 2, 3)]
    assert all(m.any() and not m.all() for m in masks)


def test_the_guide_changes_the_answer_and_nothing_on_prompted_frames() -> None:
    guided, plain = _model(True), _model(False)  # the same weights
    results = []
    for model in (guided, plain):
        vp = VideoPredictor(model)
        vp.start(_frames(3))
        vp.add_prompt(0, 1, points=[[40, 30]], labels=[1])
        results.append({o.frame_idx: o.logits for o in vp.propagate()})
    torch.testing.assert_close(results[0][0], results[1][0])  # the prompted frame: same
    assert not torch.allclose(results[0][1], results[1][1], atol=1e-3)


def test_models_without_the_flag_and_image_sets_get_no_guide() -> None:
    plain = _model(False)
    seen = _spy(plain)
    vp = VideoPredictor(plain)
    vp.start(_frames(4))
    vp.add_prompt(0, 1, points=[[40, 30]], labels=[1])
    list(vp.propagate())
    assert len(seen) == 4 and all(dense is None for dense, _ in seen)

    guided = _model(True)
    seen = _spy(guided)
    sets = ImageSetPredictor(guided)
    sets.start(_frames(4))
    sets.add_prompt(0, 1, points=[[40, 30]], labels=[1])
    assert len(sets.segment()) == 4
    assert len(seen) == 4 and all(dense is None for dense, _ in seen)


def test_training_can_set_the_flag() -> None:
    from medsam2.training.trainer import build_model

    cfg = TrainConfig(data="d", out="o", preset="tiny", model_options={"track_mask_prompt": True})
    assert build_model(cfg, torch.device("cpu")).config.track_mask_prompt


def test_info_says_how_frames_are_tracked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medsam2.cli.main import main
    from medsam2.model.checkpoint import save_model

    for flag in (True, False):
        path = save_model(_model(flag), tmp_path / f"m{flag}.safetensors")
        assert main(["info", str(path)]) == 0
        assert ("previous slice's mask" in capsys.readouterr().out) == flag
