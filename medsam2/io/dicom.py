"""DICOM input through SimpleITK (GDCM): series in a folder, and single files.

Headers are read with ``ImageFileReader.ReadImageInformation`` (no pixel data, ~2 ms a file).
A folder may hold several series; `list_dicom_series` lists them and `read_dicom_series` reads
one, chosen by SeriesInstanceUID when there are several. Slices are ordered by position along
the slice normal and the series must form a regular grid (`medsam2.io.dicom_geometry`).
Rescale slope/intercept are applied by GDCM; when they differ between slices (PET) the series is
read as float32 so that no slice is truncated. Only the top folder is scanned (not subfolders).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medsam2.errors import InputError
from medsam2.io.channels import apply_channel_policy
from medsam2.io.convert import image_geometry, image_to_array, quiet_itk, sitk_reason, validate_volume
from medsam2.io.dicom_geometry import order_slices, parse_ds
from medsam2.io.integrity import check_voxel_budget
from medsam2.types import Volume

__all__ = ["DicomSeriesInfo", "list_dicom_series", "read_dicom_file", "read_dicom_series"]

_log = logging.getLogger(__name__)

_TAGS = {
    "series_uid": "0020|000e", "study_uid": "0020|000d", "frame_of_reference_uid": "0020|0052",
    "series_description": "0008|103e", "series_number": "0020|0011", "modality": "0008|0060",
    "position": "0020|0032", "orientation": "0020|0037", "slope": "0028|1053",
    "intercept": "0028|1052", "rows": "0028|0010", "columns": "0028|0011",
    "frames": "0028|0008", "photometric": "0028|0004", "sop_class_uid": "0008|0016",
    "bits": "0028|0100", "samples": "0028|0002",
}  # fmt: skip
# SOP classes without pixel data that GDCM cannot open as images (SR, RT plans/records, KO, PR)
_NON_IMAGE_SOP = (
    b"1.2.840.10008.5.1.4.1.1.88.",
    b"1.2.840.10008.5.1.4.1.1.481.",
    b"1.2.840.10008.5.1.4.1.1.11.",
)
_NOT_IMAGES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC", "RWV"}
_COLOUR = ("RGB", "YBR", "PALETTE")
_SERIES_KEYS = ("series_uid", "study_uid", "frame_of_reference_uid", "series_description", "photometric")


@dataclass(frozen=True)
class DicomSeriesInfo:
    """One series found in a folder."""

    uid: str
    description: str
    modality: str
    series_number: str
    files: tuple[str, ...] = field(repr=False)

    @property
    def n_files(self) -> int:
        return len(self.files)

    def describe(self) -> str:
        """One line: UID, description, modality, number of files."""
        desc = self.description or "(no description)"
        return f"{self.uid}  '{desc}'  {self.modality or '?'}  series {self.series_number or '?'}, {self.n_files} file(s)"


def _read_header(path: Path) -> dict[str, str] | None:
    """Selected tags of a DICOM file, or None when GDCM cannot read it as an image."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    try:
        with quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        _log.debug("skipping %s: %s", path, sitk_reason(exc))
        return None
    tags = {key: reader.GetMetaData(tag).strip() for key, tag in _TAGS.items() if reader.HasMetaDataKey(tag)}
    tags["path"] = str(path)
    return tags


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _scan_all(folder: Path) -> tuple[dict[str, list[dict[str, str]]], list[Path]]:
    """(headers by series UID, files that look like DICOM but that GDCM cannot read)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: is not a folder")
    series: dict[str, list[dict[str, str]]] = {}
    unreadable = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file() or entry.name.upper() == "DICOMDIR":
            continue
        tags = _read_header(entry)
        if tags is None and _looks_like_dicom(entry):
            unreadable.append(entry)
        if tags is None or not tags.get("series_uid"):
            continue
        series.setdefault(tags["series_uid"], []).append(tags)
    if not series:
        subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        hint = f" (it has subfolders: {', '.join(subdirs[:8])}; pass one of them)" if subdirs else ""
        bad = (
            f" ({len(unreadable)} DICOM file(s) cannot be read, e.g. {unreadable[0].name})"
            if unreadable
            else ""
        )
        raise InputError(f"{folder}: no readable DICOM image files in this folder{bad}{hint}")
    return series, unreadable


def _scan(folder: Path) -> dict[str, list[dict[str, str]]]:
    return _scan_all(folder)[0]


def _refuse_unreadable(unreadable: list[Path], uid: str, others: set[str], source: str) -> None:
    """A file that cannot be read is refused unless it visibly belongs elsewhere: a non-image object
    (SR, RT, KO, PR) or another series of the folder. Otherwise it may be a slice of this series,
    and reading the rest would silently give a volume with a slice missing."""
    for path in unreadable:
        data = path.read_bytes()
        if any(sop in data for sop in _NON_IMAGE_SOP):
            continue
        if uid.encode() not in data and any(o.encode() in data for o in others):
            continue
        raise InputError(
            f"{source}: the DICOM file {path.name} in this folder cannot be read (truncated or corrupt) and may "
            f"be a slice of this series ({len(unreadable)} unreadable file(s)); refused rather than read "
            "with a slice missing: restore the file or move it out of the folder"
        )


_PIXEL_DATA = b"\xe0\x7f\x10\x00"


def _pixel_data_length(path: Path, need: int) -> int | None:
    """Length of the native (not encapsulated) PixelData element of ``path``, or None if unknown."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(size - need - 4096, 0))
        tail = fh.read()
    at = tail.rfind(_PIXEL_DATA)
    if at < 0 or len(tail) < at + 12:
        return None
    explicit = tail[at + 4 : at + 6] in (b"OW", b"OB")
    raw = tail[at + 8 : at + 12] if explicit else tail[at + 4 : at + 8]
    length = int.from_bytes(raw, "little")
    return None if length == 0xFFFFFFFF else length


