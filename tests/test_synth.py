"""Domain-randomised synthetic training data: deterministic, every source usable, targets as promised."""

from __future__ import annotations

import numpy as np
import pytest

from medsam2.data.synth import SyntheticCases, generate_case, parse_synth
from medsam2.data.synth.cases import DEFAULT_WEIGHTS
from medsam2.data.synth.sources import SHELLS, paint_shells
from medsam2.data.synth.targets import (
    MIN_AREA,
    OTHER,
    TARGET,
    boundary_contrast,
    choose_targets,
    part_labels,
    whole_labels,
)
from medsam2.data.union import DatasetUnion, open_dataset
from medsam2.errors import InputError
from medsam2.training.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = "synth:seed=3;cases=50;size=48;depth=6"


def only(kind: str) -> str:
    weights = ";".join(f"{k}={1 if k == kind else 0}" for k in DEFAULT_WEIGHTS)
    return f"{SMALL};{weights}"


def test_parse_defaults_values_and_weights() -> None:
    spec = parse_synth("synth")
    assert (spec.seed, spec.cases, spec.size, spec.depth) == (0, 100_000, 128, 10)
    spec = parse_synth("synth:seed=7;cases=10;size=64;depth=4;brain=2.5")
    assert (spec.seed, spec.cases, spec.size, spec.depth, spec.weights["brain"]) == (7, 10, 64, 4, 2.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("synth:colour=3", "unknown key"),
        ("synth:seed=x", "'seed=x'"),
        ("synth:seed", "expected key=value"),
        ("synth:size=8", "size >= 16"),
        ("synth:" + ";".join(f"{k}=0" for k in DEFAULT_WEIGHTS), "not all 0"),
    ],
)
def test_parse_errors_name_the_text(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_synth(text)
    assert text in str(err.value)


@pytest.mark.parametrize("kind", list(DEFAULT_WEIGHTS))
def test_every_source_gives_a_case_with_a_visible_target(kind: str) -> None:
    spec = parse_synth(only(kind))
    image, labels, info = generate_case(spec, 0)
    assert info["kind"] == kind
    assert image.shape == labels.shape == (6, 48, 48) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
    assert set(np.unique(labels)) <= {0, TARGET, OTHER}
    assert (labels[3] == TARGET).sum() >= MIN_AREA  # the middle slice holds the target
    again = generate_case(spec, 0)
    assert np.array_equal(again[0], image) and np.array_equal(again[1], labels)  # (seed, index) only


def test_cases_differ_and_follow_the_seed() -> None:
    a = generate_case(parse_synth(SMALL), 1)[1]
    b = generate_case(parse_synth(SMALL), 2)[1]
    c = generate_case(parse_synth(SMALL.replace("seed=3", "seed=4")), 1)[1]
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_targets_group_foreground_and_second_object() -> None:
    fine = np.zeros((3, 40, 40), np.int64)
    fine[:, 5:25, 5:25] = 1
    fine[:, 10:20, 10:20] = 2  # inside 1
    fine[:, 28:38, 28:38] = 3  # apart
    kinds = set()
    for seed in range(40):
        out = choose_targets(fine, {"pair": (1, 2)}, np.random.default_rng(seed))
        assert out is not None
        labels, info = out
        kinds.add(info["target"])
        chosen = set(info["labels"])
        assert np.array_equal(labels == TARGET, np.isin(fine, list(chosen)))
        assert not (labels == OTHER).any() or chosen.isdisjoint(set(np.unique(fine[labels == OTHER])))
        if info["target"] == "group":
            assert chosen == {1, 2}
    assert {"single", "adjacent", "group", "foreground"} <= kinds
    assert choose_targets(np.zeros((2, 8, 8), np.int64), {}, np.random.default_rng(0)) is None


def test_shells_are_painted_outside_the_brain_in_order() -> None:
    labels = np.zeros((1, 1, 40), np.int64)
    labels[..., :10] = 2
    outside = np.maximum(np.arange(40, dtype=np.float32) - 9, 0)[None, None]  # mm outside the brain
    out = paint_shells(labels, outside, np.random.default_rng(0))[0, 0]
    assert (out[:10] == 2).all()
    layers = [v for v in out[10:] if v != 0]
    assert layers == sorted(layers) and set(layers) == set(SHELLS)  # CSF, then skull, then scalp


def test_synthetic_cases_are_a_case_source_and_join_a_union(tmp_path) -> None:  # noqa: ANN001
    cases = open_dataset(SMALL, cache_cases=2)
    assert isinstance(cases, SyntheticCases) and len(cases) == 50
    assert cases.names[0] == "synth3_000000" and cases.classes == {
        1: "synthetic_target",
        2: "synthetic_other",
    }
    cf = cases.frames(4)
    assert cf.image.shape == (6, 48, 48) and TARGET in cf.presence and cf.presence[TARGET][3]
    subset = open_dataset(SMALL, ["synth3_000004"])
    assert np.array_equal(subset.frames(0).labels, cf.labels)
    with pytest.raises(InputError, match="unknown case 'synth3_000050'"):
        open_dataset(SMALL, ["synth3_000050"])
    real = write_synthetic_dataset(
        tmp_path / "DatasetR", num_cases=2, shape=(24, 24, 10), num_classes=1, seed=1
    )
    union = open_dataset(f"{real},{SMALL}")
    assert isinstance(union, DatasetUnion) and len(union) == 52
    assert union.classes == {1: "object1", 2: "synthetic_target", 3: "synthetic_other"}
    got = union.frames(2 + 4)
    assert got.name == "synth3/synth3_000004"
    assert np.array_equal(got.labels, np.where(cf.labels > 0, cf.labels + 1, 0))


def test_training_runs_on_synthetic_cases_and_validates_them(tmp_path) -> None:  # noqa: ANN001
    from medsam2.training import TrainConfig, train

    data = SMALL + ";" + ";".join(f"{k}={1 if k in ('blobs', 'ct') else 0}" for k in DEFAULT_WEIGHTS)
    cfg = TrainConfig(
        data=data,
        out=str(tmp_path / "run"),
        preset="tiny",
        steps=2,
        clip_length=4,
        val_split=0.1,
        val_cases=2,
        checkpoint_every=1000,
        prompt_freq=4,
        clip_reverse=0.5,
    )
    result = train(cfg)
    assert len(result.history) == 2 and all(np.isfinite(h["loss"]) for h in result.history)
    record = result.validations[-1]
    assert "dice_synthetic_target" in record and 0.0 <= record["dice"] <= 1.0


def test_boundary_contrast_separates_visible_from_invisible_edges() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 30) ** 2 <= 12**2
    noise = rng.normal(0, 0.02, disc.shape)
    visible = 0.3 + 0.4 * disc + noise
    assert boundary_contrast(visible, disc) > 10
    assert boundary_contrast(1.0 - visible, disc) > 10  # dark objects count the same
    assert boundary_contrast(0.5 + noise, disc) < 0.3  # a label no image shows
    assert boundary_contrast(visible, np.zeros_like(disc)) == 0.0


