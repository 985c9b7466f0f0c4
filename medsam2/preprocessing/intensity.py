"""Intensity normalisation to float32 in [0, 1]: CT windows, percentile scaling for other modalities.

* CT: a window of width W and level L maps ``L - W/2 -> 0`` and ``L + W/2 -> 1`` linearly and
  clips outside (abdomen W400/L40: -160 HU -> 0, 240 HU -> 1).  Presets: abdomen, lung, bone,
  brain; a custom window is written ``"W,L"`` (e.g. ``"400,40"``, ``"W400,L40"``, ``"1500,-600"``).
* Everything else (MR, PET, US, unknown): 0.5-99.5 percentile scaling computed over the whole
  volume (finite values only); a constant image becomes zeros, never NaN.

Non-finite inputs (NaN) become 0; +inf/-inf clip to 1/0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from medsam2.errors import InputError
from medsam2.types import Volume

__all__ = [
    "DEFAULT_CT_WINDOW",
    "PERCENTILE_RANGE",
    "WINDOW_PRESETS",
    "Window",
    "apply_window",
    "normalize_intensity",
    "normalize_volume",
    "parse_window",
    "percentile_normalize",
]


@dataclass(frozen=True)
class Window:
    """A CT display window: ``width`` (> 0) and ``level`` (centre), in the image's units (HU)."""

    width: float
    level: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        return self.level + self.width / 2.0


WINDOW_PRESETS: dict[str, Window] = {
    "abdomen": Window(400.0, 40.0),
    "lung": Window(1500.0, -600.0),
    "bone": Window(1800.0, 400.0),
    "brain": Window(80.0, 40.0),
}
DEFAULT_CT_WINDOW = "abdomen"
PERCENTILE_RANGE = (0.5, 99.5)

_NUM = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_CUSTOM = re.compile(rf"^\s*[wW]?\s*{_NUM}\s*[,;:/\s]\s*[lL]?\s*{_NUM}\s*$")


def _checked(width: float, level: float, name: str, spec: object) -> Window:
    if not (math.isfinite(width) and math.isfinite(level)):
        raise InputError(f"{name}: window {spec!r} must have finite width and level")
    if width <= 0:
        raise InputError(f"{name}: window width must be > 0, got W={width:g} (from {spec!r})")
    return Window(float(width), float(level))


def parse_window(spec: str | Window | tuple[float, float], *, name: str = "window") -> Window:
    """A preset name (abdomen, lung, bone, brain), ``"W,L"`` text, a ``(W, L)`` pair or a Window.

    Raises InputError naming ``name`` for an unknown name, malformed text or W <= 0.
    """
    if isinstance(spec, Window):
        return _checked(spec.width, spec.level, name, spec)
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in WINDOW_PRESETS:
            return WINDOW_PRESETS[key]
        m = _CUSTOM.match(spec)
        if m is None:
            presets = ", ".join(WINDOW_PRESETS)
            raise InputError(
                f"{name}: unknown window {spec!r}; expected one of {presets} or 'W,L' (e.g. '400,40')"
            )
        return _checked(float(m.group(1)), float(m.group(2)), name, spec)
    try:
        width, level = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise InputError(
            f"{name}: expected a window name, 'W,L' text or a (W, L) pair, got {spec!r}"
        ) from None
    return _checked(width, level, name, spec)


def apply_window(array: np.ndarray, window: str | Window | tuple[float, float]) -> np.ndarray:
    """Window ``array`` (any shape) -> float32 of the same shape in [0, 1]."""
    w = parse_window(window)
    out = np.asarray(array, dtype=np.float32) - np.float32(w.low)
    out /= np.float32(w.width)
    np.clip(out, 0.0, 1.0, out=out)
    return np.nan_to_num(out, copy=False, nan=0.0)


def percentile_normalize(
    array: np.ndarray, lower: float = PERCENTILE_RANGE[0], upper: float = PERCENTILE_RANGE[1]
) -> np.ndarray:
    """Scale the ``lower``-``upper`` percentile range of the whole array to [0, 1] (clipped).

    Shape is kept; output float32.  Percentiles use finite values only; a constant (or empty,
    or all-NaN) array gives zeros.
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise InputError(f"percentiles: need 0 <= lower < upper <= 100, got {lower}, {upper}")
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    values = a
    if np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        if not finite.all():
            values = a[finite]
    if values.size == 0:
        return np.zeros(a.shape, np.float32)
    lo, hi = (float(v) for v in np.percentile(values, [lower, upper]))
    if not hi > lo:
        return np.zeros(a.shape, np.float32)
    out = a.astype(np.float32) - np.float32(lo)
    out /= np.float32(hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    return np.nan_to_num(out, copy=False, nan=0.0)


def normalize_intensity(
    array: np.ndarray,
    modality: str | None = None,
    window: str | Window | tuple[float, float] | None = None,
) -> np.ndarray:
    """Intensity normalisation chosen from ``modality`` unless ``window`` says otherwise.

    ``window``: None or "auto" -> CT gets the abdomen window, other modalities (MR, None, ...)
    0.5-99.5 percentiles; "percentile" -> percentiles; a preset name, "W,L" text or (W, L) ->
    that window whatever the modality.  Returns float32 in [0, 1], same shape as ``array``.
    """
    if window is None or (isinstance(window, str) and window.strip().lower() == "auto"):
        is_ct = modality is not None and modality.strip().upper() == "CT"
        window = DEFAULT_CT_WINDOW if is_ct else "percentile"
    if isinstance(window, str) and window.strip().lower() == "percentile":
        return percentile_normalize(array)
    return apply_window(array, window)


def normalize_volume(volume: Volume, window: str | Window | tuple[float, float] | None = None) -> np.ndarray:
    """:func:`normalize_intensity` of ``volume.array`` using ``volume.modality``."""
    return normalize_intensity(volume.array, volume.modality, window)
