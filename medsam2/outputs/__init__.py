"""Result files: label PNGs, colour overlays, propagation GIFs, summaries, staged output folders.

Every file is written atomically (``medsam2.io.atomic.atomic_output``); a whole output folder
appears complete or not at all (:func:`staged_folder`).
"""

from __future__ import annotations

from medsam2.outputs.folder import check_output_folder, staged_folder
from medsam2.outputs.gif import GifRecorder
from medsam2.outputs.masks import label_dtype, labels_from_logits, read_label_png, write_label_png
from medsam2.outputs.overlay import contours, object_colour, render_overlay, to_rgb8, write_overlay_png
from medsam2.outputs.summary import SegmentationSummary

__all__ = [
    "GifRecorder",
    "SegmentationSummary",
    "check_output_folder",
    "contours",
    "label_dtype",
    "labels_from_logits",
    "object_colour",
    "read_label_png",
    "render_overlay",
    "staged_folder",
    "to_rgb8",
    "write_label_png",
    "write_overlay_png",
]