def test_min_contrast_keeps_only_targets_whose_edge_shows() -> None:
    spec = parse_synth(f"{SMALL};min_contrast=1.5;real2d=1;real3d=1")
    assert spec.min_contrast == 1.5
    for index in range(6):
        image, labels, _ = generate_case(spec, index)
        mid = image.shape[0] // 2
        assert boundary_contrast(image[mid], labels[mid] == TARGET) >= 1.5
        if (labels[mid] == OTHER).any():
            assert boundary_contrast(image[mid], labels[mid] == OTHER) >= 1.5
    with pytest.raises(InputError, match="min_contrast >= 0"):
        parse_synth("synth:min_contrast=-1")


def test_new_source_kinds_start_switched_off() -> None:
    """Older configs name no ``shapes`` weight: their cases must stay the ones they trained on."""
    assert DEFAULT_WEIGHTS["shapes"] == 0.0 and parse_synth("synth").min_contrast == 0.0
    spec = parse_synth(SMALL)
    assert all(generate_case(spec, i)[2]["kind"] != "shapes" for i in range(10))


def test_invert_turns_bright_objects_dark_and_keeps_the_labels() -> None:
    plain = generate_case(parse_synth(SMALL), 4)
    inverted = generate_case(parse_synth(f"{SMALL};invert=1"), 4)
    assert np.array_equal(inverted[1], plain[1])
    assert np.allclose(inverted[0], 1.0 - plain[0])
    with pytest.raises(InputError, match=r"invert in \[0, 1\]"):
        parse_synth("synth:invert=2")


