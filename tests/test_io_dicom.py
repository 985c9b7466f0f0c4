"""DICOM series: ordering by position, series choice, refused irregular series, DICOM SEG output.

Series are built from pydicom's 5-slice CT series (dicomdirtests/98892001/CT5N) copied to
tmp_path and edited with pydicom.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from data_files import pydicom_file, pydicom_series_dir

from medsam2.errors import InputError
from medsam2.io import list_dicom_series, read_image, write_dicom_seg, write_mask

pydicom = pytest.importorskip("pydicom")
from pydicom.pixels import apply_modality_lut  # noqa: E402


def _copy_series(dst: Path, names: list[str] | None = None) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(pydicom_series_dir("CT5N").iterdir())
    out = []
    for i, f in enumerate(files):
        target = dst / (names[i] if names else f.name)
        shutil.copy(f, target)
        out.append(target)
    return out


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(str(path))
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(str(path))


def _refused(folder: Path, match: str) -> None:
    """Reading ``folder`` (then writing its mask) fails with ``match``; no mask file appears."""
    out = folder.parent / "mask.nii.gz"
    with pytest.raises(InputError, match=match):
        vol = read_image(folder)
        write_mask(np.zeros(vol.shape, np.uint8), vol, out)
    assert not out.exists()


def _z(path: Path) -> float:
    return float(pydicom.dcmread(str(path)).ImagePositionPatient[2])


def _expected(files: list[Path]) -> np.ndarray:
    """pydicom's rescaled pixels, ordered by increasing z (the slice normal is +z), as (i, j, k)."""
    ordered = sorted(files, key=_z)
    return np.stack(
        [apply_modality_lut(pydicom.dcmread(str(f)).pixel_array, pydicom.dcmread(str(f))).T for f in ordered],
        axis=-1,
    )


def test_ct5n_series_geometry_and_values() -> None:
    folder = pydicom_series_dir("CT5N")
    files = sorted(folder.iterdir())
    vol = read_image(folder)
    assert vol.shape == (16, 16, 5) and vol.modality == "CT"
    assert vol.spacing == pytest.approx((0.488281, 0.488281, 2.5))
    np.testing.assert_allclose(vol.origin, [-72.199997, -143.0, -1.2375], atol=1e-5)
    np.testing.assert_allclose(vol.direction, np.eye(3), atol=1e-9)
    np.testing.assert_array_equal(vol.array, _expected(files))
    listed = vol.metadata["dicom_files"].split("\n")
    assert [_z(Path(f)) for f in listed] == sorted(_z(f) for f in files)


def test_shuffled_names_and_instance_numbers_sort_by_position(tmp_path: Path) -> None:
    files = _copy_series(tmp_path / "s", names=["b.dcm", "e.dcm", "a.dcm", "d.dcm", "c.dcm"])
    for f, number in zip(files, [3, 1, 5, 2, 4], strict=True):
        _edit(f, InstanceNumber=number)
    vol = read_image(tmp_path / "s")
    np.testing.assert_array_equal(vol.array, _expected(files))
    np.testing.assert_allclose(vol.origin[2], min(_z(f) for f in files), atol=1e-6)
    assert vol.spacing[2] == pytest.approx(2.5)


def test_missing_slice_is_refused(tmp_path: Path) -> None:
    files = sorted(_copy_series(tmp_path / "s"), key=_z)
    files[2].unlink()
    _refused(tmp_path / "s", r"missing slices: the gap between positions .* is 5.000 mm, 2.0x")


def test_non_uniform_spacing_is_refused(tmp_path: Path) -> None:
    files = sorted(_copy_series(tmp_path / "s"), key=_z)
    ipp = [float(v) for v in pydicom.dcmread(str(files[2])).ImagePositionPatient]
    _edit(files[2], ImagePositionPatient=[ipp[0], ipp[1], ipp[2] + 0.6])
    _refused(tmp_path / "s", r"non-uniform slice spacing .* resample")


def test_gantry_tilt_is_refused(tmp_path: Path) -> None:
    files = sorted(_copy_series(tmp_path / "s"), key=_z)
    for k, f in enumerate(files):
        ipp = [float(v) for v in pydicom.dcmread(str(f)).ImagePositionPatient]
        _edit(f, ImagePositionPatient=[ipp[0], ipp[1] + k * 2.5 * np.tan(np.radians(15)), ipp[2]])
    _refused(tmp_path / "s", r"gantry tilt or shear of about 15.0 degrees.*dcm2niix")


def test_duplicate_positions_are_refused(tmp_path: Path) -> None:
    files = _copy_series(tmp_path / "s")
    extra = tmp_path / "s" / "dup"
    shutil.copy(files[0], extra)
    _edit(extra, SOPInstanceUID=pydicom.uid.generate_uid())
    _refused(tmp_path / "s", r"2 images share the slice position .* several volumes")


