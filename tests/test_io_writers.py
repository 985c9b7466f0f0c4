"""write_mask: label types, formats, format choice, atomic writes and refused writes (no file left)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medsam2.errors import InputError
from medsam2.io import atomic_output, mask_format_for, read_image, write_mask
from medsam2.types import Volume

SHAPE = (6, 7, 8)


def reference(fmt: str = "nifti", shape: tuple[int, ...] = SHAPE) -> Volume:
    nd = len(shape)
    direction = np.eye(nd)[:, ::-1] if nd == 3 else np.eye(nd)
    return Volume(
        np.zeros(shape, np.int16),
        spacing=tuple(0.5 + d for d in range(nd)),
        origin=tuple(10.0 * (d + 1) for d in range(nd)),
        direction=direction,
        source=f"ref.{fmt}",
        metadata={"format": fmt},
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", ["m.nii.gz", "m.nii", "m.nrrd", "m.mha", "m.tif", "m.npy"])
def test_formats_round_trip(tmp_path: Path, name: str) -> None:
    ref = reference()
    mask = np.zeros(SHAPE, np.int32)
    mask[1, 2, 3], mask[5, 6, 7] = 1, 9
    out = write_mask(mask, ref, tmp_path / name)
    assert out == tmp_path / name and leftovers(tmp_path) == [name]
    back = read_image(out)
    np.testing.assert_array_equal(back.array, mask)
    assert back.array.dtype == np.uint8
    if not name.endswith((".npy", ".tif")):
        np.testing.assert_allclose(back.spacing, ref.spacing, atol=1e-6)
        np.testing.assert_allclose(back.origin, ref.origin, atol=1e-6)
        np.testing.assert_allclose(back.direction, ref.direction, atol=1e-6)


def test_label_types(tmp_path: Path) -> None:
    ref = reference()
    as_bool = read_image(write_mask(np.ones(SHAPE, bool), ref, tmp_path / "b.nii.gz"))
    assert as_bool.array.dtype == np.uint8 and as_bool.array.min() == 1
    big = np.zeros(SHAPE, np.int64)
    big[0, 0, 0] = 300
    back = read_image(write_mask(big, ref, tmp_path / "u16.nii.gz"))
    assert back.array.dtype == np.uint16 and back.array[0, 0, 0] == 300
    whole = read_image(write_mask(big.astype(np.float32), ref, tmp_path / "f.nrrd"))
    assert whole.array[0, 0, 0] == 300


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (
            np.zeros((6, 7, 9), np.uint8),
            r"bad.nii.gz: mask shape \(6, 7, 9\) does not match the image shape \(6, 7, 8\) of ref.nifti",
        ),
        (np.full(SHAPE, -1, np.int16), r"bad.nii.gz: mask labels must lie in 0..65535 \(got -1..-1\)"),
        (np.full(SHAPE, 70000, np.int32), r"bad.nii.gz: mask labels must lie in 0..65535"),
        (np.full(SHAPE, 0.5, np.float32), r"bad.nii.gz: mask values must be whole-number labels"),
        (np.full(SHAPE, "a"), r"bad.nii.gz: mask dtype <U1 is not a label type"),
    ],
)
def test_bad_masks_refused_without_file(tmp_path: Path, mask: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        write_mask(mask, reference(), tmp_path / "bad.nii.gz")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("m.txt", {}, r"m.txt: cannot write a mask as '.txt'; use one of"),
        (
            "m.mhd",
            {},
            r"m.mhd: cannot write a mask as '.mhd' \(.mhd/.nhdr are two-file formats; use .mha/.nrrd\)",
        ),
        ("m.png", {}, r"m.png: PNG holds 2D masks only; this image is 3D"),
        ("m.nii.gz", {"format": "nrrd"}, r"m.nii.gz: format 'nrrd' needs a file name ending in .nrrd"),
        ("m.nii.gz", {"format": "jpeg"}, r"format='jpeg' is not a mask format"),
        ("m.dcm", {}, r"m.dcm: a DICOM SEG needs a DICOM input; ref.nifti is not DICOM"),
    ],
)
def test_bad_destinations_refused(tmp_path: Path, name: str, kwargs: dict[str, str], match: str) -> None:
    if name.endswith(".dcm"):
        pytest.importorskip("highdicom")
    with pytest.raises(InputError, match=match):
        write_mask(np.zeros(SHAPE, np.uint8), reference(), tmp_path / name, **kwargs)
    assert leftovers(tmp_path) == []


def test_missing_folder_and_folder_as_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"output folder .*nowhere does not exist"):
        write_mask(np.zeros(SHAPE, np.uint8), reference(), tmp_path / "nowhere" / "m.nii.gz")
    (tmp_path / "dir.nii.gz").mkdir()
    with pytest.raises(InputError, match=r"dir.nii.gz: is a folder"):
        write_mask(np.zeros(SHAPE, np.uint8), reference(), tmp_path / "dir.nii.gz")


def test_bad_reference_geometry_refused(tmp_path: Path) -> None:
    ref = reference()
    ref.spacing = (1.0, 0.0, 1.0)
    with pytest.raises(InputError, match=r"ref.nifti: voxel spacing \(1.0, 0.0, 1.0\) has a zero"):
        write_mask(np.zeros(SHAPE, np.uint8), ref, tmp_path / "m.nii.gz")
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_no_file_and_keeps_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m.nii.gz"
    target.write_bytes(b"previous result")

    def broken(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(InputError, match=r"could not write the mask: disk full"):
        write_mask(np.zeros(SHAPE, np.uint8), reference(), target)
    assert leftovers(tmp_path) == ["m.nii.gz"] and target.read_bytes() == b"previous result"


def test_interrupt_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "m.nrrd"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".nrrd") and ".tmp-" in tmp.name
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert leftovers(tmp_path) == []


def test_format_input_and_defaults(tmp_path: Path) -> None:
    assert mask_format_for(reference("nifti")) == "nifti"
    assert mask_format_for(reference("png", (5, 4))) == "png"
    assert mask_format_for(reference("metaimage"), like_input=True) == "mha"
    assert mask_format_for(reference("nrrd"), like_input=True) == "nrrd"
    assert mask_format_for(reference("dicom"), like_input=True) == "dicom-seg"
    assert mask_format_for(reference("jpeg", (5, 4)), like_input=True) == "png"
    out = write_mask(np.ones(SHAPE, np.uint8), reference("nrrd"), tmp_path / "m.nrrd", format="input")
    assert out.exists()
    with pytest.raises(InputError, match=r"m.nii.gz: format 'nrrd' needs a file name ending in .nrrd"):
        write_mask(np.ones(SHAPE, np.uint8), reference("nrrd"), tmp_path / "m.nii.gz", format="input")


def test_2d_nifti_and_rgb_reference(tmp_path: Path) -> None:
    ref = reference("png", (5, 4))
    ref.array = np.zeros((5, 4, 3), np.uint8)  # an RGB picture: the mask has the spatial shape only
    mask = np.zeros((5, 4), np.uint8)
    mask[4, 3] = 1
    back = read_image(write_mask(mask, ref, tmp_path / "m.nii.gz"))
    assert back.shape == (5, 4) and back.array[4, 3] == 1
    np.testing.assert_allclose(back.spacing, ref.spacing)
