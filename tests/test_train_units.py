"""Training building blocks: config, losses, schedule, parameter groups, episodes, RNG state."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medsam2.cli import train as train_cli
from medsam2.data.datasets import TrainingDataset
from medsam2.engine.frames import ArrayFrames
from medsam2.errors import ConfigError
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model
from medsam2.training.checkpointing import rng_state, set_rng_state
from medsam2.training.config import TrainConfig
from medsam2.training.episode import EpisodeModel
from medsam2.training.losses import LossConfig, MultiMaskLoss, binary_iou
from medsam2.training.optim import build_optimizer, enable_gradient_checkpointing, lr_factor, module_group
from medsam2.training.recipes import EpisodeSampler
from medsam2.training.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_config_round_trip_and_errors(tmp_path: Path) -> None:
    cfg = TrainConfig(data="d", out="o", preset="tiny", freeze=("image_encoder",), memory_options={"k": 2})
    path = tmp_path / "c.json"
    cfg.to_json(path)
    assert TrainConfig.from_json(path) == cfg
    cases: list[tuple[dict[str, Any], str]] = [
        ({"steps": 0}, "steps"),
        ({"lr": "x"}, "lr"),
        ({"recipe": "4d"}, "recipe"),
    ]
    for bad, field in cases:
        with pytest.raises(ConfigError, match=f"'{field}'"):
            cfg.replace(**bad)
    with pytest.raises(ConfigError, match="clip_lenght"):
        TrainConfig.from_dict({"clip_lenght": 3})
    with pytest.raises(ConfigError, match="'freeze'.*decoderr"):
        cfg.replace(freeze="decoderr")
    with pytest.raises(ConfigError, match="'init'"):
        cfg.replace(init="x.pt")  # and preset: both given
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="c.json"):
        TrainConfig.from_json(path)
    assert TrainConfig().frame_prompt_freq == 2 and TrainConfig(recipe="2d-one-prompt").frame_prompt_freq == 5


def test_cli_precedence(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    (tmp_path / "c.json").write_text(json.dumps({"steps": 7, "lr": 0.5, "clip_length": 3, "data": "a"}))
    argv = ["train", "--out", "r", "--preset", "nano", "--config", str(tmp_path / "c.json"), "--lr", "0.1"]
    args = parser.parse_args([*argv, "--set", "clip_length=5", "--set", 'freeze=["decoder"]'])
    cfg = train_cli.config_from_args(args)
    assert (cfg.data, cfg.steps, cfg.lr, cfg.clip_length, cfg.freeze, cfg.preset) == (
        "a",
        7,
        0.1,
        5,
        ("decoder",),
        "nano",
    )
    with pytest.raises(ConfigError, match="--init"):
        train_cli.config_from_args(parser.parse_args(["train", "--data", "a", "--out", "r"]))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        train_cli.config_from_args(parser.parse_args([*argv, "--set", "oops"]))


def test_loss_takes_best_candidate_and_real_iou() -> None:
    target = torch.zeros(16, 16, dtype=torch.bool)
    target[4:12, 4:12] = True
    good = torch.where(target, 10.0, -10.0)
    logits = torch.stack([-good, good, torch.full((16, 16), 10.0)])  # wrong, right, everything
    ious = torch.tensor([0.5, 0.5, 0.5])
    fn = MultiMaskLoss()
    parts = fn(logits, ious, torch.tensor([3.0]), target)
    alone = fn(good[None], ious[:1], torch.tensor([3.0]), target)
    assert torch.allclose(parts["mask"], alone["mask"]) and torch.allclose(parts["dice"], alone["dice"])
    real = binary_iou(logits, target)
    assert torch.allclose(real, torch.tensor([0.0, 1.0, 64 / 256]))
    assert torch.allclose(parts["iou"], ((ious - real) ** 2).mean())
    absent = fn(logits, ious, torch.tensor([3.0]), torch.zeros_like(target))
    assert absent["mask"] == 0 and absent["dice"] == 0 and absent["iou"] == 0
    assert torch.allclose(absent["object"], torch.nn.functional.softplus(torch.tensor(3.0)))
    bce = MultiMaskLoss(LossConfig(mask_loss="bce", bce_pos_weight=2.0, iou_all_candidates=False))
    b = bce(logits, ious, torch.tensor([3.0]), target)
    assert torch.allclose(b["iou"], (0.5 - torch.tensor(1.0)) ** 2)
    w = LossConfig()
    expected = w.mask * b["mask"] + w.dice * b["dice"] + w.iou * b["iou"] + w.object * b["object"]
    assert torch.allclose(b["total"], expected)


def test_schedule_and_param_groups() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    f = [lr_factor(s, cfg) for s in range(100)]
    assert f[0] == pytest.approx(1 / 11) and f[9] == pytest.approx(10 / 11) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False)) and f[-1] == pytest.approx(0.1, abs=1e-3)
    model = Sam2Model(get_preset("tiny"))
    cfg = TrainConfig(lr=1e-3, lr_memory=1e-8, lr_prompt_encoder=0.0, freeze=("image_encoder",))
    opt = build_optimizer(model, cfg)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["decoder"] == 1e-3 and lrs["memory"] == 1e-8 and not any("encoder" in n for n in lrs)
    for name, p in model.named_parameters():
        assert p.requires_grad == (module_group(name) in ("decoder", "memory")), name
    assert {g["weight_decay"] for g in opt.param_groups if g["name"].endswith("no_decay")} == {0.0}
    assert module_group("sam_mask_decoder.conv_s0.weight") == "decoder"
    assert module_group("obj_ptr_proj.layers.0.weight") == "memory"


def test_rng_state_survives_weights_only_load(tmp_path: Path) -> None:
    torch.manual_seed(3)
    np.random.seed(4)
    torch.save({"rng": rng_state()}, tmp_path / "s.pt")
    expected = (torch.rand(3), np.random.rand(3))
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("ds"), num_cases=3, shape=(24, 24, 16), num_classes=2
    )


def test_episodes_depend_only_on_seed_and_step(dataset: Path) -> None:
    cfg = TrainConfig(clip_length=6, prompt_freq=2, batch_size=2, clip_overhang=0.5)
    model_cfg = get_preset("tiny")
    a = EpisodeSampler(TrainingDataset(dataset), cfg, model_cfg)
    b = EpisodeSampler(TrainingDataset(dataset, cache_cases=1), cfg, model_cfg)
    seen_cases = set()
    for step in range(6):
        ea, eb = a.sample(step, 1), b.sample(step, 1)
        assert ea.info == eb.info and ea.memory_options == eb.memory_options
        for obj, prompts in ea.prompts.items():
            assert sorted(prompts) == [0, 2, 4]
            for f, p in prompts.items():
                q = eb.prompts[obj][f]
                assert np.array_equal(p.points, q.points)
                assert (p.box is None and q.box is None) or np.array_equal(
                    np.asarray(p.box), np.asarray(q.box)
                )
                if not ea.targets[obj][f].any():
                    assert p.mask is not None and not p.mask.any()  # empty-mask prompt where absent
        anchor = ea.info["objects"][0]
        assert any(m.any() for m in ea.targets[anchor]) and ea.num_frames == 6
        seen_cases.add(ea.info["case"])
    assert len(seen_cases) > 1
    assert a.sample(0, 0).info != a.sample(0, 1).info


def test_reversed_clips_run_from_the_top_slice(dataset: Path) -> None:
    model_cfg = get_preset("tiny")
    data = TrainingDataset(dataset)
    forward = EpisodeSampler(data, TrainConfig(clip_length=5, clip_reverse=0.0), model_cfg)
    backward = EpisodeSampler(data, TrainConfig(clip_length=5, clip_reverse=1.0), model_cfg)
    mixed = EpisodeSampler(data, TrainConfig(clip_length=5, clip_reverse=0.5), model_cfg)
    for step in range(4):
        ep = backward.sample(step, 0)
        assert ep.info["reversed"] and not forward.sample(step, 0).info["reversed"]
        cf = data.frames(data.names.index(ep.info["case"]), ep.info["axis"])
        start = ep.info["start"]
        expect = cf.image[start : start + 5][::-1]
        frames = ep.source
        assert isinstance(frames, ArrayFrames) and len(frames) == 5
        for obj, masks in ep.targets.items():
            want = cf.labels[start : start + 5][::-1] == obj
            assert all(np.array_equal(m, w) for m, w in zip(masks, want, strict=True))
            assert sorted(ep.prompts[obj]) == [0, 2, 4]  # the first prompt sits on the top slice
        assert np.array_equal(frames.frames, expect)
    flags = {mixed.sample(s, 0).info["reversed"] for s in range(12)}
    assert flags == {True, False}
    with pytest.raises(ConfigError, match="'clip_reverse'"):
        TrainConfig(clip_reverse=1.5)


def test_single_frame_episodes_are_one_prompted_slice_of_the_object(dataset: Path) -> None:
    model_cfg = get_preset("tiny")
    data = TrainingDataset(dataset)
    single = EpisodeSampler(data, TrainConfig(clip_length=5, single_frame=1.0), model_cfg)
    mixed = EpisodeSampler(data, TrainConfig(clip_length=5, single_frame=0.5), model_cfg)
    for step in range(6):
        ep = single.sample(step, 0)
        frames = ep.source
        assert isinstance(frames, ArrayFrames) and len(frames) == 1
        cf = data.frames(data.names.index(ep.info["case"]), ep.info["axis"])
        start = ep.info["start"]
        assert np.array_equal(frames.frames[0], cf.image[start])
        anchor = ep.info["objects"][0]
        assert ep.targets[anchor][0].any()  # the slice shows the object it prompts
        assert all(sorted(p) == [0] for p in ep.prompts.values())
    lengths = {len(mixed.sample(s, 0).source) for s in range(16)}
    assert lengths == {1, 5}
    with pytest.raises(ConfigError, match="'single_frame'"):
        TrainConfig(single_frame=-0.1)


def test_gradient_checkpointing_gives_the_same_gradients(dataset: Path) -> None:
    cfg = TrainConfig(clip_length=3)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = Sam2Model(get_preset("tiny")).train()
        if ckpt:
            assert enable_gradient_checkpointing(model) > 0
        episode = EpisodeSampler(TrainingDataset(dataset), cfg, model.config).sample(0, 0)
        loss, _ = EpisodeModel(model, MultiMaskLoss())(episode)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent.parent / "configs").glob("*.json")), ids=lambda p: p.name
)
def test_committed_training_configs_are_valid(path: Path) -> None:
    """Every config that scripts/ and docs/ point at loads and passes validation."""
    cfg = TrainConfig.from_json(path)
    assert cfg.steps > 0 and (cfg.init is None) != (cfg.preset is None)
