"""NIfTI specifics: NIfTI-2 support and the header checks ITK does not make.

* SimpleITK 2.5 cannot open NIfTI-2 files. `nifti2_as_nifti1` rewrites the 540-byte NIfTI-2
  header as a 348-byte NIfTI-1 header (same data bytes, same byte order) in a temporary file,
  so that ITK's own NIfTI-1 geometry logic applies. Images larger than 32767 voxels along an
  axis (the reason NIfTI-2 exists) are refused; float64 header values become float32.
* ITK silently replaces NaN and +-Inf voxels of float NIfTI files by 0; `check_nifti_finite`
  scans the stored float data itself (in chunks) so such files are refused like any other.
* ITK silently fills missing data with zeros (a truncated .nii, a .nii.gz whose gzip stream is
  cut short) and tries to allocate whatever a damaged header asks for. `check_nifti_data`, run
  before ITK reads, refuses both: the voxel count must be affordable and the data (streamed
  through gzip when compressed, never held whole) must hold every byte the header describes.
* ITK silently replaces a zero pixdim by 1 and a negative one by its absolute value, and silently
  falls back to the qform when the sform is sheared. `check_nifti_geometry` refuses both, so a
  mask written from the result lines up with the input in every viewer (nibabel, FSL, Slicer).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medsam2.errors import InputError
from medsam2.io.integrity import check_data_length, check_voxel_budget, count_decompressed

__all__ = ["check_nifti_data", "check_nifti_finite", "check_nifti_geometry", "is_nifti2", "nifti2_as_nifti1"]

_DATATYPE_BYTES = {
    2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
    1536: 16, 1792: 16, 2048: 32, 2304: 4,
}  # fmt: skip
_GZIP_ERRORS = (OSError, EOFError, zlib.error)

_N1 = [
    ("sizeof_hdr", "i4"), ("data_type", "S10"), ("db_name", "S18"), ("extents", "i4"),
    ("session_error", "i2"), ("regular", "S1"), ("dim_info", "u1"), ("dim", "i2", (8,)),
    ("intent_p1", "f4"), ("intent_p2", "f4"), ("intent_p3", "f4"), ("intent_code", "i2"),
    ("datatype", "i2"), ("bitpix", "i2"), ("slice_start", "i2"), ("pixdim", "f4", (8,)),
    ("vox_offset", "f4"), ("scl_slope", "f4"), ("scl_inter", "f4"), ("slice_end", "i2"),
    ("slice_code", "u1"), ("xyzt_units", "u1"), ("cal_max", "f4"), ("cal_min", "f4"),
    ("slice_duration", "f4"), ("toffset", "f4"), ("glmax", "i4"), ("glmin", "i4"),
    ("descrip", "S80"), ("aux_file", "S24"), ("qform_code", "i2"), ("sform_code", "i2"),
    ("quatern_b", "f4"), ("quatern_c", "f4"), ("quatern_d", "f4"), ("qoffset_x", "f4"),
    ("qoffset_y", "f4"), ("qoffset_z", "f4"), ("srow_x", "f4", (4,)), ("srow_y", "f4", (4,)),
    ("srow_z", "f4", (4,)), ("intent_name", "S16"), ("magic", "S4"),
]  # fmt: skip
_N2 = [
    ("sizeof_hdr", "i4"), ("magic", "S4"), ("eol_check", "i1", (4,)), ("datatype", "i2"),
    ("bitpix", "i2"), ("dim", "i8", (8,)), ("intent_p1", "f8"), ("intent_p2", "f8"),
    ("intent_p3", "f8"), ("pixdim", "f8", (8,)), ("vox_offset", "i8"), ("scl_slope", "f8"),
    ("scl_inter", "f8"), ("cal_max", "f8"), ("cal_min", "f8"), ("slice_duration", "f8"),
    ("toffset", "f8"), ("slice_start", "i8"), ("slice_end", "i8"), ("descrip", "S80"),
    ("aux_file", "S24"), ("qform_code", "i4"), ("sform_code", "i4"), ("quatern_b", "f8"),
    ("quatern_c", "f8"), ("quatern_d", "f8"), ("qoffset_x", "f8"), ("qoffset_y", "f8"),
    ("qoffset_z", "f8"), ("srow_x", "f8", (4,)), ("srow_y", "f8", (4,)), ("srow_z", "f8", (4,)),
    ("slice_code", "i4"), ("xyzt_units", "i4"), ("intent_code", "i4"), ("intent_name", "S16"),
    ("dim_info", "u1"), ("unused_str", "S15"),
]  # fmt: skip
_COPIED = [name for name, *_ in _N2 if name in {n for n, *_ in _N1} and name not in ("sizeof_hdr", "magic")]


def _dtype(fields: list, order: str) -> np.dtype:
    return np.dtype([(name, order + spec, *shape) for name, spec, *shape in fields])


def _read_head(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(n)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(n)
        except _GZIP_ERRORS as exc:
            raise InputError(f"{path}: the gzip data is truncated or corrupt (in the header: {exc})") from exc
    return head


def _byte_order(head: bytes) -> str | None:
    """'<' or '>' when ``head`` starts a NIfTI-2 header, else None."""
    if len(head) < 540:
        return None
    for order in "<>":
        if int(np.frombuffer(head[:4], dtype=order + "i4")[0]) == 540 and head[4:7] in (b"n+2", b"ni2"):
            return order
    return None


def is_nifti2(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (.nii or .nii.gz) holds a NIfTI-2 header."""
    return _byte_order(_read_head(Path(path), 540)) is not None


