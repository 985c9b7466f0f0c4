"""TIFF structure checks made before a decoder reads the pixels.

libtiff and Pillow read an uncompressed TIFF whose ImageWidth / ImageLength / BitsPerSample do not
match its strips without an error: rows that the strips do not hold come back as zeros, or the
bytes are reinterpreted (a sheared, cropped or garbled picture). For every page (IFD) stored as
uncompressed strips, `check_tiff_file` requires the strips to lie inside the file and to hold
exactly the bytes the size fields describe, and the size to fit the memory budget. Tiled and
compressed pages are left to the decoders (compressed streams end where their data end).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from medsam2.errors import InputError
from medsam2.io.integrity import check_data_length, check_voxel_budget

__all__ = ["check_tiff_file"]

_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8 (BigTIFF not parsed)
_MAX_PAGES = 100_000


def _values(data: bytes, order: str, entry: int) -> list[int] | None:
    """The integer values of the IFD entry at offset ``entry`` (None for other types)."""
    kind, count = struct.unpack(order + "HI", data[entry + 2 : entry + 8])
    code = _TYPES.get(kind)
    if code is None or count > 1 << 20:
        return None
    size = struct.calcsize(code) * count
    start = entry + 8 if size <= 4 else struct.unpack(order + "I", data[entry + 8 : entry + 12])[0]
    if start + size > len(data):
        return None
    return list(struct.unpack(f"{order}{count}{code}", data[start : start + size]))


def _tags(data: bytes, order: str, ifd: int) -> tuple[dict[int, list[int]], int]:
    """(tag -> values, offset of the next IFD) of the IFD at ``ifd``."""
    count = struct.unpack(order + "H", data[ifd : ifd + 2])[0]
    tags = {}
    for n in range(count):
        at = ifd + 2 + 12 * n
        if at + 12 > len(data):
            break
        values = _values(data, order, at)
        if values is not None:
            tags[struct.unpack(order + "H", data[at : at + 2])[0]] = values
    end = ifd + 2 + 12 * count
    following = struct.unpack(order + "I", data[end : end + 4])[0] if end + 4 <= len(data) else 0
    return tags, following


def _row_bytes(tags: dict[int, list[int]], width: int) -> int:
    bits, samples = tags.get(258, [1]), tags.get(277, [1])[0]
    if tags.get(284, [1])[0] == 2:  # planar: one plane per sample, all in the strip list
        return sum(math.ceil(width * b / 8) for b in bits)
    per_pixel = bits[0] * samples if len(bits) == 1 else sum(bits)
    return math.ceil(width * per_pixel / 8)


def _check_page(source: str, tags: dict[int, list[int]], size: int, page: int) -> None:
    width, length = tags.get(256, [0])[0], tags.get(257, [0])[0]
    where = f"page {page}: " if page else ""
    if width == 0 or length == 0:
        raise InputError(
            f"{source}: {where}image has zero size (TIFF ImageWidth {width}, ImageLength {length})"
        )
    check_voxel_budget(source, (width, length), max(sum(tags.get(258, [1])) // 8, 1), "TIFF header")
    if tags.get(259, [1])[0] != 1 or 322 in tags or 273 not in tags:
        return  # compressed or tiled: the decoder checks its own stream
    offsets, row = tags[273], _row_bytes(tags, width)
    need = row * length
    rows_per_strip = min(tags.get(278, [length])[0] or length, length)
    # without StripByteCounts, readers derive each strip's size from RowsPerStrip
    strip = rows_per_strip * (row if tags.get(284, [1])[0] != 2 else row // max(len(tags.get(258, [1])), 1))
    counts = tags.get(279) or [min(strip, max(need - i * strip, 0)) for i in range(len(offsets))]
    if len(offsets) != len(counts) or any(o + c > size for o, c in zip(offsets, counts, strict=False)):
        raise InputError(
            f"{source}: {where}TIFF strips run past the end of the file (truncated, or damaged StripOffsets / "
            "StripByteCounts / ImageLength)"
        )
    check_data_length(source, sum(counts), need, f"{where}TIFF strip data", exact=True)


def check_tiff_file(path: str | Path, source: str | None = None) -> None:
    """Refuse a TIFF whose uncompressed strips do not match its size fields (module doc)."""
    src = Path(path)
    source = source or str(src)
    data = src.read_bytes()
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None or len(data) < 8:
        return  # not a classic TIFF (or BigTIFF): the decoders' own checks apply
    ifd, page, seen = struct.unpack(order + "I", data[4:8])[0], 0, set()
    while ifd and ifd + 2 <= len(data) and ifd not in seen and page < _MAX_PAGES:
        seen.add(ifd)
        tags, ifd = _tags(data, order, ifd)
        _check_page(source, tags, len(data), page)
        page += 1
