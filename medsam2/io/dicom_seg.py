"""DICOM SEG output for DICOM inputs, through highdicom (the optional ``dicom`` extra).

The mask's slice k belongs to the k-th source file of the input volume (``metadata['dicom_files']``,
in volume order), so every SEG frame references its source image. Label n becomes segment n
(label 0 is background); segments 1..max label are all described, empty ones included, so
segment numbers equal the object ids. The file is read back with highdicom and its pixels compared
with the mask before it is moved into place; any mismatch is an error and no file is left.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from medsam2.errors import InputError, MedSam2Error
from medsam2.io.atomic import atomic_output
from medsam2.types import Volume

__all__ = ["require_highdicom", "write_dicom_seg", "write_dicom_seg_file"]

_log = logging.getLogger(__name__)


def require_highdicom() -> ModuleType:
    """Import highdicom, or raise a `MedSam2Error` saying how to install it."""
    try:
        import highdicom
        import pydicom  # noqa: F401
    except ImportError as exc:
        raise MedSam2Error(
            "DICOM SEG output needs the optional 'dicom' extra (pydicom, highdicom): "
            "pip install 'medical-sam2[dicom]'"
        ) from exc
    return highdicom


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("medical-sam2")
    except Exception:  # noqa: BLE001 - not installed as a distribution (source checkout)
        return "0"


def _sources(reference: Volume) -> list[Any]:
    import pydicom

    files = [f for f in reference.metadata.get("dicom_files", "").split("\n") if f]
    if not files:
        raise InputError(f"{reference.source}: the volume does not list its DICOM source files")
    try:
        return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise InputError(
            f"{reference.source}: cannot re-read a DICOM source file for the SEG: {exc}"
        ) from exc


def _descriptions(hd: ModuleType, n_segments: int, labels: Mapping[int, str]) -> list[Any]:
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name="medsam2", family=codes.cid7162.ArtificialIntelligence, version=_version()
    )
    return [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=str(labels.get(n, f"object {n}"))[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type="SEMIAUTOMATIC",
            algorithm_identification=algorithm,
        )
        for n in range(1, n_segments + 1)
    ]


def _read_back(hd: ModuleType, path: Path, frames: np.ndarray, sources: list[Any]) -> np.ndarray:
    seg = hd.seg.segread(str(path))
    if len(sources) == 1 and int(getattr(sources[0], "NumberOfFrames", 1) or 1) > 1:
        back = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=sources[0].SOPInstanceUID,
            source_frame_numbers=list(range(1, frames.shape[0] + 1)),
            combine_segments=True,
        )
    else:
        uids = [ds.SOPInstanceUID for ds in sources]
        back = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    return np.asarray(back)


def _build(
    hd: ModuleType, frames: np.ndarray, sources: list[Any], descriptions: list[Any], title: str
) -> Any:
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type="BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=9001,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medsam2",
        manufacturer_model_name="medsam2",
        software_versions=_version(),
        device_serial_number="0",
        omit_empty_frames=False,
        series_description=title[:64],
    )


def write_dicom_seg_file(
    labels: np.ndarray,
    reference: Volume,
    path: Path,
    *,
    segment_labels: Mapping[int, str] | None = None,
    series_description: str = "MedSAM2 segmentation",
    display: Path | None = None,
) -> None:
    """Write ``labels`` (uint8/uint16, shape ``reference.shape``) as a DICOM SEG at ``path`` (not
    atomic) and check it by reading it back; errors name ``display`` (the final path) if given."""
    hd = require_highdicom()
    name = display or path
    if labels.ndim != 3:
        raise InputError(f"{name}: a DICOM SEG needs a 3D mask (got {labels.ndim}D)")
    sources = _sources(reference)
    frames = np.ascontiguousarray(labels.transpose(2, 1, 0))
    descriptions = _descriptions(hd, max(1, int(labels.max(initial=0))), segment_labels or {})
    try:
        _build(hd, frames, sources, descriptions, series_description).save_as(str(path))
        back = _read_back(hd, path, frames, sources)
    except Exception as exc:  # noqa: BLE001 - highdicom raises many types; users get one clear line
        raise InputError(f"{name}: cannot write a DICOM SEG for {reference.source}: {exc}") from exc
    if not np.array_equal(back, frames):
        raise InputError(f"{name}: the DICOM SEG read back differs from the mask; not written")


def write_dicom_seg(
    mask: np.ndarray,
    reference: Volume,
    path: str | os.PathLike[str],
    *,
    segment_labels: Mapping[int, str] | None = None,
    series_description: str = "MedSAM2 segmentation",
) -> Path:
    """Write ``mask`` as a DICOM SEG referencing ``reference``'s source files (atomically).

    ``segment_labels`` names segments by label value (default ``"object N"``). Needs the ``dicom``
    extra; raises `InputError` (no file left) when the mask or the reference does not fit.
    """
    from medsam2.io.writers import prepare_labels

    out = Path(path).expanduser()
    require_highdicom()
    labels = prepare_labels(mask, reference, out)
    if reference.metadata.get("format") != "dicom":
        raise InputError(f"{out}: a DICOM SEG needs a DICOM input; {reference.source} is not DICOM")
    with atomic_output(out) as tmp:
        write_dicom_seg_file(
            labels,
            reference,
            tmp,
            segment_labels=segment_labels,
            series_description=series_description,
            display=out,
        )
    _log.info("wrote DICOM SEG %s (%d segment(s))", out, max(1, int(labels.max(initial=0))))
    return out
