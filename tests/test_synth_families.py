"""One-Prompt synthetic image sets: deterministic, one family per class, streams stay in a family."""

from __future__ import annotations

import numpy as np
import pytest

from medsam2.data.synth.families import SyntheticImageSets, family_image, parse_synth2d
from medsam2.data.union import open_dataset
from medsam2.errors import InputError

SETS = "synth2d:seed=2;cases=40;size=48;families=4"


def test_parse_defaults_and_values() -> None:
    spec = parse_synth2d("synth2d")
    assert (spec.seed, spec.cases, spec.size, spec.families) == (0, 6000, 128, 300)
    spec = parse_synth2d("synth2d:seed=3; cases=10 ;size=64;families=5")
    assert (spec.seed, spec.cases, spec.size, spec.families) == (3, 10, 64, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("synth2d:seed=x", "'seed=x'"),
        ("synth2d:brain=1", "key one of"),
        ("synth2d:cases=4;families=5", "families <= cases"),
        ("synth2d:size=16", "size >= 32"),
    ],
)
def test_parse_errors_name_the_text(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_synth2d(text)
    assert text in str(info.value)


def test_images_are_deterministic_visible_and_differ() -> None:
    spec = parse_synth2d(SETS)
    a, mask_a, info = family_image(spec, 5, [])
    b, mask_b, _ = family_image(spec, 5, [])
    assert np.array_equal(a, b) and np.array_equal(mask_a, mask_b)
    assert a.dtype == np.float32 and a.shape == (48, 48) and 0.0 <= a.min() and a.max() <= 1.0
    assert info["family"] == 1 and 20 <= mask_a.sum() < mask_a.size
    # the target is visible: its mean differs from the background's
    assert abs(float(a[mask_a].mean()) - float(a[~mask_a].mean())) > 0.05
    c, mask_c, _ = family_image(spec, 9, [])  # same family, another instance
    assert not np.array_equal(mask_a, mask_c) and not np.array_equal(a, c)


def test_image_sets_are_a_2d_case_source_with_one_class_per_family() -> None:
    sets = open_dataset(SETS, cache_cases=4)
    assert isinstance(sets, SyntheticImageSets) and sets.is_2d() and len(sets) == 40
    assert sets.classes == {1: "family_0", 2: "family_1", 3: "family_2", 4: "family_3"}
    index = sets.class_cases()
    assert index == {f + 1: list(range(f, 40, 4)) for f in range(4)}
    for i in (0, 7, 13):
        cf = sets.frames(i)
        assert cf.image.shape == (1, 48, 48) and cf.classes == (i % 4 + 1,)
    subset = open_dataset(SETS, ["synth2d_2_000013"])
    assert subset.class_cases() == {2: [0]}
    assert np.array_equal(subset.frames(0).image, sets.frames(13).image)
    with pytest.raises(InputError, match="unknown case 'synth2d_2_000040'"):
        open_dataset(SETS, ["synth2d_2_000040"])
    with pytest.raises(InputError, match="2D image and 3D volume datasets mixed"):
        open_dataset(f"{SETS},synth:seed=1;cases=5;size=32;depth=4")


def test_one_prompt_streams_stay_in_one_family_and_training_runs(tmp_path) -> None:  # noqa: ANN001
    from medsam2.config import ModelConfig
    from medsam2.training import TrainConfig, train
    from medsam2.training.recipes import EpisodeSampler

    cfg = TrainConfig(
        data=SETS,
        out=str(tmp_path / "run"),
        preset="tiny",
        recipe="2d-one-prompt",
        stream_length=4,
        prompt_freq=4,
        steps=2,
        val_split=0.1,
        val_cases=1,
        checkpoint_every=1000,
    )
    sampler = EpisodeSampler(open_dataset(SETS), cfg, ModelConfig())
    for step in range(3):
        ep = sampler.sample(step, 0)
        (cls,) = ep.targets
        assert {int(name.rsplit("_", 1)[1]) % 4 + 1 for name in ep.info["cases"]} == {cls}
        assert list(ep.prompts[cls]) == [0]
    result = train(cfg)
    assert len(result.history) == 2 and all(np.isfinite(h["loss"]) for h in result.history)
    assert 0.0 <= result.validations[-1]["dice"] <= 1.0
