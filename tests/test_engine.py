"""Engine behaviour on the tiny preset: caching, directions, objects, corrections, absence,
One-Prompt image sets. (Numbers against the reference live in test_video_parity.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam2 import ImageSetPredictor, VideoPredictor
from medsam2.engine.session import FrameFeatures
from medsam2.errors import PromptError
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model


def _score_bias(model: Sam2Model) -> torch.Tensor:
    head = model.sam_mask_decoder.pred_obj_score_head
    return (head.layers[-1] if hasattr(head, "layers") else head).bias


@pytest.fixture(scope="module")
def model() -> Sam2Model:
    """Random tiny weights, with the object-score head biased to 'present' so that masks (and
    hence memories) carry information instead of all being the empty-object constant."""
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny")).eval()
    with torch.no_grad():
        _score_bias(m).fill_(20.0)
    return m


def _frames(t: int = 10, h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w), np.uint8)
    for i in range(t):
        disc = (yy - h / 2) ** 2 + (xx - 20 - 5 * i) ** 2 < 12**2
        out[i] = np.clip(40 + 150 * disc + rng.normal(0, 5, (h, w)), 0, 255)
    return out


def test_bidirectional_covers_every_frame_once(model: Sam2Model) -> None:
    vp = VideoPredictor(model)
    vp.start(_frames())
    vp.add_prompt(5, 1, box=[10, 20, 40, 50])
    outs = list(vp.propagate())
    assert [o.frame_idx for o in outs] == [5, 6, 7, 8, 9, 4, 3, 2, 1, 0]
    assert all(o.logits.shape == (1, 72, 96) for o in outs)
    fwd = [o.frame_idx for o in VideoPredictor_run(model, "forward")]
    bwd = [o.frame_idx for o in VideoPredictor_run(model, "backward")]
    assert fwd == [5, 6, 7, 8, 9] and bwd == [5, 4, 3, 2, 1, 0]


def VideoPredictor_run(model: Sam2Model, direction: str) -> list:
    vp = VideoPredictor(model)
    vp.start(_frames())
    vp.add_prompt(5, 1, box=[10, 20, 40, 50])
    return list(vp.propagate(direction=direction))


def test_feature_cache_is_bounded(model: Sam2Model) -> None:
    vp = VideoPredictor(model, cache_size=3)
    session = vp.start(_frames(t=30))
    vp.add_prompt(0, 1, points=[[30, 36]], labels=[1])
    sizes = []
    for _ in vp.propagate(direction="forward"):
        sizes.append(len(session.cache))
    assert max(sizes) <= 3
    assert session.cache.misses == 30  # each frame encoded once in a forward pass
    # what it holds are the last three frames, least recently used first
    held = session.cache.values()

    def encode_again(index: int) -> FrameFeatures:
        raise AssertionError(f"frame {index} should still be cached")

    again = [session.cache.get(i, encode_again) for i in (27, 28, 29)]
    assert len(held) == 3 and all(a is b for a, b in zip(again, held, strict=True))


def test_objects_are_independent(model: Sam2Model) -> None:
    alone = VideoPredictor(model)
    alone.start(_frames())
    alone.add_prompt(0, 1, box=[10, 20, 40, 50])
    ref = {o.frame_idx: o.logits[0] for o in alone.propagate()}
    both = VideoPredictor(model)
    both.start(_frames())
    both.add_prompt(0, 1, box=[10, 20, 40, 50])
    both.add_prompt(3, 2, points=[[70, 10]], labels=[1])
    for o in both.propagate():
        assert o.obj_ids == (1, 2)
        torch.testing.assert_close(o.logits[0], ref[o.frame_idx], atol=1e-5, rtol=0)


def test_correction_repropagates_and_keeps_other_prompts(model: Sam2Model) -> None:
    vp = VideoPredictor(model)
    session = vp.start(_frames())
    vp.add_prompt(0, 1, box=[10, 20, 40, 50])
    before = {o.frame_idx: o.logits.clone() for o in vp.propagate()}
    corrected = vp.add_prompt(6, 1, points=[[50, 36], [5, 5]], labels=[1, 0])
    assert session.objects[1].prompted_frames() == [0, 6]
    after = {o.frame_idx: o for o in vp.propagate()}
    torch.testing.assert_close(after[6].logits, corrected.logits)  # the correction is kept
    torch.testing.assert_close(after[0].logits, before[0])  # the first prompt is untouched
    changed = [f for f in range(1, 10) if f != 6 and not torch.equal(after[f].logits, before[f])]
    assert changed, "frames tracked after a correction should see the new prompt in memory"


def test_clicks_accumulate_and_clear(model: Sam2Model) -> None:
    vp = VideoPredictor(model)
    s = vp.start(_frames())
    vp.add_prompt(2, 1, box=[10, 20, 40, 50])
    vp.add_prompt(2, 1, points=[[30, 30]], labels=[1])
    p = s.objects[1].prompts[2]
    assert p.box is not None and len(p.points) == 1
    vp.add_prompt(2, 1, points=[[31, 31]], labels=[0], clear=True)
    p = s.objects[1].prompts[2]
    assert p.box is None and p.labels.tolist() == [0]


def test_absent_object_comes_out_empty(model: Sam2Model) -> None:
    vp = VideoPredictor(model)
    vp.start(_frames())
    empty = vp.add_prompt(4, 1, mask=np.zeros((72, 96), bool))
    assert not empty.masks.any() and float(empty.object_scores[0]) < 0
    bias = _score_bias(model)
    with torch.no_grad():
        saved = bias.clone()
        bias.fill_(-50.0)  # the model now judges the object absent on every tracked frame
    try:
        for o in vp.propagate():
            if o.frame_idx != 4:
                assert float(o.object_scores[0]) < 0 and not o.masks.any()
    finally:
        with torch.no_grad():
            bias.copy_(saved)


def test_mask_prompt_is_the_output(model: Sam2Model) -> None:
    vp = VideoPredictor(model)
    vp.start(_frames())
    mask = np.zeros((72, 96), bool)
    mask[20:50, 30:70] = True
    out = vp.add_prompt(1, 1, mask=mask)
    agreement = (out.masks[0].numpy() == mask).mean()
    assert agreement > 0.98


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame": 10, "box": [1, 1, 5, 5]}, "frame 10 does not exist"),
        ({"frame": 0, "box": [20, 1, 5, 5]}, "x1 < x0"),
        ({"frame": 0, "points": [[200, 5]]}, "outside the frame"),
        ({"frame": 0, "points": [[2, 5]], "labels": [3]}, "must be 1"),
        ({"frame": 0, "mask": np.zeros((5, 5))}, "does not match frame 0"),
        ({"frame": 0}, "at least one of points, box or mask"),
    ],
)
def test_bad_prompts(model: Sam2Model, kwargs: dict, message: str) -> None:
    vp = VideoPredictor(model)
    vp.start(_frames())
    with pytest.raises(PromptError, match=message):
        vp.add_prompt(obj_id=1, **kwargs)


def test_propagate_without_prompts(model: Sam2Model) -> None:
    vp = VideoPredictor(model)
    vp.start(_frames())
    with pytest.raises(PromptError, match="no prompts"):
        list(vp.propagate())


def test_self_sorting_runs_on_volumes(model: Sam2Model) -> None:
    vp = VideoPredictor(model, memory="self-sorting", capacity=4, seed=3)
    vp.start(_frames(t=12))
    vp.add_prompt(6, 1, box=[20, 20, 50, 50])
    a = [o.logits for o in vp.propagate()]
    b = [o.logits for o in vp.propagate()]  # same seed, same session -> same result
    assert len(a) == 12
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)


def test_image_set_is_independent_of_file_order(model: Sam2Model) -> None:
    rng = np.random.default_rng(1)
    images = [np.clip(rng.normal(100, 40, (60 + 4 * i, 80, 3)), 0, 255).astype(np.uint8) for i in range(6)]
    box = [10, 10, 40, 40]

    def run(perm: list[int]) -> dict[int, torch.Tensor]:
        ip = ImageSetPredictor(model, retrieval="sample", k=3, seed=7)
        # a list of arrays of different sizes is not one ndarray: use one source per size
        from medsam2.engine.frames import ImageListFrames  # noqa: F401 (documented alternative)

        ip.start(_ArrayList([images[i] for i in perm]))
        ip.add_prompt(perm.index(2), 1, box=box)
        res = ip.segment()
        return {perm[i]: out.logits for i, out in res.items()}

    a, b = run([0, 1, 2, 3, 4, 5]), run([5, 3, 1, 0, 2, 4])
    assert sorted(a) == list(range(6))
    for i in range(6):
        torch.testing.assert_close(a[i], b[i])


class _ArrayList:
    """A FrameSource over a list of differently sized uint8 images."""

    def __init__(self, images: list[np.ndarray]) -> None:
        from medsam2.engine.frames import ArrayFrames

        self.parts = [ArrayFrames(im[None]) for im in images]
        self.frames = images

    def __len__(self) -> int:
        return len(self.parts)

    def frame_size(self, index: int) -> tuple[int, int]:
        return self.parts[index].frame_size(0)

    def load(self, index: int, image_size: int) -> torch.Tensor:
        return self.parts[index].load(0, image_size)
