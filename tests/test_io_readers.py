"""read_image on real files shipped in installed packages: data and geometry against nibabel/pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_files import MNI_GM, dipy_file, nibabel_file, nilearn_file, pydicom_file, stardist_file

from medsam2.errors import InputError
from medsam2.io import detect_format, read_image, write_mask
from medsam2.types import Volume

nib = pytest.importorskip("nibabel")

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_ras(volume: Volume) -> np.ndarray:
    """The nibabel-style (RAS) affine of a 3D volume."""
    a = np.eye(4)
    a[:3, :3] = np.asarray(volume.direction) @ np.diag(volume.spacing)
    a[:3, 3] = volume.origin
    return LPS @ a


def check_against_nibabel(path: Path, volume: Volume, frame: int | None = None) -> None:
    img = nib.load(str(path))
    np.testing.assert_allclose(affine_ras(volume), img.affine, atol=1e-4)
    data = np.asarray(img.dataobj)
    if frame is not None:
        data = data[..., frame]
    np.testing.assert_array_equal(volume.array, data)


def test_mni_template_and_mask_round_trip(tmp_path: Path) -> None:
    path = nilearn_file()
    vol = read_image(path)
    assert vol.shape == (197, 233, 189) and vol.spacing == (1.0, 1.0, 1.0)
    assert vol.metadata["format"] == "nifti"
    check_against_nibabel(path, vol)
    gm = read_image(nilearn_file(MNI_GM))
    np.testing.assert_allclose(affine_ras(gm), affine_ras(vol))
    brain = (vol.array > 0.2 * vol.array.max()).astype(np.uint8)  # nilearn's brain-mask rule
    out = write_mask(brain, vol, tmp_path / "brain.nii.gz")
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, nib.load(str(path)).affine, atol=1e-6)
    assert back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(back.dataobj), brain)


def test_dipy_anisotropic_spacing_preserved(tmp_path: Path) -> None:
    path = dipy_file()
    vol = read_image(path)
    assert vol.spacing == pytest.approx((4.0, 4.0, 5.0))
    check_against_nibabel(path, vol)
    out = write_mask(np.ones(vol.shape, np.uint8), vol, tmp_path / "m.nii.gz")
    assert read_image(out).spacing == pytest.approx(vol.spacing, abs=1e-6)
    np.testing.assert_allclose(nib.load(str(out)).affine, nib.load(str(path)).affine, atol=1e-5)


@pytest.mark.parametrize("name", ["anatomical.nii", "reoriented_anat_moved.nii", "standard.nii.gz"])
def test_nibabel_files_match_nibabel(name: str) -> None:
    path = nibabel_file(name)
    check_against_nibabel(path, read_image(path))


def test_big_endian_nifti() -> None:
    path = nibabel_file("anatomical.nii")
    assert nib.load(str(path)).header.endianness == ">"
    vol = read_image(path)
    assert vol.array.dtype.byteorder in ("=", "<", "|")  # native order in memory
    check_against_nibabel(path, vol)


def test_nifti2_is_read_through_conversion() -> None:
    path = nibabel_file("example_nifti2.nii.gz")
    assert isinstance(nib.load(str(path)), nib.Nifti2Image)
    with pytest.raises(InputError, match=r"example_nifti2.*4D image with 2 frames.*frame="):
        read_image(path)
    vol = read_image(path, frame=1)
    assert vol.metadata["format"] == "nifti2" and vol.shape == (32, 20, 12)
    check_against_nibabel(path, vol, frame=1)


def test_4d_nifti_needs_frame() -> None:
    path = nibabel_file("example4d.nii.gz")
    with pytest.raises(InputError, match=r"example4d.nii.gz: is a 4D image with 2 frames"):
        read_image(path)
    vol = read_image(path, frame=0)
    assert vol.ndim == 3 and vol.direction.shape == (3, 3) and vol.metadata["frame"] == "0"
    check_against_nibabel(path, vol, frame=0)
    with pytest.raises(InputError, match=r"frame=2 is out of range; the image has frames 0..1"):
        read_image(path, frame=2)


def test_frame_on_3d_image_is_refused() -> None:
    with pytest.raises(InputError, match=r"frame=0 was given but the image is 3D"):
        read_image(dipy_file(), frame=0)


def test_nibabel_file_with_nan_voxels_is_refused() -> None:
    path = nibabel_file("resampled_anat_moved.nii")
    with pytest.raises(InputError, match=r"resampled_anat_moved.nii: 153 voxel\(s\) are NaN or infinite"):
        read_image(path)


def test_stardist_16bit_tiff_keeps_values(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    path = stardist_file()
    picture = tifffile.imread(str(path))
    vol = read_image(path)
    assert vol.array.dtype == np.uint16 and vol.ndim == 2 and vol.metadata["format"] == "tiff"
    np.testing.assert_array_equal(vol.array, picture.T)  # (column, row) order
    # the real file's values stop at 235: a 16-bit copy with a large range must survive too
    wide = tmp_path / "wide.tif"
    tifffile.imwrite(str(wide), (picture.astype(np.uint32) * 250).clip(0, 65535).astype(np.uint16))
    back = read_image(wide)
    assert back.array.max() > 255
    np.testing.assert_array_equal(back.array, tifffile.imread(str(wide)).T)


def test_stardist_label_tiff_round_trips_as_png(tmp_path: Path) -> None:
    labels = read_image(stardist_file("mask2d.tif"))
    out = write_mask(labels.array, labels, tmp_path / "labels.png")
    back = read_image(out)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_single_dicom_matches_pydicom_modality_lut(name: str) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.pixels import apply_modality_lut

    path = pydicom_file(name)
    ds = pydicom.dcmread(str(path))
    vol = read_image(path)
    expected = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_array_equal(vol.array[:, :, 0], expected.T)
    assert vol.modality == ds.Modality
    np.testing.assert_allclose(vol.origin, [float(v) for v in ds.ImagePositionPatient], atol=1e-4)
    row, col = (
        np.array(ds.ImageOrientationPatient[:3], float),
        np.array(ds.ImageOrientationPatient[3:], float),
    )
    np.testing.assert_allclose(vol.direction[:, 0], row, atol=1e-6)
    np.testing.assert_allclose(vol.direction[:, 1], col, atol=1e-6)
    assert vol.spacing[:2] == pytest.approx((float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])))


def test_ct_small_rescale_applied() -> None:
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(str(pydicom_file("CT_small.dcm")))
    assert float(ds.RescaleIntercept) == -1024.0
    vol = read_image(pydicom_file("CT_small.dcm"))
    np.testing.assert_array_equal(vol.array[:, :, 0], ds.pixel_array.T.astype(np.int64) - 1024)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPEG2000.dcm",
    ],
)
def test_compressed_dicom_matches_pydicom(name: str) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.pixels import apply_modality_lut

    path = pydicom_file(name)
    ds = pydicom.dcmread(str(path))
    try:
        expected = apply_modality_lut(ds.pixel_array, ds)
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        pytest.skip(f"pydicom cannot decode {name} here: {exc}")
    vol = read_image(path)
    np.testing.assert_array_equal(vol.array[:, :, 0], np.asarray(expected).T)
    if name.startswith("MR_small"):
        np.testing.assert_array_equal(vol.array, read_image(pydicom_file("MR_small.dcm")).array)


def test_dicom_rgb_file_kept_as_rgb() -> None:
    path = pydicom_file("SC_rgb_jpeg_gdcm.dcm")
    vol = read_image(path)
    assert vol.array.shape == (100, 100, 1, 3) and vol.metadata["channels"] == "rgb"
    grey = read_image(path, channel="grey")
    assert grey.array.shape == (100, 100, 1) and grey.metadata["channels"] == "luminance"
    with pytest.raises(InputError, match=r"is a colour image but channel='error'"):
        read_image(path, channel="error")


def test_multiframe_dicom_is_a_volume() -> None:
    vol = read_image(pydicom_file("emri_small.dcm"))
    assert vol.shape == (64, 64, 10) and vol.modality == "MR"


def test_detect_format_by_content(tmp_path: Path) -> None:
    src = pydicom_file("CT_small.dcm")
    plain = tmp_path / "IM0001"
    plain.write_bytes(src.read_bytes())
    assert detect_format(plain) == "dicom"
    assert read_image(plain).shape == (128, 128, 1)
    assert detect_format(tmp_path) == "dicom-series"
