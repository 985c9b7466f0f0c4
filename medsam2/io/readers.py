"""`read_image`: one entry point for every supported input, returning a checked `Volume`.

Dispatch: a folder -> DICOM series; ``.nii``/``.nii.gz`` (NIfTI-1 and NIfTI-2), ``.nrrd``/``.nhdr``,
``.mha``/``.mhd`` -> SimpleITK volume readers; ``.dcm``/``.dicom``/``.ima`` or any file with a DICOM
preamble -> single DICOM file; ``.png``/``.jpg``/``.jpeg``/``.tif``/``.tiff``/``.bmp`` -> 2D images;
``.npy``/``.npz`` -> bare arrays (unit spacing, zero origin, identity direction; the array is taken
as ``array[i, j, k]`` exactly as stored, no transpose). Other suffixes are offered to SimpleITK.

Every failure is an `InputError` naming the file and the problem; nothing is half-read.
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import SimpleITK as sitk

from medsam2.errors import InputError
from medsam2.io.atomic import full_suffix
from medsam2.io.channels import apply_channel_policy
from medsam2.io.convert import (
    image_geometry,
    image_to_array,
    quiet_itk,
    select_frame,
    sitk_reason,
    validate_volume,
)
from medsam2.io.dicom import read_dicom_file, read_dicom_series
from medsam2.io.headers import check_metaimage_file, check_nrrd_file
from medsam2.io.images2d import IMAGE_SUFFIXES, read_image2d
from medsam2.io.integrity import captured_output, check_data_length, check_voxel_budget
from medsam2.io.nifti import (
    check_nifti_data,
    check_nifti_finite,
    check_nifti_geometry,
    is_nifti2,
    nifti2_as_nifti1,
)
from medsam2.types import Volume

__all__ = ["VOLUME_SUFFIXES", "detect_format", "read_image"]

_log = logging.getLogger(__name__)

VOLUME_SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
}
_DICOM_SUFFIXES = {".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom"}
_ARRAY_SUFFIXES = {".npy": "npy", ".npz": "npz"}
SUPPORTED = "NIfTI (.nii, .nii.gz), NRRD, MHA/MHD, DICOM (file or folder), PNG, JPEG, TIFF, BMP, .npy, .npz"


def _has_dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _probe(path: Path) -> str | None:
    """Ask SimpleITK which reader would open ``path``; map it to a format name."""
    try:
        io_name = sitk.ImageFileReader().GetImageIOFromFileName(str(path))
    except RuntimeError:
        return None
    names = {
        "GDCMImageIO": "dicom",
        "NiftiImageIO": "nifti",
        "NrrdImageIO": "nrrd",
        "MetaImageIO": "metaimage",
        "PNGImageIO": "png",
        "JPEGImageIO": "jpeg",
        "TIFFImageIO": "tiff",
        "BMPImageIO": "bmp",
    }
    if io_name in names:
        return names[io_name]
    return "image" if io_name else None


def detect_format(path: str | os.PathLike[str]) -> str:
    """Format name of ``path``: 'dicom-series', 'nifti', 'nrrd', 'metaimage', 'dicom', 'png', 'jpeg',
    'tiff', 'bmp', 'npy', 'npz' or 'image' (another SimpleITK-readable file)."""
    src = Path(path)
    if src.is_dir():
        return "dicom-series"
    if not src.is_file():
        raise InputError(f"{src}: no such file or folder")
    suffix = full_suffix(src)
    for table in (VOLUME_SUFFIXES, _DICOM_SUFFIXES, IMAGE_SUFFIXES, _ARRAY_SUFFIXES):
        if suffix in table:
            return table[suffix]
    if _has_dicom_preamble(src):
        return "dicom"
    found = _probe(src)
    if found is None:
        raise InputError(
            f"{src}: unsupported or unreadable file type '{suffix or '(none)'}'; supported: {SUPPORTED}"
        )
    return found


def _read_itk(path: Path) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with quiet_itk(), captured_output():
            image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"{path}: cannot read this file (truncated, corrupt or not the format its name says): {sitk_reason(exc)}"
        ) from exc
    return image


def _read_nifti(path: Path) -> tuple[sitk.Image, str]:
    """Read a NIfTI-1/2 file, refusing what ITK would silently alter (`medsam2.io.nifti`)."""
    source = str(path)
    if is_nifti2(path):
        with nifti2_as_nifti1(path) as converted:
            check_nifti_data(converted, source)
            image = _read_itk(converted)
            check_nifti_geometry(converted, *image_geometry(image), source=source)
            check_nifti_finite(converted, source)
        return image, "nifti2"
    check_nifti_data(path, source)
    image = _read_itk(path)
    check_nifti_geometry(path, *image_geometry(image), source=source)
    check_nifti_finite(path, source)
    return image, "nifti"


_HEADER_CHECKS = {"nrrd": check_nrrd_file, "metaimage": check_metaimage_file}


def _read_volume_file(path: Path, fmt: str, frame: int | None, channel: int | str | None) -> Volume:
    source = str(path)
    if fmt == "nifti":
        image, fmt = _read_nifti(path)
    else:
        if fmt in _HEADER_CHECKS:
            _HEADER_CHECKS[fmt](path, source)
        image = _read_itk(path)
    ndim = image.GetDimension()
    array, geometry = select_frame(image_to_array(image), image_geometry(image), ndim, frame, source)
    ndim = min(ndim, 3)
    array, how = apply_channel_policy(array, ndim, channel, source, colour=False)
    metadata = {"format": fmt, "channels": how}
    if frame is not None:
        metadata["frame"] = str(frame)
    return validate_volume(Volume(array, *geometry, source=source, metadata=metadata))


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)
        if key is None:
            if len(keys) != 1:
                raise InputError(
                    f"{path}: holds {len(keys)} arrays {keys}; choose one with key= (CLI: --key NAME)"
                )
            key = keys[0]
        if key not in keys:
            raise InputError(f"{path}: has no array named {key!r}; it holds {keys}")
        return np.asarray(npz[key])


def _check_npy(fh: BinaryIO, size: int, source: str) -> None:
    """The .npy header's shape must be affordable and describe exactly the bytes that follow it."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(fh)
        read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read_header is None:
            return
        shape, _, dtype = read_header(fh)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{source}: cannot read this array's header (truncated or corrupt): {exc}") from exc
    if dtype.hasobject:
        return  # np.load(allow_pickle=False) refuses it with its own message
    check_voxel_budget(source, shape or (1,), dtype.itemsize, "array header")
    check_data_length(source, size - fh.tell(), math.prod(shape) * dtype.itemsize, "array data", exact=True)


