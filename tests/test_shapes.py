"""Basic shapes in a box (medsam2.data.synth.shapes): deterministic, as described, solvable."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsam2.data.synth.shapes import SHAPES, shape_case, size_bin, twins_case
from medsam2.evaluation.baselines import otsu_in_box
from medsam2.preprocessing import normalize_volume


def test_cases_follow_the_seed_and_cover_every_kind() -> None:
    a, b = shape_case(6000, 3), shape_case(6000, 3)
    assert np.array_equal(a.volume.array, b.volume.array) and np.array_equal(a.truth, b.truth)
    other = shape_case(6001, 3)  # another seed, another case
    assert other.truth.shape != a.truth.shape or not np.array_equal(other.volume.array, a.volume.array)
    cases = [shape_case(6000, i) for i in range(60)]
    assert {c.shape for c in cases} == set(SHAPES)
    assert {c.polarity for c in cases} == {"bright", "dark"}
    assert {size_bin(c.radius) for c in cases} == {"small", "medium", "large"}


@pytest.mark.parametrize("index", range(12))
def test_a_case_is_what_it_claims(index: int) -> None:
    c = shape_case(7000, index)
    vol, truth = c.volume, c.truth
    assert vol.array.shape == truth.shape and truth.dtype == bool and vol.modality == "MR"
    k = int(np.argmax(truth.sum(axis=(0, 1))))
    assert k == vol.array.shape[2] // 2  # largest on the middle slice
    area = truth[:, :, k].sum()
    side = min(truth.shape[:2])
    assert abs(np.sqrt(area / np.pi) / side - c.radius) < 0.25 * c.radius + 1.5 / side
    ring = ndimage.binary_dilation(truth, iterations=3) & ~truth  # what surrounds the object
    assert (vol.array[truth].mean() > vol.array[ring].mean()) == (c.polarity == "bright")
    # what the model sees: Otsu inside the tight box solves the prompted slice
    image = normalize_volume(vol)[:, :, k].T  # (rows, columns)
    rows, cols = np.nonzero(truth[:, :, k].T)
    box = (cols.min(), rows.min(), cols.max(), rows.max())
    pred = otsu_in_box(image, box)
    gt = truth[:, :, k].T
    assert 2 * (pred & gt).sum() / (pred.sum() + gt.sum()) > 0.85


def test_shape_cases_serve_the_generator_as_training_data() -> None:
    from medsam2.data.union import DatasetUnion, open_dataset
    from medsam2.errors import InputError

    data = open_dataset("shapes:seed=100;cases=5")
    assert len(data) == 5 and data.classes == {1: "shape"} and not data.is_2d()
    frames = data.frames(2)
    case = shape_case(100, 2)
    assert np.array_equal(frames.labels, np.transpose(case.truth, (2, 1, 0)).astype(np.int64))
    expected = np.transpose(normalize_volume(case.volume), (2, 1, 0))  # slices, as inference cuts them
    assert np.array_equal(frames.image, expected) and frames.presence[1].all() == bool(
        case.truth.any(axis=(0, 1)).all()
    )
    union = open_dataset("shapes:seed=100;cases=3,synth:seed=1;cases=4;size=32;depth=4")
    assert isinstance(union, DatasetUnion) and len(union) == 7 and union.classes[1] == "shape"
    with pytest.raises(InputError, match="unknown key"):
        open_dataset("shapes:size=3")


@pytest.mark.parametrize("index", range(8))
def test_a_twins_case_holds_look_alike_objects_each_labelled(index: int) -> None:
    vol, labels = twins_case(300, index)
    again = twins_case(300, index)
    assert np.array_equal(again[0].array, vol.array) and np.array_equal(again[1], labels)
    assert labels.shape == vol.array.shape and vol.modality == "MR"
    values = [v for v in np.unique(labels) if v]
    assert values == list(range(1, len(values) + 1)) and len(values) in (2, 3)
    body = labels > 0
    ring = ndimage.binary_dilation(body, iterations=3) & ~body
    background = np.median(vol.array[ring])
    contrast = [np.median(vol.array[labels == v]) - background for v in values]
    # the same polarity and, within the generator's 10 %, the same contrast: only memory tells
    # which one was asked for
    assert all(np.sign(c) == np.sign(contrast[0]) for c in contrast)
    assert max(np.abs(contrast)) < 1.35 * min(np.abs(contrast))
    for v in values:
        present = np.flatnonzero((labels == v).any(axis=(0, 1)))
        assert present.size >= 5  # each tapers over its own run of slices
        centres = [ndimage.center_of_mass(labels[:, :, k] == v) for k in present]
        assert np.ptp(np.array(centres), axis=0).max() < 0.5 * min(labels.shape[:2])  # drifts a little


def test_shape_cases_mix_in_twins_when_asked() -> None:
    from medsam2.data.union import open_dataset
    from medsam2.errors import InputError

    plain = open_dataset("shapes:seed=100;cases=40")
    mixed = open_dataset("shapes:seed=100;cases=40;twins=0.5")
    assert mixed.classes == {1: "shape", 2: "twin 2", 3: "twin 3"}
    twins = [i for i in range(40) if mixed.is_twins(i)]
    assert 10 <= len(twins) <= 30
    i, j = twins[0], next(i for i in range(40) if i not in twins)
    assert np.array_equal(mixed.frames(j).labels, plain.frames(j).labels)  # the others are unchanged
    frames = mixed.frames(i)
    assert np.array_equal(frames.labels, np.transpose(twins_case(100, i)[1], (2, 1, 0)))
    assert set(frames.presence) >= {1, 2}
    with pytest.raises(InputError, match="twins is a fraction"):
        open_dataset("shapes:seed=100;cases=4;twins=2")


def test_shape_cases_can_serve_only_the_middle_slices() -> None:
    from medsam2.data.union import open_dataset
    from medsam2.errors import InputError

    whole = open_dataset("shapes:seed=100;cases=6").frames(4)
    one = open_dataset("shapes:seed=100;cases=6;slices=1").frames(4)
    three = open_dataset("shapes:seed=100;cases=6;slices=3").frames(4)
    mid = whole.num_frames // 2  # the object's largest slice: every episode is a one-slice box
    assert one.num_frames == 1 and np.array_equal(one.image[0], whole.image[mid])
    assert np.array_equal(one.labels[0], whole.labels[mid])
    assert np.array_equal(three.image, whole.image[mid - 1 : mid + 2])
    with pytest.raises(InputError, match="slices is from 1 to 9"):
        open_dataset("shapes:seed=100;cases=6;slices=0")
