"""One-shot propagation (`VideoPredictor(one_shot=True)`, used by `segment_volume`): the same
masks as an interactive session, with per-frame state that does not grow with the sequence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from medsam2 import VideoPredictor
from medsam2.engine.memory import FifoPolicy
from medsam2.engine.retention import expiry_schedule
from medsam2.errors import PromptError
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model


@pytest.fixture(scope="module")
def model() -> Sam2Model:
    """Random tiny weights, object-score head biased to 'present' so that memories carry masks."""
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny")).eval()
    with torch.no_grad():
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return m


def _volume(t: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """(t, size, size) uint8 slices of a noisy ellipsoid that grows then shrinks (a synthetic organ)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((t, size, size), np.uint8)
    for k in range(t):
        r = 0.3 * np.sqrt(max(1.0 - ((k - t / 2) / (0.55 * t)) ** 2, 0.0)) + 0.02
        inside = ((yy - 0.5) / r) ** 2 + ((xx - 0.45 - 0.003 * k) / (0.8 * r)) ** 2 <= 1
        out[k] = np.clip(50 + 140 * inside + rng.normal(0, 12, (size, size)), 0, 255)
    return out


def _prompted(
    model: Sam2Model, frames: np.ndarray, one_shot: bool, memory: str, **opts: Any
) -> VideoPredictor:
    """Object 1 boxed on the middle slice, object 2 clicked on two other slices."""
    vp = VideoPredictor(model, memory=memory, one_shot=one_shot, **opts)
    vp.start(frames)
    t = len(frames)
    vp.add_prompt(t // 2, 1, box=[16, 18, 46, 44])
    vp.add_prompt(t // 3, 2, points=[[30, 32]], labels=[1])
    vp.add_prompt(t - 4, 2, points=[[31, 31], [5, 5]], labels=[1, 0])
    return vp


def _run(vp: VideoPredictor, direction: str = "both") -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    return [(o.frame_idx, o.logits, o.object_scores) for o in vp.propagate(direction=direction)]  # type: ignore[arg-type]


POLICIES = [
    ("fifo", {}),
    ("fifo", {"stride": 2, "max_cond_frames": 2}),
    ("fifo", {"num_maskmem": 3, "max_obj_ptrs": 4}),
    ("self-sorting", {"capacity": 4}),
]


@pytest.mark.parametrize(("memory", "opts"), POLICIES)
@pytest.mark.parametrize("direction", ["both", "backward"])
def test_one_shot_gives_bit_identical_outputs(
    model: Sam2Model, memory: str, opts: dict, direction: str
) -> None:
    frames = _volume(40)
    want = _run(_prompted(model, frames, False, memory, **opts), direction)
    got = _run(_prompted(model, frames, True, memory, **opts), direction)
    assert [f for f, _, _ in got] == [f for f, _, _ in want]
    for (f, logits, scores), (_, ref_logits, ref_scores) in zip(got, want, strict=True):
        assert torch.equal(logits, ref_logits), f"frame {f}: logits differ"
        assert torch.equal(scores, ref_scores), f"frame {f}: object scores differ"
    assert any((logits > 0).any() for _, logits, _ in want)  # the masks are not all empty


def _peak_kept(model: Sam2Model, t: int, one_shot: bool, memory: str, **opts: Any) -> tuple[int, int, int]:
    """(most results, most memory entries held by one object at any step, results left at the end)."""
    vp = _prompted(model, _volume(t), one_shot, memory, **opts)
    results = entries = 0
    for _ in vp.propagate():
        objs = vp.session.objects.values()  # type: ignore[union-attr]
        results = max(results, *(len(o.results) for o in objs))
        entries = max(entries, *(len(o.policy) for o in objs))
    left = sum(len(o.results) for o in vp.session.objects.values())  # type: ignore[union-attr]
    return results, entries, left


@pytest.mark.parametrize(("memory", "opts"), [("fifo", {}), ("self-sorting", {"capacity": 4})])
def test_one_shot_state_does_not_grow_with_the_sequence(model: Sam2Model, memory: str, opts: dict) -> None:
    cfg = model.config
    # fifo: what SAM 2's rule reaches, behind the frame being decoded and (for the backward pass)
    # beyond the prompted frame; self-sorting: its bank's capacity
    reach = max(cfg.num_maskmem - 1, cfg.max_obj_ptrs_in_encoder - 1)
    bound = 2 + (2 * reach + 1 if memory == "fifo" else opts["capacity"])  # + object 2's prompted frames
    for t in (48, 96):
        results, entries, left = _peak_kept(model, t, True, memory, **opts)
        assert results == 2  # object 2's prompted frames: a tracked frame's result goes once output
        assert left == 3  # only the prompted frames' results outlive the propagation
        assert entries <= bound, (t, entries)
    # an interactive session keeps every frame, so the same measures grow with the sequence
    results, entries, left = _peak_kept(model, 96, False, memory, **opts)
    assert (results, left) == (96, 2 * 96)
    assert entries == (96 if memory == "fifo" else bound)


def test_one_shot_keeps_both_directions_reach() -> None:
    """Frames just after the prompt stay until the backward pass has read its last pointer."""
    plan = [(f, False) for f in range(20, 40)] + [(f, True) for f in range(19, -1, -1)]
    step = {f: s for s, (f, _) in enumerate(plan)}
    schedule = expiry_schedule(FifoPolicy(num_maskmem=7, max_obj_ptrs=16), plan, 40)
    assert schedule is not None
    expires = {f: s for s, fs in schedule.items() for f in fs}
    assert expires[21] == step[6]  # backward frame 6 is the last whose 15-frame pointer window reaches 21
    assert expires[30] == step[15]  # backward frame 15 is the last that reads 30 (pointers 16..30)
    assert expires[39] == step[39]  # the last forward frame is read by no one: dropped once output
    assert expires[0] == step[0]


def test_one_shot_refuses_corrections_but_repropagates(model: Sam2Model) -> None:
    frames = _volume(30)
    vp = _prompted(model, frames, True, "fifo")
    first = _run(vp)
    with pytest.raises(PromptError, match="one-shot"):
        vp.add_prompt(10, 1, points=[[30, 30]])
    obj = vp.session.objects[1]  # type: ignore[union-attr]
    assert 10 not in obj.prompts  # the refused prompt was not stored
    vp.add_prompt(10, 3, box=[10, 10, 40, 40])  # a new object: a first prompt, not a correction
    again = _run(vp)
    assert all(torch.equal(a[1][:2], b[1]) for a, b in zip(again, first, strict=True))