def test_varying_rescale_is_applied_per_slice(tmp_path: Path) -> None:
    files = _copy_series(tmp_path / "s")
    _edit(files[1], RescaleSlope=0.5, RescaleIntercept=-100)
    vol = read_image(tmp_path / "s")
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, _expected(files), atol=1e-4)


def test_fractional_rescale_read_as_float32(tmp_path: Path) -> None:
    files = _copy_series(tmp_path / "s")
    for f in files:
        _edit(f, RescaleSlope=0.25, RescaleIntercept=-10.5)
    vol = read_image(tmp_path / "s")
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, _expected(files), atol=1e-4)
    single = read_image(files[0])
    assert single.array.dtype == np.float32
    np.testing.assert_allclose(single.array[..., 0], _expected([files[0]])[..., 0], atol=1e-4)


def _two_series(folder: Path) -> tuple[str, str]:
    _copy_series(folder)
    second = _copy_series(folder, names=[f"x{i}" for i in range(5)])
    uid = pydicom.uid.generate_uid()
    for f in second:
        _edit(f, SeriesInstanceUID=uid, SOPInstanceUID=pydicom.uid.generate_uid(), SeriesDescription="copy")
    first_uid = str(pydicom.dcmread(str(pydicom_series_dir("CT5N") / "2062")).SeriesInstanceUID)
    return first_uid, str(uid)


def test_two_series_listed_and_chosen_by_uid(tmp_path: Path) -> None:
    first, second = _two_series(tmp_path / "s")
    infos = list_dicom_series(tmp_path / "s")
    assert {i.uid for i in infos} == {first, second}
    assert all(i.n_files == 5 and i.modality == "CT" for i in infos)
    _refused(tmp_path / "s", r"s: holds 2 DICOM series")
    with pytest.raises(InputError) as err:
        read_image(tmp_path / "s")
    message = str(err.value)
    assert "holds 2 DICOM series; choose one with series_uid=" in message
    assert first in message and second in message and "'copy'" in message and "5 file(s)" in message
    vol = read_image(tmp_path / "s", series_uid=second)
    assert vol.metadata["series_uid"] == second
    assert len(vol.metadata["dicom_files"].split("\n")) == 5
    with pytest.raises(InputError, match=r"has no series with UID 1.2.3; the folder holds"):
        read_image(tmp_path / "s", series_uid="1.2.3")


def test_non_image_and_empty_folders_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"is a DICOM SEG object, not an image"):
        read_image(pydicom_file("liver_1frame.dcm"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(InputError, match=r"empty: no readable DICOM image files"):
        read_image(tmp_path / "empty")
    with pytest.raises(InputError, match=r"frame= does not apply to DICOM"):
        read_image(pydicom_series_dir("CT5N"), frame=0)
    np.save(tmp_path / "a.npy", np.zeros((3, 3)))
    with pytest.raises(InputError, match=r"a.npy: series_uid= applies only to DICOM"):
        read_image(tmp_path / "a.npy", series_uid="1.2")
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(pydicom_file("CT_small.dcm").read_bytes()[:3000])
    with pytest.raises(InputError, match=r"cut.dcm: (not a readable DICOM|cannot read DICOM pixel data)"):
        read_image(truncated)


def test_dicom_seg_round_trip(tmp_path: Path) -> None:
    hd = pytest.importorskip("highdicom")
    vol = read_image(pydicom_series_dir("CT5N"))
    mask = np.zeros(vol.shape, np.uint8)
    mask[2:6, 3:9, 1] = 1
    mask[8:12, 8:10, 3] = 3
    out = write_mask(mask, vol, tmp_path / "seg.dcm")
    seg = hd.seg.segread(str(out))
    assert seg.Modality == "SEG" and seg.number_of_segments == 3
    files = vol.metadata["dicom_files"].split("\n")
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    back = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    np.testing.assert_array_equal(np.asarray(back).transpose(2, 1, 0), mask)
    assert not list(tmp_path.glob(".*tmp*"))
    named = write_dicom_seg(mask, vol, tmp_path / "named.dcm", segment_labels={1: "liver", 3: "tumour"})
    labels = [s.SegmentLabel for s in pydicom.dcmread(str(named)).SegmentSequence]
    assert labels == ["liver", "object 2", "tumour"]


def test_dicom_seg_refused_for_non_dicom(tmp_path: Path) -> None:
    pytest.importorskip("highdicom")
    from medsam2.types import Volume

    ref = Volume(np.zeros((4, 4, 2), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), source="x.nii")
    with pytest.raises(InputError, match=r"seg.dcm: a DICOM SEG needs a DICOM input; x.nii is not DICOM"):
        write_mask(np.zeros((4, 4, 2), np.uint8), ref, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()
