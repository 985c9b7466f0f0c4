"""Damaged files are refused, never repaired with zeros (issue 10).

Every kind of damage goes through ``medsam2 segment`` as a user would meet it: exit code 2, exactly
one line on stderr (C-library chatter included: captured at the file-descriptor level) that names
the file and the problem, and no output file. Every refusal happens before the model is loaded.
"""

from __future__ import annotations

import gzip
import re
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from data_files import pydicom_series_dir
from PIL import Image

from medsam2.cli.main import main
from medsam2.errors import InputError
from medsam2.io import read_image

Builder = Callable[[Path], Path]


def _volume(folder: Path, name: str, compress: bool = False, dtype: type = np.int16) -> Path:
    array = (np.arange(8 * 16 * 20) % 200).astype(dtype).reshape(8, 16, 20)  # (k, j, i)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.0))
    sitk.WriteImage(image, str(folder / name), useCompression=compress)
    return folder / name


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _edit(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert old in data, (old, data[:400])
    path.write_bytes(data.replace(old, new, 1))
    return path


def _nifti_header_field(path: Path, offset: int, value: np.ndarray, *more: tuple[int, np.ndarray]) -> Path:
    raw = bytearray(gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes())
    for at, new in ((offset, value), *more):
        raw[at : at + new.nbytes] = new.tobytes()
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return path


def _flip_gzip_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _picture(folder: Path, name: str) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 80), dtype=np.uint8)).save(folder / name)
    return folder / name


def _series_without_last_slice(folder: Path) -> Path:
    """The end slice of a 5-slice CT series cut short: the other 4 form a regular volume, so only
    the unreadable file itself tells that a slice is missing."""
    series = folder / "ct_series"
    shutil.copytree(pydicom_series_dir(), series)
    _cut(series / "3353", 0.5)  # the slice at the end of the stack (position -1.24 mm)
    return series


def _nan_volume(folder: Path, name: str, bad: float = np.nan) -> Path:
    """A float volume with one non-finite voxel."""
    array = np.ones((8, 16, 20), np.float32)
    array[3, 4, 5] = bad
    sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / name))
    return folder / name


def _png_height(folder: Path, height: int) -> Path:
    """A PNG whose IHDR height lies (with a valid CRC, so only the size check can tell)."""
    path = _picture(folder, "a.png")
    data = bytearray(path.read_bytes())
    data[20:24] = struct.pack(">I", height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def _jpeg_height(folder: Path, height: int) -> Path:
    """A JPEG whose SOF height claims more rows than its scan data hold (libjpeg only warns)."""
    path = _picture(folder, "a.jpg")
    data = bytearray(path.read_bytes())
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 7] = struct.pack(">H", height)
    path.write_bytes(bytes(data))
    return path


def _tiff_size(folder: Path, size: int, tags: tuple[int, ...] = (256, 257)) -> Path:
    """A TIFF whose ImageWidth and ImageLength (or other) tags were damaged."""
    path = _picture(folder, "a.tif")
    data = bytearray(path.read_bytes())
    ifd = struct.unpack("<I", data[4:8])[0]
    for entry in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * entry
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in tags:
            data[at + 8 : at + 12] = struct.pack("<HH", size, 0) if kind == 3 else struct.pack("<I", size)
    path.write_bytes(bytes(data))
    return path


def _tiff_tag(folder: Path, tag: int, value: int) -> Path:
    return _tiff_size(folder, value, (tag,))


def _npy(folder: Path, name: str = "a.npy") -> Path:
    array = (np.arange(20 * 16 * 8) % 200).astype(np.int16).reshape(20, 16, 8)
    if name.endswith(".npz"):
        np.savez(folder / name, image=array)
    else:
        np.save(folder / name, array)
    return folder / name


def _dicom_bits(folder: Path) -> Path:
    import pydicom

    series = folder / "ct_series"
    shutil.copytree(pydicom_series_dir(), series)
    ds = pydicom.dcmread(series / "2392")
    ds.BitsAllocated = 32  # its 512 bytes of pixel data hold 16-bit values
    ds.save_as(series / "2392")
    return series