def _check_pixel_data(headers: list[dict[str, str]], source: str) -> None:
    """Each file's pixel data hold exactly Rows x Columns x BitsAllocated x samples x frames bits
    (GDCM reads a file whose header lies about them as garbage or zeros, without an error)."""
    for tags in headers:
        try:
            rows, cols = int(tags.get("rows") or 0), int(tags.get("columns") or 0)
            bits, samples = int(tags.get("bits") or 16), int(tags.get("samples") or 1)
            frames = int(tags.get("frames") or 1)
        except ValueError:
            raise InputError(f"{tags['path']}: DICOM Rows/Columns/BitsAllocated are not integers") from None
        need = (rows * cols * bits * samples * max(frames, 1) + 7) // 8
        have = _pixel_data_length(Path(tags["path"]), need)
        if have is not None and have not in (need, need + 1):  # DICOM pads odd lengths to even
            raise InputError(
                f"{source}: the DICOM file {Path(tags['path']).name} holds {have:,} bytes of pixel data but its "
                f"Rows {rows} x Columns {cols} x BitsAllocated {bits} (x {samples} samples x {frames} frames) "
                f"need {need:,}; refused (damaged header or truncated file)"
            )


def _check_budget(headers: list[dict[str, str]], source: str) -> None:
    first = headers[0]
    try:
        rows, cols = int(first.get("rows") or 0), int(first.get("columns") or 0)
        per = max(int(first.get("bits") or 16) // 8, 1) * max(int(first.get("samples") or 1), 1)
        frames = sum(max(int(h.get("frames") or 1), 1) for h in headers)
    except ValueError:
        raise InputError(
            f"{source}: DICOM Rows/Columns/BitsAllocated/NumberOfFrames are not integers"
        ) from None
    if rows <= 0 or cols <= 0:
        raise InputError(f"{source}: image has zero size (DICOM Rows {rows}, Columns {cols})")
    check_voxel_budget(source, (cols, rows, frames), per, "DICOM header")
    _check_pixel_data(headers, source)


def _info(uid: str, headers: list[dict[str, str]]) -> DicomSeriesInfo:
    first = headers[0]
    return DicomSeriesInfo(
        uid=uid,
        description=first.get("series_description", ""),
        modality=first.get("modality", ""),
        series_number=first.get("series_number", ""),
        files=tuple(h["path"] for h in headers),
    )


def _number(info: DicomSeriesInfo) -> tuple[float, str]:
    try:
        return float(info.series_number), info.uid
    except ValueError:
        return float("inf"), info.uid


def list_dicom_series(folder: str | os.PathLike[str]) -> list[DicomSeriesInfo]:
    """The DICOM series in ``folder`` (not its subfolders), ordered by series number."""
    return sorted((_info(uid, hs) for uid, hs in _scan(Path(folder)).items()), key=_number)


def _choose(folder: Path, series: dict[str, list[dict[str, str]]], uid: str | None) -> list[dict[str, str]]:
    infos = sorted((_info(u, hs) for u, hs in series.items()), key=_number)
    listing = "\n".join(f"  {info.describe()}" for info in infos)
    if uid is None:
        if len(series) == 1:
            return next(iter(series.values()))
        raise InputError(
            f"{folder}: holds {len(series)} DICOM series; choose one with series_uid= "
            f"(CLI: --series-uid UID):\n{listing}"
        )
    uid = uid.strip()
    if uid not in series:
        raise InputError(f"{folder}: has no series with UID {uid}; the folder holds:\n{listing}")
    return series[uid]


def _refuse_non_image(tags: dict[str, str], source: str) -> None:
    modality = tags.get("modality", "").upper()
    if modality in _NOT_IMAGES:
        raise InputError(
            f"{source}: is a DICOM {modality} object, not an image; pass the image series it refers to"
        )


def _is_colour(tags: dict[str, str]) -> bool:
    return tags.get("photometric", "").upper().startswith(_COLOUR)


def _to_volume(
    image: sitk.Image, tags: dict[str, str], files: list[str], source: str, channel: int | str | None
) -> Volume:
    array = image_to_array(image)
    ndim = image.GetDimension()
    array, how = apply_channel_policy(array, ndim, channel, source, colour=_is_colour(tags))
    spacing, origin, direction = image_geometry(image)
    metadata = {k: tags[k] for k in _SERIES_KEYS if tags.get(k)}
    metadata.update(format="dicom", channels=how, dicom_files="\n".join(files))
    modality = tags.get("modality") or None
    return validate_volume(Volume(array, spacing, origin, direction, source, modality, metadata))


def _execute(reader: sitk.ImageFileReader | sitk.ImageSeriesReader, source: str) -> sitk.Image:
    try:
        with quiet_itk():
            return reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{source}: cannot read DICOM pixel data: {sitk_reason(exc)}") from exc


def read_dicom_file(path: str | os.PathLike[str], *, channel: int | str | None = None) -> Volume:
    """Read one DICOM file (single- or multi-frame) as a 3D volume (one slice for single-frame)."""
    src = Path(path)
    tags = _read_header(src)
    if tags is None:
        raise InputError(f"{src}: not a readable DICOM image file (truncated, corrupt or not DICOM)")
    _refuse_non_image(tags, str(src))
    _check_budget([tags], str(src))
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(src))
    if _needs_float([tags]) and not _is_colour(tags):
        reader.SetOutputPixelType(sitk.sitkFloat32)
    image = _execute(reader, str(src))
    return _to_volume(image, tags, [str(src)], str(src), channel)


