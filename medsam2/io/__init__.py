"""Medical image input/output with exact geometry.

* `read_image` reads NIfTI (1 and 2), NRRD, MHA/MHD, DICOM series folders and files, PNG, JPEG,
  TIFF, BMP, .npy and .npz into a checked `medsam2.types.Volume`; `list_dicom_series` lists the
  series of a DICOM folder.
* `write_mask` writes a label array with exactly the geometry of its reference volume (NIfTI,
  NRRD, MHA, PNG, TIFF, .npy, DICOM SEG), atomically.

Unusable input raises `medsam2.errors.InputError` with a message naming the file and the problem.
"""

from __future__ import annotations

from medsam2.io.atomic import atomic_output
from medsam2.io.channels import CHANNEL_POLICIES
from medsam2.io.dicom import DicomSeriesInfo, list_dicom_series
from medsam2.io.dicom_seg import write_dicom_seg
from medsam2.io.readers import detect_format, read_image
from medsam2.io.writers import MASK_FORMATS, mask_format_for, write_mask

__all__ = [
    "CHANNEL_POLICIES",
    "MASK_FORMATS",
    "DicomSeriesInfo",
    "atomic_output",
    "detect_format",
    "list_dicom_series",
    "mask_format_for",
    "read_image",
    "write_dicom_seg",
    "write_mask",
]
