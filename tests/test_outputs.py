"""Result files: label PNGs, overlays, GIFs, summaries and the staged output folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from medsam2.errors import InputError
from medsam2.outputs import (
    GifRecorder,
    SegmentationSummary,
    check_output_folder,
    contours,
    label_dtype,
    labels_from_logits,
    object_colour,
    read_label_png,
    render_overlay,
    staged_folder,
    write_label_png,
    write_overlay_png,
)


@pytest.mark.parametrize(
    ("ids", "dtype"),
    [([1], np.uint8), ([1, 255], np.uint8), ([256], np.uint16), ([3, 65535], np.uint16), ([], np.uint8)],
)
def test_label_dtype(ids: list[int], dtype: type) -> None:
    assert label_dtype(ids) is dtype


@pytest.mark.parametrize("ids", [[0], [65536], [-1, 2]])
def test_label_dtype_refuses_ids_a_png_cannot_hold(ids: list[int]) -> None:
    with pytest.raises(ValueError, match="1..65535"):
        label_dtype(ids)


def test_labels_from_logits_overlap_goes_to_the_highest_positive_logit() -> None:
    logits = torch.tensor(
        [
            [[5.0, 1.0, -1.0], [-3.0, -3.0, 0.0]],  # object 7
            [[2.0, 3.0, -2.0], [4.0, -1.0, 0.0]],  # object 300
        ]
    )
    labels = labels_from_logits(logits, [7, 300])
    assert labels.dtype == np.uint16
    assert labels.tolist() == [[7, 300, 0], [300, 0, 0]]  # logit 0 is outside


def test_labels_from_logits_checks_shapes() -> None:
    with pytest.raises(ValueError, match="2 objects"):
        labels_from_logits(np.zeros((1, 4, 4)), [1, 2])
    assert labels_from_logits(np.zeros((0, 3, 5)), []).shape == (3, 5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_label_png_round_trip(tmp_path: Path, dtype: type) -> None:
    labels: np.ndarray = np.zeros((9, 13), dtype)
    labels[2:5, 3:8] = 200 if dtype is np.uint8 else 40000
    path = write_label_png(tmp_path / "m.png", labels)
    back = read_label_png(path)
    assert back.dtype == dtype and back.shape == (9, 13)
    np.testing.assert_array_equal(back, labels)
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temporary left


def test_label_png_refuses_other_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_label_png(tmp_path / "m.png", np.zeros((4, 4), np.int32))
    assert not any(tmp_path.iterdir())


def test_colours_are_stable_and_distinct() -> None:
    colours = [object_colour(i) for i in range(1, 300)]
    assert object_colour(3) == colours[2]
    assert len(set(colours[:20])) == 20
    assert all(all(0 <= c <= 255 for c in rgb) for rgb in colours)


def test_contours_are_the_inner_boundary() -> None:
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    edge = contours(mask)
    assert edge.sum() == 16 and not edge[3, 3] and edge[1, 1]
    assert contours(mask, thickness=2).sum() == 24
    assert not contours(np.zeros((3, 3), bool)).any()


def test_overlay_fill_and_contour_colours(tmp_path: Path) -> None:
    image = np.full((20, 30), 100, np.uint16)  # 16-bit grey is shown min-max scaled
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 5:15] = 2
    rendered = write_overlay_png(tmp_path / "o.png", image, labels, alpha=0.5)
    assert rendered.shape == (20, 30, 3) and rendered.dtype == np.uint8
    assert tuple(rendered[5, 5]) == object_colour(2)  # contour: full colour
    inside = rendered[10, 10].astype(int)
    assert tuple(inside) == tuple(round(0.5 * c) for c in object_colour(2))  # fill over black
    assert tuple(rendered[0, 0]) == (0, 0, 0)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), rendered)


def test_overlay_checks_sizes() -> None:
    with pytest.raises(ValueError, match="does not match"):
        render_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.uint8))


def test_gif_in_frame_order_on_a_common_canvas(tmp_path: Path) -> None:
    rec = GifRecorder(max_side=32, duration_ms=50)
    rec.add(2, np.full((40, 80, 3), 200, np.uint8))  # shrunk to 32x16
    rec.add(0, np.zeros((10, 10, 3), np.uint8))
    rec.add(1, np.full((16, 16, 3), 50, np.uint8))
    assert len(rec) == 3
    path = rec.write(tmp_path / "p.gif")
    with Image.open(path) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 3 and gif.size == (32, 16)
        gif.seek(2)
        assert np.asarray(gif.convert("RGB"))[8, 16].tolist() == [200, 200, 200]
    with pytest.raises(ValueError, match="no frames"):
        GifRecorder().write(tmp_path / "empty.gif")


def test_summary_counts_and_means(tmp_path: Path) -> None:
    summary = SegmentationSummary(["a", "b", "c"], {1: "liver", 2: None}, {1: [0]}, {"command": "x"})
    lab = np.zeros((4, 4), np.uint8)
    lab[0, :3] = 1
    summary.add(0, lab, [1, 2], [5.0, -2.0], [0.9, 0.1])
    summary.add(1, np.zeros((4, 4), np.uint8), [1, 2], [-1.0, -2.0], [0.5, 0.1])
    lab2 = np.full((4, 4), 2, np.uint8)
    summary.add(2, lab2, [1, 2], [1.0, 3.0], [0.7, 0.8])
    doc = json.loads(summary.write(tmp_path / "s.json").read_text())
    assert doc["command"] == "x" and doc["num_frames"] == 3 and doc["frames"] == ["a", "b", "c"]
    one, two = doc["objects"]
    assert one["name"] == "liver" and one["prompted_frames"] == ["a"]
    assert one["frames_present"] == ["a"] and one["pixel_counts"] == {"a": 3} and one["total_pixels"] == 3
    assert one["mean_iou"] == 0.9 and one["mean_object_score"] == pytest.approx(5 / 3, abs=1e-4)
    assert two["frames_present"] == ["c"] and two["pixel_counts"] == {"c": 16} and two["mean_iou"] == 0.8


def _staged_write(out: Path, overwrite: bool = False, fail: bool = False) -> None:
    with staged_folder(out, overwrite, managed=("masks", "summary.json", "propagation.gif")) as stage:
        (stage / "masks").mkdir()
        (stage / "masks" / "0.png").write_text("new")
        (stage / "summary.json").write_text("{}")
        if fail:
            raise InputError("boom")


def test_staged_folder_appears_complete_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(InputError, match="boom"):
        _staged_write(out, fail=True)
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder, no parents
    _staged_write(out)
    assert sorted(p.name for p in out.iterdir()) == ["masks", "summary.json"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_staged_folder_refuses_a_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "old.png").write_text("old")
    (out / "propagation.gif").write_text("stale")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty; choose a new folder or pass --overwrite"):
        _staged_write(out)
    with pytest.raises(InputError, match="boom"):
        _staged_write(out, overwrite=True, fail=True)
    assert (out / "masks" / "old.png").exists() and (out / "propagation.gif").exists()
    _staged_write(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["masks", "notes.txt", "summary.json"]
    assert [p.name for p in (out / "masks").iterdir()] == ["0.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_folder_accepts_an_empty_folder_and_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _staged_write(tmp_path / "empty")
    assert (tmp_path / "empty" / "summary.json").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_output_folder(tmp_path / "file", overwrite=True)