def _check_uniform(headers: list[dict[str, str]], source: str) -> None:
    sizes = {(h.get("rows"), h.get("columns")) for h in headers}
    if len(sizes) > 1:
        raise InputError(f"{source}: slices have different sizes {sorted(map(str, sizes))}; not one volume")
    if any(int(h.get("frames") or "1") > 1 for h in headers):
        raise InputError(
            f"{source}: the series has {len(headers)} multi-frame files; pass one file at a time instead"
        )


def _needs_float(headers: list[dict[str, str]]) -> bool:
    """Whether the rescaled values need floats: slopes/intercepts that differ between slices (GDCM
    would type the volume from the first slice and truncate the others) or are fractional (GDCM
    would return float64, twice the memory of float32)."""
    try:
        pairs = {(float(h.get("slope") or 1), float(h.get("intercept") or 0)) for h in headers}
    except ValueError:
        return True
    return len(pairs) > 1 or any(not a.is_integer() or not b.is_integer() for a, b in pairs)


def _verify_grid(image: sitk.Image, origin: np.ndarray, normal: np.ndarray, step: float, source: str) -> None:
    spacing, img_origin, direction = image_geometry(image)
    ok = (
        np.allclose(img_origin, origin, atol=1e-3)
        and np.allclose(direction[:, 2], normal, atol=1e-4)
        and abs(spacing[2] - step) <= 1e-3 * max(step, 1.0)
    )
    if not ok:
        raise InputError(f"{source}: SimpleITK built a different slice geometry than the headers describe")


def read_dicom_series(
    folder: str | os.PathLike[str], *, series_uid: str | None = None, channel: int | str | None = None
) -> Volume:
    """Read one series of ``folder`` as a 3D volume (module doc); ``series_uid`` picks among several."""
    src = Path(folder)
    series, unreadable = _scan_all(src)
    headers = _choose(src, series, series_uid)
    uid = headers[0]["series_uid"]
    source = f"{src} (series {uid})" if series_uid else str(src)
    _refuse_non_image(headers[0], source)
    _refuse_unreadable(unreadable, uid, set(series) - {uid}, source)
    _check_budget(headers, source)
    if len(headers) == 1:
        return read_dicom_file(headers[0]["path"], channel=channel)
    _check_uniform(headers, source)
    positions = np.stack([parse_ds(h.get("position"), 3, "ImagePositionPatient", h["path"]) for h in headers])
    orients = np.stack(
        [parse_ds(h.get("orientation"), 6, "ImageOrientationPatient", h["path"]) for h in headers]
    )
    stack = order_slices(positions, orients, source)
    files = [headers[i]["path"] for i in stack.order]
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(files)
    if _needs_float(headers) and not _is_colour(headers[0]):
        _log.info("%s: rescale slope/intercept are fractional or differ between slices; float32", source)
        reader.SetOutputPixelType(sitk.sitkFloat32)
    image = _execute(reader, source)
    _verify_grid(image, np.asarray(stack.origin), np.asarray(stack.normal), stack.step, source)
    return _to_volume(image, headers[0], files, source, channel)
