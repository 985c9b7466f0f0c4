"""Preprocessing: slice axis in patient space, intensity normalisation, model-size frames, prompt coordinates.

Typical use for a volume::

    geom = slice_geometry(volume, "axial")              # SliceGeometry
    frames01 = volume_to_frames(normalize_volume(volume), geom)   # (T, H, W) float32 in [0, 1]
    model_frames = ModelFrames(frames01, image_size=1024)          # lazy (3, S, S) tensors
    prompt = point_to_frame((120, 88, 31), geom)        # FramePoint(t, x, y)
"""

from __future__ import annotations

from medsam2.preprocessing.axes import (
    PLANES,
    Plane,
    SliceGeometry,
    auto_axis,
    frames_to_volume,
    slice_geometry,
    slice_geometry_from_direction,
    volume_to_frames,
)
from medsam2.preprocessing.coords import (
    FrameBox,
    FramePoint,
    box_to_frame,
    check_frame_box,
    check_frame_point,
    frame_box_to_index,
    frame_point_to_index,
    frame_point_to_world,
    frame_to_index,
    index_to_frame,
    point_to_frame,
)
from medsam2.preprocessing.intensity import (
    DEFAULT_CT_WINDOW,
    PERCENTILE_RANGE,
    WINDOW_PRESETS,
    Window,
    apply_window,
    normalize_intensity,
    normalize_volume,
    parse_window,
    percentile_normalize,
)
from medsam2.preprocessing.resize import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelFrames,
    ResizeMode,
    to_model_frames,
    upsample_logits,
)

__all__ = [
    "DEFAULT_CT_WINDOW",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PERCENTILE_RANGE",
    "PLANES",
    "WINDOW_PRESETS",
    "FrameBox",
    "FramePoint",
    "ModelFrames",
    "Plane",
    "ResizeMode",
    "SliceGeometry",
    "Window",
    "apply_window",
    "auto_axis",
    "box_to_frame",
    "check_frame_box",
    "check_frame_point",
    "frame_box_to_index",
    "frame_point_to_index",
    "frame_point_to_world",
    "frame_to_index",
    "frames_to_volume",
    "index_to_frame",
    "normalize_intensity",
    "normalize_volume",
    "parse_window",
    "percentile_normalize",
    "point_to_frame",
    "slice_geometry",
    "slice_geometry_from_direction",
    "to_model_frames",
    "upsample_logits",
    "volume_to_frames",
]