def _read_all(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except _GZIP_ERRORS as exc:
        raise InputError(f"{path}: cannot read NIfTI-2 file (truncated or corrupt): {exc}") from exc


def _convert_header(h2: np.ndarray, order: str, path: Path) -> bytes:
    ndim = int(h2["dim"][0])
    dims = [int(d) for d in h2["dim"][1 : ndim + 1]]
    if not 1 <= ndim <= 7 or any(d <= 0 for d in dims):
        raise InputError(f"{path}: NIfTI-2 header has invalid dimensions {h2['dim'].tolist()}")
    if any(d > 32767 for d in dims):
        raise InputError(f"{path}: NIfTI-2 image {dims} has an axis longer than 32767 voxels; not supported")
    h1 = np.zeros((), dtype=_dtype(_N1, order))
    for name in _COPIED:
        h1[name] = h2[name]
    h1["sizeof_hdr"], h1["vox_offset"], h1["magic"], h1["regular"] = 348, 352.0, b"n+1", b"r"
    return h1.tobytes()


@contextlib.contextmanager
def nifti2_as_nifti1(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary NIfTI-1 copy of the NIfTI-2 file ``path`` (removed afterwards)."""
    src = Path(path)
    head = _read_head(src, 540)
    order = _byte_order(head)
    if order is None:
        raise InputError(f"{src}: not a NIfTI-2 file")
    h2 = np.frombuffer(head[:540], dtype=_dtype(_N2, order))[0]
    header = _convert_header(h2, order, src)
    ndim = int(h2["dim"][0])
    check_voxel_budget(str(src), [int(d) for d in h2["dim"][1 : ndim + 1]], max(int(h2["bitpix"]) // 8, 1))
    raw = _read_all(src)
    nbytes = int(np.prod([int(d) for d in h2["dim"][1 : ndim + 1]])) * int(h2["bitpix"]) // 8
    start = int(h2["vox_offset"]) or 544
    data = raw[start : start + nbytes]
    if len(data) < nbytes:
        raise InputError(f"{src}: NIfTI-2 file is truncated ({len(data)} of {nbytes} data bytes)")
    with tempfile.TemporaryDirectory(prefix="medsam2-nifti2-") as tmp:
        out = Path(tmp) / "converted.nii"
        out.write_bytes(header + b"\x00" * 4 + data)
        yield out


def _check_sform(h1: np.ndarray, ndim: int, geometry: tuple, source: str) -> None:
    spacing, origin, direction = geometry
    srow = np.array([h1["srow_x"], h1["srow_y"], h1["srow_z"]], dtype=np.float64)
    lps = np.diag([-1.0, -1.0, 1.0]) @ srow
    ours = np.asarray(direction, dtype=np.float64)[:ndim, :ndim] * np.asarray(spacing[:ndim])
    if not (
        np.allclose(lps[:ndim, :ndim], ours, rtol=1e-4, atol=1e-3)
        and np.allclose(lps[:ndim, 3], origin[:ndim], rtol=1e-5, atol=1e-3)
    ):
        raise InputError(
            f"{source}: the NIfTI sform is sheared or otherwise not a rotation + scaling, and SimpleITK "
            "would silently use the qform instead; resample the image to an orthogonal grid or make "
            "sform and qform agree (e.g. nibabel: img.set_qform(img.get_sform()))"
        )


def _dims(h1: np.ndarray, source: str) -> tuple[int, ...]:
    ndim = int(h1["dim"][0])
    if not 1 <= ndim <= 7:
        raise InputError(f"{source}: NIfTI header has an invalid dim[0] = {ndim}")
    dims = tuple(int(d) for d in h1["dim"][1 : ndim + 1])
    if any(d <= 0 for d in dims):
        raise InputError(f"{source}: image has zero size (NIfTI dim {list(dims)})")
    return dims


def check_nifti_data(path: str | os.PathLike[str], source: str) -> None:
    """Before ITK reads a NIfTI-1 file: refuse invalid or unaffordable dimensions and data shorter
    than the header describes (counted through the gzip stream for .nii.gz; module doc)."""
    head = _read_head(Path(path), 348)
    if len(head) < 348:
        raise InputError(
            f"{source}: cannot read this file: the NIfTI header is truncated ({len(head)} of 348 bytes)"
        )
    found = _header1(Path(path))
    if found is None:
        size = int(np.frombuffer(head[:4], "<i4")[0])
        raise InputError(
            f"{source}: cannot read this file: not a NIfTI-1 header (sizeof_hdr {size}, expected 348; damaged or not NIfTI)"
        )
    h1, data_path, _ = found
    dims = _dims(h1, source)
    per_voxel = _DATATYPE_BYTES.get(int(h1["datatype"]))
    check_voxel_budget(source, dims, per_voxel or 1, "NIfTI header")
    if per_voxel is None or not data_path.is_file():
        return  # ITK refuses unknown datatypes and missing .img files itself
    offset = float(h1["vox_offset"])
    if not np.isfinite(offset) or offset < 0:
        raise InputError(f"{source}: NIfTI header has an invalid vox_offset {offset}")
    need = int(offset) + int(np.prod(dims)) * per_voxel
    with open(data_path, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b":
            fh.seek(0)
            have = count_decompressed(fh, "gzip", source)
        else:
            have = data_path.stat().st_size
    check_data_length(source, have, need, "NIfTI data", exact=data_path == Path(path))


def check_nifti_geometry(
    path: str | os.PathLike[str],
    spacing: tuple[float, ...],
    origin: tuple[float, ...],
    direction: np.ndarray,
    source: str,
) -> None:
    """Refuse a NIfTI-1 file that ITK would read with silently changed geometry or data (module doc):
    a zero dimension (ITK makes it 1), a sform ITK cannot represent, a zero/negative/NaN pixdim
    when no sform is used (ITK makes it 1 or positive). Missing data bytes: `check_nifti_data`."""
    found = _header1(Path(path))
    if found is None:
        return
    h1 = found[0]
    dims = _dims(h1, source)
    ndim = min(len(dims), 3, len(spacing))
    if int(h1["sform_code"]) > 0:
        _check_sform(h1, ndim, (spacing, origin, direction), source)
        return
    pixdim = [float(v) for v in h1["pixdim"][1 : ndim + 1]]
    if any(not np.isfinite(p) or p <= 0 for p in pixdim):
        raise InputError(
            f"{source}: NIfTI pixdim {pixdim} has a zero, negative or non-finite voxel size; "
            "fix the header (every spacing must be > 0 mm)"
        )


_FLOAT_TYPES = {16: "f4", 64: "f8"}
_CHUNK = 1 << 24


def _open_data(path: Path) -> gzip.GzipFile | io.BufferedReader:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # noqa: SIM115


def _scan_nonfinite(data_path: Path, offset: int, dtype: np.dtype, total: int) -> tuple[int, int]:
    """(number of non-finite values, flat index of the first) among ``total`` values at ``offset``."""
    count, first, done = 0, -1, 0
    step = _CHUNK // dtype.itemsize
    with _open_data(data_path) as fh:
        fh.seek(offset)
        while done < total:
            values = np.frombuffer(fh.read(min(step, total - done) * dtype.itemsize), dtype=np.uint8)
            values = values[: values.size - values.size % dtype.itemsize].view(dtype)
            if values.size == 0:
                break
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size and first < 0:
                first = done + int(bad[0])
            count, done = count + int(bad.size), done + values.size
    return count, first


def _header1(path: Path) -> tuple[np.ndarray, Path, str] | None:
    head = _read_head(path, 348)
    for order in "<>":
        if len(head) == 348 and int(np.frombuffer(head[:4], order + "i4")[0]) == 348:
            h1 = np.frombuffer(head, dtype=_dtype(_N1, order))[0]
            if bytes(h1["magic"])[:3] == b"ni1":
                return h1, path.with_suffix(".img"), order
            return h1, path, order
    return None


def check_nifti_finite(path: str | os.PathLike[str], source: str) -> None:
    """Refuse a NIfTI-1 file whose stored float voxels include NaN or +-Inf (ITK reads them as 0)."""
    found = _header1(Path(path))
    if found is None:
        return
    h1, data_path, order = found
    kind = _FLOAT_TYPES.get(int(h1["datatype"]))
    ndim = int(h1["dim"][0])
    if kind is None or not 1 <= ndim <= 7 or not data_path.is_file():
        return
    dims = tuple(int(d) for d in h1["dim"][1 : ndim + 1])
    dtype = np.dtype(order + kind)
    try:
        count, first = _scan_nonfinite(data_path, int(h1["vox_offset"]), dtype, int(np.prod(dims)))
    except _GZIP_ERRORS as exc:
        raise InputError(f"{source}: cannot read NIfTI data (truncated or corrupt): {exc}") from exc
    if count:
        index = tuple(int(i) for i in np.unravel_index(first, dims, order="F"))
        raise InputError(
            f"{source}: {count} voxel(s) are NaN or infinite (first at index {index[:3]}); "
            "replace them with a finite value (e.g. 0) before segmenting"
        )