def _check_array_file(path: Path, fmt: str) -> None:
    if fmt == "npy":
        with open(path, "rb") as fh:
            _check_npy(fh, path.stat().st_size, str(path))
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as fh:
                    _check_npy(fh, info.file_size, f"{path} [{info.filename}]")  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read this npz file (truncated or corrupt): {exc}") from exc


def _read_array_file(path: Path, fmt: str, key: str | None, frame: int | None) -> Volume:
    if fmt == "npy" and key is not None:
        raise InputError(f"{path}: key={key!r} applies only to .npz files")
    _check_array_file(path, fmt)
    try:
        array = _load_npz(path, key) if fmt == "npz" else np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{path}: cannot read this {fmt} file (truncated, corrupt or holds objects): {exc}"
        ) from exc
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "uif":
        raise InputError(f"{path}: array dtype {array.dtype} is not a number type")
    if not 2 <= array.ndim <= 4:
        raise InputError(
            f"{path}: array has {array.ndim} dimensions {array.shape}; need 2D, 3D or 4D (with frame=)"
        )
    nd = array.ndim
    geometry = (tuple([1.0] * nd), tuple([0.0] * nd), np.eye(nd))
    array, geometry = select_frame(array, geometry, nd, frame, str(path))
    metadata = {"format": fmt, "channels": "grey"}
    if key is not None:
        metadata["key"] = key
    return validate_volume(Volume(array, *geometry, source=str(path), metadata=metadata))


def _check_arguments(
    fmt: str, path: Path, series_uid: str | None, key: str | None, channel: object, frame: int | None
) -> None:
    if frame is not None and fmt in ("dicom-series", "dicom"):
        raise InputError(
            f"{path}: frame= does not apply to DICOM input (the frames of a DICOM file are its slices)"
        )
    if series_uid is not None and fmt not in ("dicom-series", "dicom"):
        raise InputError(f"{path}: series_uid= applies only to DICOM folders, not to a {fmt} file")
    if key is not None and fmt not in ("npy", "npz"):
        raise InputError(f"{path}: key= applies only to .npz files")
    if channel is not None and fmt in ("npy", "npz"):
        raise InputError(f"{path}: channel= does not apply to .npy/.npz arrays (they are used as stored)")


def read_image(
    path: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    frame: int | None = None,
    channel: int | str | None = None,
    key: str | None = None,
) -> Volume:
    """Read any supported image or DICOM folder into a checked `Volume` (see module doc).

    ``series_uid``: the DICOM series to read when a folder holds several. ``frame``: the volume to
    take from a 4D image (required when it has more than one). ``channel``: the channel policy for
    multi-component images (`medsam2.io.channels`: 'auto', 'grey', 'rgb', 'error' or an index).
    ``key``: the array of a multi-array ``.npz``. Raises `InputError` for anything unusable.
    """
    src = Path(path).expanduser()
    fmt = detect_format(src)
    _check_arguments(fmt, src, series_uid, key, channel, frame)
    if fmt == "dicom-series":
        volume = read_dicom_series(src, series_uid=series_uid, channel=channel)
    elif fmt == "dicom":
        volume = read_dicom_file(src, channel=channel)
        uid = volume.metadata.get("series_uid")
        if series_uid is not None and uid != series_uid.strip():
            raise InputError(f"{src}: belongs to series {uid}, not the requested {series_uid}")
    elif fmt in ("npy", "npz"):
        volume = _read_array_file(src, fmt, key, frame)
    elif fmt in IMAGE_SUFFIXES.values():
        volume = read_image2d(src, channel=channel, frame=frame, fmt=fmt)
    else:
        volume = _read_volume_file(src, fmt, frame, channel)
    _log.info("read %s: %s %s, spacing %s", src, volume.metadata.get("format"), volume.shape, volume.spacing)
    return volume
