"""Training on several datasets at once: unique case names and label values, per-dataset modality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medsam2.data.datasets import TrainingDataset
from medsam2.data.union import DatasetUnion, open_dataset, split_roots
from medsam2.errors import InputError
from medsam2.model.presets import get_preset
from medsam2.training import TrainConfig, train
from medsam2.training.recipes import EpisodeSampler
from medsam2.training.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("union")
    a = write_synthetic_dataset(root / "DatasetA", num_cases=2, shape=(24, 24, 10), num_classes=2, seed=1)
    b = write_synthetic_dataset(root / "DatasetB", num_cases=3, shape=(24, 24, 10), num_classes=1, seed=2)
    spec = json.loads((b / "dataset.json").read_text())
    spec["channel_names"] = {"0": "CT"}  # a different modality: B is normalised as CT, A as MR
    spec["labels"] = {"background": 0, "object1": 1}
    (b / "dataset.json").write_text(json.dumps(spec))
    return a, b


def test_union_renames_cases_and_moves_labels(two: tuple[Path, Path]) -> None:
    a, b = two
    u = open_dataset(f"{a},{b}")
    assert isinstance(u, DatasetUnion) and len(u) == 5
    assert u.names[:2] == ["DatasetA/case_000", "DatasetA/case_001"] and u.names[2] == "DatasetB/case_000"
    # A has labels 1, 2; B's label 1 becomes 3; the shared name gets its dataset's folder
    assert u.classes == {1: "object1@DatasetA", 2: "object2", 3: "object1@DatasetB"}
    alone_a, alone_b = TrainingDataset(a), TrainingDataset(b)
    for j, (part, i, off) in enumerate([(alone_a, 0, 0), (alone_a, 1, 0), (alone_b, 0, 2), (alone_b, 2, 2)]):
        index = [0, 1, 2, 4][j]
        got, want = u.frames(index), part.frames(i)
        assert np.array_equal(got.image, want.image)  # each dataset keeps its own normalisation
        assert np.array_equal(got.labels, np.where(want.labels > 0, want.labels + off, 0))
        assert sorted(got.presence) == [v + off for v in sorted(want.presence)]
    subset = open_dataset(f"{a},{b}", ["DatasetB/case_002", "DatasetA/case_001"])
    assert subset.names == ["DatasetB/case_002", "DatasetA/case_001"]
    assert np.array_equal(subset.frames(0).labels, u.frames(4).labels)
    assert isinstance(open_dataset(str(a)), TrainingDataset)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{a},,{b}", "empty dataset folder"),
        ("{a},{a}", "listed twice"),
        ("{a},{c}", "2D image and 3D volume datasets mixed"),
        ("{a},{b}|x", "unknown case"),
    ],
)
def test_union_errors(two: tuple[Path, Path], tmp_path: Path, data: str, message: str) -> None:
    a, b = two
    c = write_synthetic_dataset(tmp_path / "DatasetC", num_cases=1, dims=2, shape=(16, 16))
    text, _, case = data.format(a=a, b=b, c=c).partition("|")
    with pytest.raises(InputError, match=message):
        open_dataset(text, [case] if case else None)
    assert split_roots(f" {a} , {b} ") == [str(a), str(b)]


def test_union_refuses_two_folders_of_one_name(two: tuple[Path, Path], tmp_path: Path) -> None:
    other = write_synthetic_dataset(tmp_path / "DatasetA", num_cases=1, shape=(16, 16, 6))
    with pytest.raises(InputError, match="share a name"):
        DatasetUnion([two[0], other])


def test_training_on_a_union_samples_and_validates_both(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    cfg = TrainConfig(
        data=f"{a},{b}",
        out=str(tmp_path / "run"),
        preset="tiny",
        steps=2,
        clip_length=3,
        max_objects=1,
        val_cases=5,
        checkpoint_every=1000,
    )
    sampler = EpisodeSampler(open_dataset(cfg.data), cfg, get_preset("tiny"))
    anchors = {sampler.sample(s, 0).info["objects"][0] for s in range(12)}
    assert anchors & {1, 2} and 3 in anchors  # both datasets' classes are drawn
    result = train(cfg)
    record = result.validations[-1]
    assert {"dice_object1@DatasetA", "dice_object2", "dice_object1@DatasetB"} <= set(record)
