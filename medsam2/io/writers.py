"""`write_mask`: a label array written with exactly the geometry of the image it belongs to.

Labels are stored as uint8, or uint16 when the largest label exceeds 255 (labels above 65535,
negative or fractional labels are refused). The output has the reference's shape, spacing,
origin and direction. Formats: NIfTI (``.nii.gz``/``.nii``, the default for volumes), NRRD
(``.nrrd``), MetaImage (``.mha``; the two-file ``.mhd`` is not written because it cannot be
replaced atomically), PNG (2D; the default for 2D images), TIFF, ``.npy`` (same array order as
the input ``.npy``) and DICOM SEG (``.dcm``, for DICOM inputs; needs the ``dicom`` extra).
NIfTI stores geometry as float32 (about 1e-5 mm at 100 mm from the origin); NRRD and MHA keep
doubles. Every write is atomic (`medsam2.io.atomic`): a failure leaves no file under ``path``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medsam2.errors import InputError
from medsam2.io.atomic import atomic_output, full_suffix
from medsam2.io.convert import array_to_image, check_geometry, quiet_itk, sitk_reason
from medsam2.io.dicom_seg import require_highdicom, write_dicom_seg_file
from medsam2.types import Volume

__all__ = ["MASK_FORMATS", "mask_format_for", "prepare_labels", "write_mask"]

_log = logging.getLogger(__name__)

MASK_FORMATS = {
    "nifti": (".nii.gz", ".nii"),
    "nrrd": (".nrrd",),
    "mha": (".mha",),
    "png": (".png",),
    "tiff": (".tif", ".tiff"),
    "npy": (".npy",),
    "dicom-seg": (".dcm",),
}
"""Mask format -> accepted file suffixes (the first is the usual one)."""

_INPUT_TO_MASK = {
    "nrrd": "nrrd",
    "metaimage": "mha",
    "png": "png",
    "tiff": "tiff",
    "npy": "npy",
    "npz": "npy",
}


def mask_format_for(reference: Volume, *, like_input: bool = False) -> str:
    """The mask format to use for ``reference``: NIfTI for volumes and PNG for 2D images, or with
    ``like_input`` the input's own format (NRRD, MHA for .mha/.mhd, PNG, TIFF, npy, DICOM SEG for
    DICOM; NIfTI for NIfTI, JPEG and BMP inputs)."""
    fmt = reference.metadata.get("format", "")
    if like_input:
        if fmt == "dicom":
            return "dicom-seg"
        if fmt in _INPUT_TO_MASK:
            return _INPUT_TO_MASK[fmt]
    return "png" if reference.ndim == 2 else "nifti"


def _resolve_format(path: Path, format: str | None, reference: Volume) -> str:
    suffix = full_suffix(path)
    if format == "input":
        format = mask_format_for(reference, like_input=True)
    if format is None:
        for name, suffixes in MASK_FORMATS.items():
            if suffix in suffixes:
                return name
        hint = " (.mhd/.nhdr are two-file formats; use .mha/.nrrd)" if suffix in (".mhd", ".nhdr") else ""
        known = ", ".join(s for sfx in MASK_FORMATS.values() for s in sfx)
        raise InputError(
            f"{path}: cannot write a mask as '{suffix or '(no suffix)'}'{hint}; use one of {known}"
        )
    if format not in MASK_FORMATS:
        raise InputError(
            f"format={format!r} is not a mask format; use one of {sorted(MASK_FORMATS)} or 'input'"
        )
    if suffix not in MASK_FORMATS[format]:
        raise InputError(
            f"{path}: format {format!r} needs a file name ending in {' or '.join(MASK_FORMATS[format])}"
        )
    return format


def prepare_labels(mask: np.ndarray, reference: Volume, path: str | os.PathLike[str]) -> np.ndarray:
    """Check ``mask`` against ``reference`` and return it as uint8 (uint16 when a label exceeds 255)."""
    arr = np.asarray(mask)
    if tuple(arr.shape) != tuple(reference.shape):
        raise InputError(
            f"{path}: mask shape {tuple(arr.shape)} does not match the image shape {reference.shape} "
            f"of {reference.source}"
        )
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise InputError(
                f"{path}: mask values must be whole-number labels (got fractional or NaN values)"
            )
    elif arr.dtype.kind not in "ui":
        raise InputError(f"{path}: mask dtype {arr.dtype} is not a label type (use integers or bool)")
    low, high = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if low < 0 or high > 65535:
        raise InputError(f"{path}: mask labels must lie in 0..65535 (got {low:g}..{high:g})")
    return arr.astype(np.uint8 if high <= 255 else np.uint16)


def _write_sitk(labels: np.ndarray, reference: Volume, tmp: Path, fmt: str, out: Path) -> None:
    image = array_to_image(labels, reference.spacing, reference.origin, reference.direction)
    try:
        with quiet_itk():
            sitk.WriteImage(image, str(tmp), useCompression=fmt in ("nrrd", "mha"))
    except RuntimeError as exc:
        raise InputError(f"{out}: SimpleITK could not write the mask: {sitk_reason(exc)}") from exc


def _write(labels: np.ndarray, reference: Volume, tmp: Path, fmt: str, out: Path) -> None:
    if fmt == "npy":
        with open(tmp, "wb") as fh:
            np.save(fh, labels)
    elif fmt == "dicom-seg":
        write_dicom_seg_file(labels, reference, tmp, display=out)
    else:
        _write_sitk(labels, reference, tmp, fmt, out)


def write_mask(
    mask: np.ndarray,
    reference: Volume,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
) -> Path:
    """Write ``mask`` (labels, shape ``reference.shape``) with ``reference``'s geometry; return the path.

    ``format``: None to follow the suffix of ``path``; a name in `MASK_FORMATS` (the suffix must
    match); or ``"input"`` for the input's own format (`mask_format_for` with ``like_input``).
    Raises `InputError` (and leaves no file at ``path``) for a shape mismatch, bad labels, a bad
    reference geometry, a 2D-only format for a 3D image, or an unwritable destination.
    """
    out = Path(path).expanduser()
    fmt = _resolve_format(out, format, reference)
    labels = prepare_labels(mask, reference, out)
    check_geometry(reference)
    if fmt == "png" and reference.ndim != 2:
        raise InputError(f"{out}: PNG holds 2D masks only; this image is {reference.ndim}D (use .nii.gz)")
    if fmt == "dicom-seg":
        if reference.metadata.get("format") != "dicom":
            raise InputError(f"{out}: a DICOM SEG needs a DICOM input; {reference.source} is not DICOM")
        require_highdicom()
    with atomic_output(out) as tmp:
        _write(labels, reference, tmp, fmt, out)
    _log.info("wrote mask %s (%s, %s, labels up to %d)", out, fmt, labels.dtype, int(labels.max(initial=0)))
    return out