def _disc(size: int, cy: int, cx: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ring around a disc", [1]),  # the ring's box is the whole object's: a part
        ("two discs side by side", []),  # each box holds only its own disc
        ("a disc in empty ground", []),
        ("a thin diagonal bar next to a block", [1]),  # its box is mostly the block
    ],
)
def test_part_labels_are_labels_whose_box_holds_other_labels(name: str, expected: list[int]) -> None:
    mid = np.zeros((64, 64), np.int64)
    if name == "ring around a disc":
        mid[_disc(64, 32, 32, 24)] = 1
        mid[_disc(64, 32, 32, 16)] = 2
    elif name == "two discs side by side":
        mid[_disc(64, 32, 16, 10)] = 1
        mid[_disc(64, 32, 46, 10)] = 2
    elif name == "a disc in empty ground":
        mid[_disc(64, 32, 32, 12)] = 1
    else:
        mid[20:50, 26:50] = 2
        for i in range(40):
            mid[10 + i, 10 + i : 14 + i] = 1
    assert part_labels(mid) == expected


def test_part_cases_ask_for_a_part_and_mark_its_box_ambiguous() -> None:
    plain = "synth:seed=3;cases=12;size=48;depth=6"
    spec = f"{plain};part=1.0"
    kinds = [generate_case(parse_synth(spec), i)[2]["target"] for i in range(12)]
    assert kinds.count("part") >= 6  # most slabs have one; the others fall back to the usual targets
    cases = SyntheticCases(spec)
    for i, kind in enumerate(kinds):
        assert cases.frames(i).box_ambiguous == (frozenset({TARGET}) if kind == "part" else frozenset())
    union = DatasetUnion([plain, spec.replace("seed=3", "seed=4")])
    marked = [union.frames(i).box_ambiguous for i in range(len(union))]
    assert set().union(*marked) == {TARGET + 2}  # only the part set marks, with its union label value
    assert not any(marked[:12])
    with pytest.raises(InputError, match=r"part in \[0, 1\]"):
        parse_synth("synth:part=1.5")
    assert all(generate_case(parse_synth(plain), i)[2]["target"] != "part" for i in range(12))


@pytest.mark.parametrize(
    ("name", "groups", "expected"),
    [
        ("a disc in empty ground", {}, [("foreground", {1})]),  # fills pi/4 of its box
        ("ring around a disc", {"both": (1, 2)}, [("group", {1, 2}), ("foreground", {1, 2})]),
        ("ring around a disc", {"ring": (1,)}, [("foreground", {1, 2})]),  # the ring alone is a part
        ("a thin diagonal bar", {}, []),  # fills a tenth of its box
        ("a block over most of the slice", {}, []),  # over 0.7 of the slice: no box would be asked
        ("empty", {"both": (1, 2)}, []),
    ],
)
def test_whole_labels_are_compound_objects_filling_their_box(
    name: str, groups: dict[str, tuple[int, ...]], expected: list[tuple[str, set[int]]]
) -> None:
    mid = np.zeros((64, 64), np.int64)
    if name == "a disc in empty ground":
        mid[_disc(64, 32, 32, 12)] = 1
    elif name == "ring around a disc":
        mid[_disc(64, 32, 32, 24)] = 1
        mid[_disc(64, 32, 32, 16)] = 2
    elif name == "a thin diagonal bar":
        for i in range(40):
            mid[10 + i, 10 + i : 14 + i] = 1
    elif name == "a block over most of the slice":
        mid[2:62, 2:62] = 1
    assert whole_labels(mid, groups) == expected


def test_whole_cases_ask_for_compound_objects_that_fill_their_box() -> None:
    plain = "synth:seed=3;cases=12;size=48;depth=6"
    found = [generate_case(parse_synth(f"{plain};whole=1.0"), i) for i in range(12)]
    wholes = [(labels, info) for _, labels, info in found if info["target"] in ("group", "foreground")]
    assert len(wholes) >= 6  # most slabs have one; the others fall back to the usual targets
    for labels, _ in wholes:
        mid = labels[labels.shape[0] // 2] == TARGET
        ys, xs = np.nonzero(mid)
        assert mid.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)) >= 0.6
    usual = [generate_case(parse_synth(plain), i)[2]["target"] for i in range(12)]
    assert sum(t in ("group", "foreground") for t in usual) < len(wholes)
    assert not any(generate_case(parse_synth(plain), i)[2]["target"] == "part" for i in range(12))
    with pytest.raises(InputError, match=r"whole in \[0, 1\]"):
        parse_synth("synth:whole=-0.1")
