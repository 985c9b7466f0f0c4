"""Bad input gets an InputError naming the file and the problem, and no output file is written."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from data_files import pydicom_file

from medsam2.errors import InputError
from medsam2.io import read_image, write_mask

nib = pytest.importorskip("nibabel")


def refused(src: Path, match: str, **kwargs: object) -> None:
    """Reading ``src`` (then writing its mask) fails with ``match``; no mask file appears."""
    out = src.parent / "out_mask.nii.gz"
    with pytest.raises(InputError, match=match):
        vol = read_image(src, **kwargs)  # type: ignore[arg-type]
        write_mask(np.zeros(vol.shape, np.uint8), vol, out)
    assert not out.exists()
    assert not [p for p in src.parent.iterdir() if ".tmp-" in p.name]


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _sitk(
    path: Path, data: np.ndarray, spacing: tuple[float, ...] | None = None, vector: bool = False
) -> Path:
    image = sitk.GetImageFromArray(
        data.T.copy() if not vector else np.moveaxis(data, -1, 0).T.copy(), isVector=vector
    )
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _patch_pixdim(path: Path, values: dict[int, float], qform_code: int, sform_code: int) -> Path:
    raw = bytearray(path.read_bytes())
    for i, v in values.items():
        struct.pack_into("<f", raw, 76 + 4 * i, v)
    struct.pack_into("<hh", raw, 252, qform_code, sform_code)
    path.write_bytes(bytes(raw))
    return path


# --- truncated and non-image files -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".png", ".tif", ".jpg"])
def test_truncated_files(tmp_path: Path, suffix: str) -> None:
    full = tmp_path / f"full{suffix}"
    data = np.random.default_rng(0).integers(
        0, 255, size=(40, 30, 20 if suffix[:3] not in (".pn", ".ti", ".jp") else 1)
    )
    data = data.astype(np.uint8)[..., 0] if data.shape[-1] == 1 else data.astype(np.float32)
    if suffix.startswith(".nii"):
        _nifti(full, data)
    else:
        _sitk(full, data)
    raw = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(raw[: len(raw) // 2])
    refused(cut, rf"cut{suffix.replace('.', '[.]')}: .*(truncated|corrupt|cannot)")


def test_truncated_real_dicom(tmp_path: Path) -> None:
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(pydicom_file("CT_small.dcm").read_bytes()[:5000])
    refused(cut, r"cut.dcm: (not a readable DICOM image|cannot read DICOM pixel data)")


def test_real_dicom_with_short_pixel_data() -> None:
    src = pydicom_file("emri_small_jpeg_2k_lossless_too_short.dcm")
    with pytest.raises(InputError, match=r"too_short.dcm: cannot read DICOM pixel data"):
        read_image(src)


@pytest.mark.parametrize("name", ["text.nii", "text.png", "text.nrrd", "empty.nii.gz", "noext", "notes.txt"])
def test_non_image_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"" if name.startswith("empty") else b"this is not an image\n" * 20)
    refused(path, rf"{name}: .*(cannot|unsupported)")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothere.nii: no such file or folder"):
        read_image(tmp_path / "nothere.nii")


# --- multi-frame / multi-component ------------------------------------------------------------


def test_4d_nrrd_needs_frame(tmp_path: Path) -> None:
    path = _sitk(tmp_path / "t.nrrd", np.zeros((3, 4, 5, 6), np.int16))
    refused(path, r"t.nrrd: is a 4D image with 6 frames .*frame=INDEX \(0..5")
    assert read_image(path, frame=5).shape == (3, 4, 5)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_vector_volume_needs_channel(tmp_path: Path, suffix: str) -> None:
    data = np.random.default_rng(1).random((3, 4, 5, 3)).astype(np.float32)
    path = _sitk(tmp_path / f"v{suffix}", data, vector=True)
    refused(
        path,
        rf"v{suffix.replace('.', '[.]')}: has 3 components per voxel and they are not colour.*channel=INDEX",
    )
    np.testing.assert_array_equal(read_image(path, channel=2).array, data[..., 2])
    with pytest.raises(InputError, match=r"has 3 components per voxel"):
        read_image(path, channel="rgb")


# --- NaN / Inf ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".npy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path: Path, suffix: str, bad: float) -> None:
    data = np.random.default_rng(2).random((4, 5, 6)).astype(np.float64 if suffix == ".nii" else np.float32)
    data[1, 2, 3] = bad
    path = tmp_path / f"bad{suffix}"
    if suffix.startswith(".nii"):
        _nifti(path, data)
    elif suffix == ".npy":
        np.save(path, data)
    else:
        _sitk(path, data)
    refused(
        path,
        rf"bad{suffix.replace('.', '[.]')}: 1 voxel\(s\) are NaN or infinite \(first at index \(1, 2, 3\)\)",
    )


# --- zero size, zero / negative spacing, sheared sform -----------------------------------------


def test_zero_size_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.zeros((0, 5, 5), np.float32))
    refused(tmp_path / "z.npy", r"z.npy: image has zero size \(shape \(0, 5, 5\)\)")
    path = _nifti(tmp_path / "z.nii", np.zeros((4, 5, 6), np.int16))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<h", raw, 44, 0)  # dim[2] = 0 (ITK would silently make it 1)
    path.write_bytes(bytes(raw))
    refused(path, r"z.nii: image has zero size \(NIfTI dim \[4, 0, 6\]\)")


@pytest.mark.parametrize(
    ("values", "qform"), [({1: 0.0}, 0), ({2: -2.0}, 0), ({3: 0.0}, 1), ({1: float("nan")}, 1)]
)
def test_nifti_zero_or_negative_pixdim(tmp_path: Path, values: dict[int, float], qform: int) -> None:
    path = _patch_pixdim(_nifti(tmp_path / "sp.nii", np.zeros((4, 5, 6), np.int16)), values, qform, 0)
    refused(path, r"sp.nii: NIfTI pixdim .* zero, negative or non-finite voxel size")


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_nrrd_mha_zero_spacing(tmp_path: Path, suffix: str) -> None:
    path = _sitk(tmp_path / f"sp{suffix}", np.zeros((4, 5, 6), np.uint8), spacing=(0.5, 1.0, 2.0))
    raw = path.read_bytes()
    bad = raw.replace(b"(0.5,0,0)", b"(0,0,0)") if suffix == ".nrrd" else raw.replace(b"0.5 1 2", b"0 1 2")
    assert bad != raw
    path.write_bytes(bad)
    refused(path, rf"sp{suffix.replace('.', '[.]')}: .*zero or negative voxel spacing")


@pytest.mark.parametrize(
    ("name", "header"),
    [
        (
            "neg.mha",
            b"ObjectType = Image\nNDims = 3\nElementSpacing = 0.5 -1 2\nDimSize = 4 5 6\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n",
        ),
        (
            "neg.nrrd",
            b"NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 4 5 6\nspacings: 0.5 -1 2\nencoding: raw\n\n",
        ),
    ],
)
def test_negative_text_header_spacing(tmp_path: Path, name: str, header: bytes) -> None:
    (tmp_path / name).write_bytes(header + bytes(120))
    refused(tmp_path / name, rf"{name}: the header gives a zero or negative voxel spacing \[0.5, -1.0, 2.0\]")


def test_sheared_sform_refused(tmp_path: Path) -> None:
    sheared = np.array([[2, 0.5, 0, 10], [0, 2, 0, 20], [0, 0, 3, 30], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), sheared)
    img.set_qform(np.diag([2.0, 2.0, 3.0, 1.0]), code=1)
    img.set_sform(sheared, code=2)
    nib.save(img, str(tmp_path / "shear.nii"))
    refused(tmp_path / "shear.nii", r"shear.nii: the NIfTI sform is sheared .* qform")


# --- arrays ------------------------------------------------------------------------------------


def test_npz_key_rules(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", image=np.ones((3, 4, 5)), label=np.zeros((3, 4, 5)))
    refused(tmp_path / "two.npz", r"two.npz: holds 2 arrays \['image', 'label'\]; choose one with key=")
    refused(tmp_path / "two.npz", r"two.npz: has no array named 'x'", key="x")
    assert read_image(tmp_path / "two.npz", key="image").shape == (3, 4, 5)
    np.savez_compressed(tmp_path / "one.npz", data=np.arange(24).reshape(2, 3, 4))
    vol = read_image(tmp_path / "one.npz")
    assert vol.array[1, 2, 3] == 23 and vol.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(vol.direction, np.eye(3))


def test_npy_rules(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused(tmp_path / "obj.npy", r"obj.npy: cannot read this npy file")
    np.save(tmp_path / "one.npy", np.zeros(5))
    refused(tmp_path / "one.npy", r"one.npy: array has 1 dimensions")
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 4, 2)))
    refused(tmp_path / "four.npy", r"four.npy: is a 4D image with 2 frames")
    assert read_image(tmp_path / "four.npy", frame=1).shape == (2, 3, 4)
    np.save(tmp_path / "b.npy", np.zeros((3, 3), bool))
    assert read_image(tmp_path / "b.npy").array.dtype == np.uint8
    refused(tmp_path / "b.npy", r"b.npy: channel= does not apply", channel="grey")


def test_gzip_garbage_nifti(tmp_path: Path) -> None:
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"\x00" * 400))
    refused(path, r"junk.nii.gz: ")