DIMS_30000 = np.array([3, 30000, 30000, 30000], dtype="<i2")

CASES: dict[str, tuple[Builder, str]] = {
    "nii.gz cut in half": (lambda d: _cut(_volume(d, "a.nii.gz"), 0.5), r"gzip data is truncated or corrupt"),
    "nii.gz corrupt bytes": (lambda d: _flip_gzip_middle(_volume(d, "a.nii.gz")), r"gzip data is truncated or corrupt"),
    "nrrd gzip cut": (lambda d: _cut(_volume(d, "a.nrrd", True), 0.6), r"gzip data is truncated"),
    "mha zlib cut": (lambda d: _cut(_volume(d, "a.mha", True), 0.6), r"zlib data is truncated"),
    "nii raw short": (lambda d: _cut(_volume(d, "a.nii"), 0.7), r"NIfTI data is truncated: the header describes 5,472 bytes"),
    "nrrd raw short": (lambda d: _cut(_volume(d, "a.nrrd"), 0.7), r"image data is truncated: the header describes 5,120 bytes"),
    "nhdr detached short": (
        lambda d: (_cut(_volume(d, "a.nhdr").with_name("a.raw"), 0.5), d / "a.nhdr")[1],
        r"image data is truncated: the header describes 5,120 bytes",
    ),
    "mha raw short": (lambda d: _cut(_volume(d, "a.mha"), 0.7), r"image data is truncated: the header describes 5,120 bytes"),
    "mhd detached short": (
        lambda d: (_cut(_volume(d, "a.mhd").with_name("a.raw"), 0.5), d / "a.mhd")[1],
        r"image data is truncated: the header describes 5,120 bytes",
    ),
    "nii absurd dims": (
        lambda d: _nifti_header_field(_volume(d, "a.nii"), 40, DIMS_30000),
        r"30000x30000x30000 = 27,000,000,000,000 voxels .* GiB .*refused before allocating",
    ),
    "nrrd absurd sizes": (
        lambda d: _edit(_volume(d, "a.nrrd"), b"sizes: 20 16 8", b"sizes: 20000 16000 8000"),
        r"20000x16000x8000 = 2,560,000,000,000 voxels .* GiB",
    ),
    "mha absurd DimSize": (
        lambda d: _edit(_volume(d, "a.mha"), b"DimSize = 20 16 8", b"DimSize = 20000 16000 8000"),
        r"20000x16000x8000 = 2,560,000,000,000 voxels .* GiB",
    ),
    "nii zero pixdim": (
        lambda d: _nifti_header_field(_volume(d, "a.nii.gz"), 80, np.array([0.0], "<f4"), (254, np.zeros(1, "<i2"))),
        r"pixdim \[0\.0, 0\.8.*zero, negative or non-finite voxel size",
    ),
    "nrrd zero space direction": (
        lambda d: _edit(_volume(d, "a.nrrd"), b"(0.69999999999999996,0,0)", b"(0,0,0)"),
        r"zero or negative voxel spacing \[0\.0, 0\.8.*\(space directions\)",
    ),
    "mha infinite spacing": (
        lambda d: _edit(_volume(d, "a.mha"), b"ElementSpacing = 0.69999999999999996", b"ElementSpacing = inf"),
        r"non-finite voxel spacing \[inf, 0\.8",
    ),
    "nrrd NaN voxel": (
        lambda d: _nan_volume(d, "a.nrrd"),
        r"1 voxel\(s\) are NaN or infinite",
    ),
    "nii Inf voxel": (
        lambda d: _nan_volume(d, "a.nii", np.inf),
        r"1 voxel\(s\) are NaN or infinite",
    ),
    "mha 0-sized axis": (lambda d: _edit(_volume(d, "a.mha"), b"DimSize = 20 16 8", b"DimSize = 20 0 8"), r"zero size"),
    "nrrd 0-sized axis": (lambda d: _edit(_volume(d, "a.nrrd"), b"sizes: 20 16 8", b"sizes: 20 16 0"), r"zero size"),
    "nii 0-sized axis": (
        lambda d: _nifti_header_field(_volume(d, "a.nii"), 40, np.array([3, 20, 0, 8], "<i2")),
        r"zero size \(NIfTI dim \[20, 0, 8\]\)",
    ),
    "dicom series, a slice cut short": (_series_without_last_slice, r"DICOM file 3353 in this folder cannot be read"),
    "png height lies": (lambda d: _png_height(d, 70), r"PNG pixel data is truncated: the header describes 5,670 bytes"),
    "png height lies, smaller": (lambda d: _png_height(d, 63), r"PNG pixel data holds 81 bytes more than"),
    "dicom BitsAllocated lies": (
        _dicom_bits,
        r"DICOM file 2392 holds 512 bytes of pixel data but its Rows 16 x Columns 16 x BitsAllocated 32",
    ),
    "nii dims smaller than data": (
        lambda d: _nifti_header_field(_volume(d, "a.nii.gz"), 46, np.array([7], "<i2")),
        r"NIfTI data holds 640 bytes more than",
    ),
    "mha DimSize smaller than data": (
        lambda d: _edit(_volume(d, "a.mha"), b"DimSize = 20 16 8", b"DimSize = 19 16 8"),
        r"image data holds 256 bytes more than",
    ),
    "mha garbled key": (
        lambda d: _edit(_volume(d, "a.mha"), b"ElementSpacing", b"ElewentSpacing"),
        r"unknown key 'ElewentSpacing' \(a damaged ElementSpacing\?\)",
    ),
    "mha garbled value": (
        lambda d: _edit(_volume(d, "a.mha"), b"Offset = 0 0 0", b"Offset = 0 0 \x8e"),
        r"header field Offset = .* is not a list of numbers",
    ),
    "nrrd spatial axis without direction": (
        lambda d: _edit(_volume(d, "a.nrrd"), b"space directions: (0.69999999999999996,0,0)", b"space directions: none"),
        r"no space direction for spatial axis 0",
    ),
    "jpeg height lies": (lambda d: _jpeg_height(d, 80), r"JPEG data is damaged \(Corrupt JPEG data"),
    "tiff absurd size": (lambda d: _tiff_size(d, 65535), r"65535x65535x1 = 4,294,836,225 voxels.* GiB"),
    "tiff ImageLength lies": (lambda d: _tiff_tag(d, 257, 70), r"TIFF strip data is truncated: the header describes 5,600 bytes"),
    "tiff BitsPerSample lies": (lambda d: _tiff_tag(d, 258, 16), r"TIFF strip data is truncated: the header describes 10,240 bytes"),
    "npy cut short": (lambda d: _cut(_npy(d), 0.6), r"array data is truncated: the header describes 5,120 bytes"),
    "npy shape smaller than data": (
        lambda d: _edit(_npy(d), b"(20, 16, 8)", b"(19, 16, 8)"),
        r"array data holds 256 bytes more than",
    ),
    "npy absurd shape": (
        lambda d: _edit(_npy(d), b"(20, 16, 8)", b"(20000, 16000, 8000)"),
        r"array header describes 20000x16000x8000 = 2,560,000,000,000 voxels",
    ),
    "npz cut short": (lambda d: _cut(_npy(d, "a.npz"), 0.6), r"cannot read this npz file \(truncated or corrupt\)"),
    "png cut short": (lambda d: _cut(_picture(d, "a.png"), 0.5), r"PNG pixel data is (truncated|corrupt)"),
    "jpeg cut short": (lambda d: _cut(_picture(d, "a.jpg"), 0.5), r"cannot read this JPEG \(truncated"),
    "tiff cut short": (lambda d: _cut(_picture(d, "a.tif"), 0.5), r"TIFF strips run past the end of the file \(truncated"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_input_is_refused_by_segment(
    tmp_path: Path, case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    build, problem = CASES[case]
    src = build(tmp_path)
    out = tmp_path / "out" / "mask.nii.gz"
    out.parent.mkdir()
    capfd.readouterr()
    rc = main(["segment", str(src), "--point", "2,2,2", "-o", str(out), "--device", "cpu"])
    err = capfd.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line: no traceback, no library chatter
    assert lines[0].startswith(f"medsam2 segment: error: {src}"), lines[0]
    assert re.search(problem, lines[0]), (problem, lines[0])
    assert list(out.parent.iterdir()) == []  # nothing written, not even a temporary file


def test_undamaged_sources_of_the_cases_are_read(tmp_path: Path) -> None:
    """The builders start from valid files: the refusals above are caused by the damage alone."""
    for name in ("a.nii.gz", "a.nii", "a.nrrd", "a.mha"):
        for compress in (False, True):
            vol = read_image(_volume(tmp_path, name, compress))
            assert vol.shape == (20, 16, 8) and np.allclose(vol.spacing, (0.7, 0.8, 2.0))
    for name in ("b.nhdr", "c.mhd"):
        assert read_image(_volume(tmp_path, name)).shape == (20, 16, 8)
    assert read_image(pydicom_series_dir()).shape == (16, 16, 5)
    for name in ("a.png", "a.jpg", "a.tif"):
        assert read_image(_picture(tmp_path, name)).shape == (80, 64)


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda d: _png_height(d, 70), "the PNG pixel data is truncated"),
        (lambda d: _jpeg_height(d, 80), "the JPEG data is damaged"),
    ],
)
def test_segment_images_refuses_an_image_whose_size_lies(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], build: Builder, problem: str
) -> None:
    """`segment-images` reads through Pillow, which fills missing rows: refused too."""
    src = build(tmp_path)
    out = tmp_path / "out"
    capfd.readouterr()
    rc = main(
        ["segment-images", "--prompt-image", str(src), "--point", "5,5", "--device", "cpu", "-o", str(out)]
    )
    lines = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, lines
    assert f"{src}: {problem}" in lines[0]
    assert not out.exists() or not list(out.rglob("*"))


