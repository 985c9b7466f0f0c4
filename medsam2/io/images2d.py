"""PNG, JPEG, TIFF and BMP input (8- and 16-bit, grey or colour) with the channel policy.

SimpleITK reads these first (it keeps 16-bit grey and 16-bit colour exactly, and turns a
multi-page TIFF into a 3D stack). Files it cannot decode (grey+alpha PNG, some TIFF layouts) are
read with Pillow as a fallback (2D only, unit spacing). The array follows `Volume`'s convention:
``array[i, j]`` with i the column and j the row (the transpose of the usual picture array),
colour channels last. Colour handling is `medsam2.io.channels` (``channel=`` argument).
Spacing comes from the file's resolution tags when present (SimpleITK converts DPI to mm), else 1.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

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
from medsam2.io.headers import check_png_file
from medsam2.io.integrity import captured_output, check_voxel_budget
from medsam2.io.tiff import check_tiff_file
from medsam2.types import Volume

__all__ = ["IMAGE_SUFFIXES", "check_image_file", "read_image2d"]

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}

_PIL_CONVERT = {"1": "L", "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


@contextlib.contextmanager
def _strict_pillow() -> Iterator[None]:
    """Pillow must refuse truncated files even if another library relaxed it globally."""
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def _read_with_pillow(path: Path, first_error: str) -> np.ndarray:
    """Picture array (rows, cols[, c]) through Pillow; refuse what it cannot read either."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _strict_pillow(), Image.open(path) as opened:
            if getattr(opened, "n_frames", 1) > 1:
                raise InputError(f"{path}: multi-page image that SimpleITK cannot read ({first_error})")
            opened.load()
            img: Image.Image = opened
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            elif img.mode in _PIL_CONVERT:
                img = img.convert(_PIL_CONVERT[img.mode])
            return np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(
            f"{path}: cannot read this image (truncated, corrupt or unsupported): {first_error}"
        ) from exc


def _check_complete_jpeg(path: Path) -> None:
    """libjpeg only warns about a truncated JPEG (SimpleITK then returns grey rows); Pillow refuses it."""
    from PIL import Image

    try:
        with _strict_pillow(), Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read this JPEG (truncated or corrupt): {exc}") from exc


def _check_size(path: Path) -> None:
    """Refuse, from the header alone, an image too large to read (or a damaged size field)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own budget below decides, in the same terms as for volumes
    try:
        with _strict_pillow(), Image.open(path) as img:  # reads the header, not the pixels
            width, height = img.size
            frames, bands = int(getattr(img, "n_frames", 1)), len(img.getbands())
    except Exception:  # noqa: BLE001 - unreadable headers are reported by the readers below
        return
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    check_voxel_budget(str(path), (width, height, frames), bands * 2, "image header")


def _refuse_corrupt_jpeg(path: Path, messages: list[str]) -> None:
    """libjpeg only warns about damaged scan data (and fills the missing rows); refuse the file."""
    text = " ".join(messages)
    if "Corrupt JPEG data" in text or "Premature end of JPEG" in text:
        reason = next(ln.strip() for ln in text.splitlines() if "JPEG" in ln)
        raise InputError(f"{path}: the JPEG data is damaged ({reason}); refused rather than read with gaps")


@functools.lru_cache(maxsize=4096)
def _checked(path: str, size: int, mtime: int) -> None:
    src = Path(path)
    suffix = full_suffix(src)
    if suffix == ".png":
        check_png_file(src)
    elif IMAGE_SUFFIXES.get(suffix) == "tiff":
        check_tiff_file(src)
    elif IMAGE_SUFFIXES.get(suffix) == "jpeg":
        _check_size(src)
        _check_complete_jpeg(src)
        with quiet_itk(), captured_output() as messages:
            reader = sitk.ImageFileReader()
            reader.SetFileName(path)
            try:
                reader.Execute()
            except RuntimeError as exc:
                raise InputError(
                    f"{src}: cannot read this JPEG (truncated or corrupt): {sitk_reason(exc)}"
                ) from exc
        _refuse_corrupt_jpeg(src, messages)


def check_image_file(path: str | os.PathLike[str]) -> None:
    """For readers outside this module (Pillow frame loaders): refuse a PNG or TIFF whose pixel data
    do not match its size and a JPEG whose scan data libjpeg reports as damaged. Cached per file
    version."""
    stat = Path(path).stat()
    _checked(str(path), stat.st_size, stat.st_mtime_ns)


def _load(
    path: Path, fmt: str
) -> tuple[np.ndarray, int, tuple[tuple[float, ...], tuple[float, ...], np.ndarray]]:
    _check_size(path)
    if fmt == "jpeg":
        _check_complete_jpeg(path)
    if fmt == "png":
        check_png_file(path)
    if fmt == "tiff":
        check_tiff_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        # ITK's warnings stay on (captured, not shown): its TIFF reader only warns when it falls back
        # to 8-bit RGBA and drops bits
        with captured_output() as messages:
            image = reader.Execute()
        if fmt == "jpeg":
            _refuse_corrupt_jpeg(path, messages)
        if "Data loss will occur" in " ".join(messages):
            raise InputError(
                f"{path}: SimpleITK can read this TIFF layout only through its 8-bit RGBA fallback, losing "
                "bit depth; save it as one grey or RGB page per slice (e.g. with tifffile or Pillow)"
            )
    except RuntimeError as exc:
        reason = sitk_reason(exc)
        picture = _read_with_pillow(path, reason)
        _log.info("%s: read with Pillow (SimpleITK: %s)", path, reason)
        array = picture.transpose((1, 0) + tuple(range(2, picture.ndim)))
        return array, 2, ((1.0, 1.0), (0.0, 0.0), np.eye(2))
    return image_to_array(image), image.GetDimension(), image_geometry(image)


def read_image2d(
    path: str | os.PathLike[str],
    *,
    channel: int | str | None = None,
    frame: int | None = None,
    fmt: str | None = None,
) -> Volume:
    """Read a PNG/JPEG/TIFF/BMP file (a multi-page TIFF gives a 3D stack); ``fmt`` overrides the
    format that the suffix says ('png', 'jpeg', 'tiff', 'bmp')."""
    src = Path(path)
    fmt = fmt or IMAGE_SUFFIXES.get(full_suffix(src), "image")
    array, ndim, geometry = _load(src, fmt)
    array, geometry = select_frame(array, geometry, ndim, frame, str(src))
    ndim = min(ndim, 3)
    array, how = apply_channel_policy(array, ndim, channel, str(src), colour=True)
    spacing, origin, direction = geometry
    metadata = {"format": fmt, "channels": how}
    return validate_volume(Volume(array, spacing, origin, direction, str(src), None, metadata))
