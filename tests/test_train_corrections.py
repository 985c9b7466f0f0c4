"""Corrective clicks in training (`medsam2.training.corrections`): where the clicks fall, that they
go through the inference step a user's correction takes, and that every answer is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medsam2.data.datasets import TrainingDataset
from medsam2.data.synth import SyntheticCases
from medsam2.errors import ConfigError
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model
from medsam2.training.config import TrainConfig
from medsam2.training.corrections import error_click
from medsam2.training.episode import EpisodeModel, resize_mask, run_corrections, run_episode
from medsam2.training.losses import MultiMaskLoss
from medsam2.training.recipes import EpisodeSampler
from medsam2.training.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("ds"), num_cases=3, shape=(24, 24, 16), num_classes=2
    )


def test_error_click_falls_on_an_error_with_its_label() -> None:
    target = torch.zeros(8, 8, dtype=torch.bool)
    target[2:5, 2:5] = True
    rng = np.random.default_rng(0)
    assert error_click(target.clone(), target, rng) is None  # nothing to correct
    missed = target.clone()
    missed[3, 4] = False
    assert error_click(missed, target, rng) == (4, 3, 1)  # x, y of the one missed pixel, positive
    spill = target.clone()
    spill[6, 1] = True
    assert error_click(spill, target, rng) == (1, 6, 0)  # the one spilled pixel, negative
    both = target.clone()
    both[2:5, 2] = False  # 3 missed
    both[7, 5:8] = True  # 3 spilled
    clicks = {error_click(both, target, np.random.default_rng(s)) for s in range(40)}
    assert clicks == {(2, 2, 1), (2, 3, 1), (2, 4, 1), (5, 7, 0), (6, 7, 0), (7, 7, 0)}  # uniform over errors


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"correction_clicks": -1}, "correction_clicks"),
        ({"correction_prob": 1.5}, "correction_prob"),
        ({"tracker": "boxes"}, "tracker"),
    ],
)
def test_correction_options_are_checked(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        TrainConfig(**options)


def test_corrections_leave_the_episodes_as_they_were(dataset: Path) -> None:
    """Turning corrections on draws after everything else: the same frames, targets and prompts."""
    model_cfg = get_preset("tiny")
    data = TrainingDataset(dataset)
    base = EpisodeSampler(data, TrainConfig(clip_length=4, single_frame=0.5), model_cfg)
    corr = EpisodeSampler(
        data,
        TrainConfig(clip_length=4, single_frame=0.5, correction_clicks=3, tracker="box-chain"),
        model_cfg,
    )
    counts = set()
    for step in range(12):
        a, b = base.sample(step, 0), corr.sample(step, 0)
        assert a.info == b.info and a.corrections == 0 and a.tracker == "memory"
        assert b.tracker == "box-chain"
        for obj in a.prompts:
            for f, p in a.prompts[obj].items():
                q = b.prompts[obj][f]
                assert np.array_equal(p.points, q.points) and np.array_equal(p.labels, q.labels)
                assert (p.box is None) == (q.box is None)
        counts.add(b.corrections)
    assert counts == {0, 1, 2, 3}  # half of the episodes (correction_prob 0.5), 1..3 clicks


@pytest.mark.parametrize("tracker", ["memory", "box-chain"])
def test_each_click_is_decoded_again_and_every_answer_is_scored(dataset: Path, tracker: str) -> None:
    """One-slice episodes with 3 corrective clicks: the prompt gains them one by one, each on an
    error of the answer before it (positive where the target is), the replaced answers come back
    for the loss, the episode's own prompts stay as drawn, and the loss reaches the decoder."""
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny")).train()
    cfg = TrainConfig(
        clip_length=4, single_frame=1.0, correction_clicks=3, correction_prob=1.0, tracker=tracker
    )
    sampler = EpisodeSampler(TrainingDataset(dataset), cfg, model.config)
    episode = next(e for s in range(20) if (e := sampler.sample(s, 0)).corrections == 3)
    drawn = {o: {f: p.points.copy() for f, p in ps.items()} for o, ps in episode.prompts.items()}
    session = run_episode(model, episode, model.device)
    earlier = run_corrections(model, session, episode)
    size = session.image_size
    for obj_id, prompts in episode.prompts.items():
        for f, prompt in prompts.items():
            assert np.array_equal(prompt.points, drawn[obj_id][f])  # the episode's record is untouched
            now = session.objects[obj_id].prompts[f]
            added = len(now.points) - len(prompt.points)
            assert added == 3
            target = resize_mask(episode.targets[obj_id][f], size, model.device)
            h, w = episode.source.frame_size(f)
            for (x, y), label in zip(now.points[-added:], now.labels[-added:], strict=True):
                col, row = round(x * size / w), round(y * size / h)
                assert label == int(target[row, col])
    assert len(earlier) == 3 * sum(len(p) for p in episode.prompts.values())
    again = run_episode(model, episode, model.device)  # the same episode: the same clicks
    run_corrections(model, again, episode)
    for obj_id in episode.prompts:
        for f in episode.prompts[obj_id]:
            assert np.array_equal(
                again.objects[obj_id].prompts[f].points, session.objects[obj_id].prompts[f].points
            )
    loss, stats = EpisodeModel(model, MultiMaskLoss())(episode)
    assert stats["corrections"] == len(earlier)
    loss.backward()
    decoder = [p for n, p in model.named_parameters() if "mask_decoder" in n]
    assert decoder and all(p.grad is not None for p in decoder if p.requires_grad)


def test_a_box_that_does_not_say_its_part_is_scored_only_after_the_clicks() -> None:
    """Generated parts (a label whose box is also a larger structure's) always get clicks, and
    their box-only answer is left out of the loss; other episodes are scored as before."""
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny")).train()
    cfg = TrainConfig(
        single_frame=1.0,
        max_objects=1,
        prompt_box=1.0,
        prompt_click=0.0,
        correction_clicks=2,
        correction_prob=0.0,  # only the parts get clicks here
        tracker="box-chain",
    )
    data = SyntheticCases("synth:seed=3;cases=12;size=48;depth=6;part=1.0")
    sampler = EpisodeSampler(data, cfg, model.config)
    episodes = [sampler.sample(s, 0) for s in range(12)]
    parts = [e for e in episodes if e.info.get("box_ambiguous")]
    assert parts and len(parts) < len(episodes)
    assert all(e.corrections == 0 for e in episodes if not e.info.get("box_ambiguous"))
    for ep in parts:
        assert ep.info["box_ambiguous"] == [1] and ep.corrections in (1, 2)
        session = run_episode(model, ep, model.device)
        earlier = run_corrections(model, session, ep)
        clicks = len(session.objects[1].prompts[0].points)
        assert clicks == ep.corrections  # every click was made ...
        assert len(earlier) == clicks - 1  # ... and the box-only answer is not among the scored
        loss, stats = EpisodeModel(model, MultiMaskLoss())(ep)
        assert torch.isfinite(loss) and stats["corrections"] == clicks - 1