def test_header_needing_more_memory_than_available_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Below the absurd-voxel cap, the limit is the memory the machine has (here: pretend 1 GiB)."""
    import medsam2.io.integrity as integrity

    monkeypatch.setattr(integrity, "available_memory", lambda: 1024**3)
    src = _edit(_volume(tmp_path, "a.mha"), b"DimSize = 20 16 8", b"DimSize = 1024 1024 200")
    out = tmp_path / "mask.nii.gz"
    capfd.readouterr()
    rc = main(["segment", str(src), "--point", "2,2,2", "-o", str(out), "--device", "cpu"])
    line = capfd.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert (
        f"{src}: the header describes 1024x1024x200 = 209,715,200 voxels; reading it needs about 1.2 GiB"
        in line
    )
    assert "only 1.0 GiB of memory is available; refused before allocating" in line


def test_tiff_that_simpleitk_would_read_at_reduced_bit_depth_is_refused(tmp_path: Path) -> None:
    """Not damage, but the same silent loss: ITK reads some TIFF layouts (here 3 x 16-bit samples)
    through an 8-bit RGBA fallback with only a warning; medsam2 refuses instead."""
    tifffile = pytest.importorskip("tifffile")
    src = tmp_path / "three16.tif"
    planes = np.random.default_rng(0).integers(0, 4000, (3, 33, 47), dtype=np.uint16)
    tifffile.imwrite(src, planes, photometric="rgb", planarconfig="separate")
    with pytest.raises(
        InputError, match=r"three16.tif: SimpleITK can read this TIFF layout only .* losing bit depth"
    ):
        read_image(src)
    grey16 = tmp_path / "grey16.tif"
    tifffile.imwrite(grey16, np.full((33, 47), 40000, dtype=np.uint16))
    assert int(read_image(grey16).array.max()) == 40000  # a plain 16-bit page keeps its values
