"""The channel policy: how images with several components per pixel become a `Volume`.

``channel`` (argument of `read_image`) is one of:

* ``None`` / ``"auto"`` (default): single-channel images as they are. Colour images (PNG, JPEG,
  TIFF, BMP and DICOM RGB/YBR/palette): an image whose colour channels are all equal (grey saved
  as RGB, palette grey) becomes grey; a real colour image stays RGB with a trailing axis of 3
  (SAM 2 is an RGB model; pathology stains need colour). An alpha channel is dropped when it is
  fully opaque; transparent pixels are refused (their colour is undefined).
* ``"grey"`` (or ``"gray"``): grey as is; colour -> luminance ``0.299 R + 0.587 G + 0.114 B``
  (ITU-R BT.601), rounded back to the input's integer type; alpha dropped.
* ``"rgb"``: colour kept as RGB, grey repeated to 3 channels; alpha dropped.
* ``"error"``: only grey accepted (including grey saved as RGB); colour or transparency refused.
* an integer ``c``: component ``c`` alone (0-based; RGBA alpha is 3). This is the only choice
  for multi-component images that are not colour (vector NIfTI/NRRD/MHA, multi-echo...).
"""

from __future__ import annotations

import numpy as np

from medsam2.errors import InputError

__all__ = ["CHANNEL_POLICIES", "apply_channel_policy", "check_channel_argument"]

CHANNEL_POLICIES = ("auto", "grey", "rgb", "error")
_LUMA = np.array([0.299, 0.587, 0.114])


def check_channel_argument(channel: int | str | None) -> int | str:
    """Normalise ``channel`` to an int >= 0 or one of `CHANNEL_POLICIES`; refuse anything else."""
    if channel is None:
        return "auto"
    if isinstance(channel, str):
        value = channel.strip().lower()
        value = "grey" if value == "gray" else value
        if value in CHANNEL_POLICIES:
            return value
        if value.isdigit():
            return int(value)
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and channel >= 0:
        return int(channel)
    raise InputError(
        f"channel={channel!r} is not valid; use 'auto', 'grey', 'rgb', 'error' or a component index >= 0"
    )


def _alpha_is_opaque(alpha: np.ndarray) -> bool:
    if alpha.dtype.kind in "ui":
        return bool(np.all(alpha == np.iinfo(alpha.dtype).max))
    return bool(np.all(alpha >= 1.0))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.astype(np.float64) @ _LUMA
    if rgb.dtype.kind in "ui":
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(rgb.dtype)
    return grey.astype(rgb.dtype)


def _split_alpha(array: np.ndarray, ncomp: int) -> tuple[np.ndarray, np.ndarray | None]:
    if ncomp in (2, 4):
        return array[..., : ncomp - 1], array[..., ncomp - 1]
    return array, None


def _colour_policy(array: np.ndarray, policy: str, source: str) -> tuple[np.ndarray, str]:
    ncomp = int(array.shape[-1])
    colour, alpha = _split_alpha(array, ncomp)
    if alpha is not None and policy in ("auto", "error") and not _alpha_is_opaque(alpha):
        raise InputError(
            f"{source}: has transparent pixels (alpha channel); pass channel='rgb' or channel='grey' to "
            f"ignore the alpha channel, or channel={ncomp - 1} to use the alpha channel itself"
        )
    is_grey = colour.shape[-1] == 1 or all(
        np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])
    )
    if policy == "rgb":
        rgb = colour if colour.shape[-1] == 3 else np.repeat(colour[..., :1], 3, axis=-1)
        return np.ascontiguousarray(rgb), "rgb"
    if is_grey:
        return np.ascontiguousarray(colour[..., 0]), "grey"
    if policy == "error":
        raise InputError(
            f"{source}: is a colour image but channel='error' accepts only grey images; pass "
            "channel='rgb' to keep colour, channel='grey' for luminance, or channel=INDEX for one channel"
        )
    if policy == "grey":
        return _luminance(colour), "luminance"
    return np.ascontiguousarray(colour), "rgb"


def apply_channel_policy(
    array: np.ndarray, ndim: int, channel: int | str | None, source: str, *, colour: bool
) -> tuple[np.ndarray, str]:
    """Apply the policy to ``array`` (spatial axes, then components last when there are several).

    ``colour`` says whether the components are colour channels (grey+alpha, RGB, RGBA); when
    False (vector data) only an integer ``channel`` is accepted. Returns the array and a short
    description of what was done ("grey", "rgb", "luminance", "channel 2 of 3").
    """
    policy = check_channel_argument(channel)
    ncomp = 1 if array.ndim == ndim else int(array.shape[-1])
    if isinstance(policy, int):
        if policy >= ncomp:
            raise InputError(
                f"{source}: channel={policy} is out of range; the image has {ncomp} channel(s) "
                f"(0..{ncomp - 1})"
            )
        if ncomp == 1:
            return array, "grey"
        return np.ascontiguousarray(array[..., policy]), f"channel {policy} of {ncomp}"
    if ncomp == 1:
        if policy == "rgb":
            return np.repeat(array[..., None], 3, axis=-1), "rgb"
        return array, "grey"
    if not colour or ncomp > 4:
        raise InputError(
            f"{source}: has {ncomp} components per voxel and they are not colour channels; choose one "
            f"with channel=INDEX (0..{ncomp - 1}; CLI: --channel INDEX)"
        )
    return _colour_policy(array, policy, source)
