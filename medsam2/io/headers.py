"""NRRD and MetaImage (MHA/MHD) headers, checked before SimpleITK reads the data.

Both headers are text. From them we learn the dimensions, the voxel type, the encoding and where
the data lies, and refuse (`InputError`, naming the file and the problem) what ITK would read
silently wrong or not at all:

* a zero-sized axis, or dimensions that are absurd / need more memory than the machine has
  (`medsam2.io.integrity.check_voxel_budget`, before anything is allocated);
* a zero, negative or non-finite spacing (``spacings``, ``space directions``, ``ElementSpacing``);
* data shorter than the header says: raw data (attached or in a detached data file), and gzip /
  bzip2 (NRRD) or zlib (MetaImage ``CompressedData``) streams that are cut short or corrupt.

PNG: the IHDR width and height must describe exactly the pixel bytes of the IDAT stream (Pillow
fills missing rows with zeros; libpng drops extra ones). Cases the checks cannot follow (text encodings, lists of data files, ``line skip``, unknown voxel
types) are left to ITK, which reads them itself.
"""

from __future__ import annotations

import difflib
import math
import re
import struct
import zlib
from pathlib import Path

from medsam2.errors import InputError
from medsam2.io.integrity import check_data_length, check_voxel_budget, count_decompressed

__all__ = ["check_metaimage_file", "check_nrrd_file", "check_png_file"]

_MAX_HEADER = 1 << 20
_NRRD_TYPES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
        "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
        "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
        "double"),
}  # fmt: skip
_NRRD_SIZE = {name: size for size, names in _NRRD_TYPES.items() for name in names}
_NRRD_ENCODING = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}
_MET_SIZE = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8,
}  # fmt: skip


def _read_lines(path: Path, stop: re.Pattern[bytes]) -> tuple[list[str], int]:
    """Header lines of ``path`` up to the line matching ``stop`` (included), and the data offset."""
    lines: list[str] = []
    offset = 0
    with open(path, "rb") as fh:
        while offset < _MAX_HEADER:
            raw = fh.readline(_MAX_HEADER)
            if not raw:
                return lines, -1
            offset += len(raw)
            lines.append(raw.rstrip(b"\r\n").decode("latin-1"))
            if stop.match(raw):
                return lines, offset
    raise InputError(f"{path}: the header does not end within {_MAX_HEADER:,} bytes; not a valid header")


def _ints(text: str, source: str, field: str) -> list[int]:
    try:
        return [int(v) for v in text.split()]
    except ValueError:
        raise InputError(
            f"{source}: the header field {field} = '{text.strip()}' is not a list of integers"
        ) from None


def _check_shape(source: str, dims: list[int], field: str, bytes_per_voxel: int) -> None:
    if not dims:
        raise InputError(f"{source}: the header gives no image size ({field})")
    if any(d < 0 for d in dims):
        raise InputError(f"{source}: the header gives a negative image size ({field} {dims})")
    if any(d == 0 for d in dims):
        raise InputError(f"{source}: image has zero size (header {field} {dims})")
    check_voxel_budget(source, dims, bytes_per_voxel)


def _check_spacing(source: str, values: list[float], field: str) -> None:
    if all(math.isfinite(v) and v > 0 for v in values):
        return
    kind = "zero or negative" if all(math.isfinite(v) for v in values) else "non-finite"
    raise InputError(
        f"{source}: the header gives a {kind} voxel spacing {values} ({field}); every spacing must be a "
        "finite number > 0 mm"
    )


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in re.split(r"[\s,()]+", text) if v and v.lower() != "none"]
    except ValueError:
        return []


def _check_data(source: str, data: Path, offset: int, encoding: str, need: int, attached: bool) -> None:
    """Raw: the file holds ``need`` bytes from ``offset``; compressed: its stream yields them.
    Data attached to the header are the rest of the file: exactly ``need`` bytes."""
    if not data.is_file():
        raise InputError(f"{source}: the header names data file {data}, which does not exist")
    if encoding == "raw":
        check_data_length(source, data.stat().st_size - offset, need, exact=attached)
        return
    with open(data, "rb") as fh:
        fh.seek(offset)
        have = count_decompressed(fh, encoding, source)
    check_data_length(source, have, need, f"{encoding} image data", exact=attached)


# --- NRRD --------------------------------------------------------------------------------------


def _nrrd_fields(lines: list[str]) -> dict[str, str]:
    fields = {}
    for line in lines[1:]:
        if not line or line.startswith("#") or ":=" in line:
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _nrrd_geometry(source: str, fields: dict[str, str]) -> None:
    if "spacings" in fields:
        # NaN marks an axis without spacing (time, vector components): allowed by the NRRD format
        _check_spacing(source, [v for v in _floats(fields["spacings"]) if not math.isnan(v)], "spacings")
    directions = fields.get("space directions")
    if directions:
        kinds = fields.get("kinds", "").lower().split()
        tokens = re.findall(r"\([^)]*\)|none", directions.lower())
        for axis, token in enumerate(tokens):
            if token == "none" and (axis >= len(kinds) or kinds[axis] in ("domain", "space")):
                raise InputError(
                    f"{source}: the header gives no space direction for spatial axis {axis} "
                    f"(space directions: {directions}); its spacing and orientation are unknown"
                )
        vectors = re.findall(r"\(([^)]*)\)", directions)
        norms = [math.sqrt(sum(v * v for v in _floats(vec))) if _floats(vec) else math.nan for vec in vectors]
        _check_spacing(source, norms, "space directions")


def _nrrd_data(path: Path, fields: dict[str, str], offset: int) -> tuple[Path, int] | None:
    """(data file, byte offset of the data) or None when the layout is one ITK handles alone."""
    name = fields.get("data file", fields.get("datafile"))
    try:
        skip = int(fields.get("byte skip", fields.get("byteskip", "0")) or 0)
        lines = int(fields.get("line skip", fields.get("lineskip", "0")) or 0)
    except ValueError:
        raise InputError(f"{path}: the header's byte skip / line skip is not an integer") from None
    if lines != 0 or skip < 0:
        return None
    if name is None:
        if offset < 0:
            raise InputError(
                f"{path}: the NRRD header never ends (no blank line before the data): file truncated"
            )
        return path, offset
    if len(name.split()) != 1 or "%" in name or name.upper().startswith("LIST"):
        return None
    data = Path(name) if Path(name).is_absolute() else path.parent / name
    return data, 0


def check_nrrd_file(path: str | Path, source: str | None = None) -> None:
    """Refuse a damaged NRRD (``.nrrd`` or ``.nhdr`` + data file) before it is read (module doc)."""
    src = Path(path)
    source = source or str(src)
    lines, offset = _read_lines(src, re.compile(rb"^\r?\n$"))
    if not lines or not lines[0].startswith("NRRD"):
        return  # not a NRRD header: ITK's own error applies
    fields = _nrrd_fields(lines)
    sizes = _ints(fields.get("sizes", ""), source, "sizes")
    dimension = fields.get("dimension", "").strip()
    if dimension.isdigit() and int(dimension) != len(sizes):
        raise InputError(f"{source}: the header says dimension {dimension} but gives {len(sizes)} sizes")
    bytes_per_voxel = _NRRD_SIZE.get(fields.get("type", "").lower().strip())
    _check_shape(source, sizes, "sizes", bytes_per_voxel or 1)
    _nrrd_geometry(source, fields)
    encoding = _NRRD_ENCODING.get(fields.get("encoding", "").lower().strip())
    layout = _nrrd_data(src, fields, offset)
    if bytes_per_voxel is None or encoding is None or layout is None:
        return
    skip = int(fields.get("byte skip", fields.get("byteskip", "0")) or 0)
    data, start = layout
    need = math.prod(sizes) * bytes_per_voxel + skip
    _check_data(source, data, start, encoding, need, attached=data == src)


# --- MetaImage ---------------------------------------------------------------------------------


_META_KEYS = (
    "ObjectType", "ObjectSubType", "NDims", "DimSize", "ElementType", "ElementDataFile", "ElementSpacing",
    "ElementSize", "Offset", "Origin", "Position", "TransformMatrix", "Rotation", "Orientation",
    "CenterOfRotation", "AnatomicalOrientation", "BinaryData", "BinaryDataByteOrderMSB", "ElementByteOrderMSB",
    "CompressedData", "CompressedDataSize", "HeaderSize", "ElementNumberOfChannels", "ElementMin",
    "ElementMax", "Comment", "Name", "ID", "ParentID", "Color", "Modality", "TransformType",
)  # fmt: skip
_META_NUMBERS = {
    "ndims", "dimsize", "elementspacing", "elementsize", "offset", "origin", "position", "transformmatrix",
    "rotation", "orientation", "centerofrotation", "headersize", "compresseddatasize", "elementnumberofchannels",
}  # fmt: skip
_META_FLAGS = {"binarydata", "binarydatabyteordermsb", "elementbyteordermsb", "compresseddata"}
_KNOWN = {k.lower(): k for k in _META_KEYS}


def _meta_line(source: str, number: int, key: str, value: str) -> None:
    """MetaIO ignores unknown keys and unparsable values (using defaults: spacing 1, origin 0):
    refuse a garbled key close to a known one, and known numeric/flag fields that do not parse."""
    name = key.strip()
    if not name.isascii() or not name.isprintable():
        raise InputError(f"{source}: header line {number} has a garbled key {name!r}; damaged header")
    lower = name.lower()
    if lower not in _KNOWN:
        near = difflib.get_close_matches(lower, list(_KNOWN), n=1, cutoff=0.85)
        if near:
            raise InputError(
                f"{source}: header line {number} has the unknown key {name!r} (a damaged {_KNOWN[near[0]]}?); "
                "MetaImage readers would silently ignore it"
            )
        return
    text = value.strip()
    if lower in _META_FLAGS and text.lower() not in ("true", "false"):
        raise InputError(f"{source}: header field {name} = {text!r} is not True or False; damaged header")
    if lower in _META_NUMBERS and not re.fullmatch(r"[-+0-9.eEinfaINFA\s]+", text):
        raise InputError(f"{source}: header field {name} = {text!r} is not a list of numbers; damaged header")


def _meta_fields(lines: list[str], source: str) -> dict[str, str]:
    fields = {}
    for number, line in enumerate(lines, start=1):
        key, sep, value = line.partition("=")
        if not sep:
            if line.strip():
                raise InputError(
                    f"{source}: header line {number} ({line.strip()[:40]!r}) has no '='; damaged header"
                )
            continue
        _meta_line(source, number, key, value)
        fields[key.strip().lower()] = value.strip()
    return fields


def _meta_data(path: Path, fields: dict[str, str], offset: int, need: int) -> tuple[Path, int, int] | None:
    """(data file, data offset, bytes needed from there) or None when ITK handles the layout alone."""
    if "elementdatafile" not in fields or offset < 0:
        raise InputError(f"{path}: the MetaImage header has no ElementDataFile line: file truncated")
    name = fields["elementdatafile"]
    try:
        header_size = int(fields.get("headersize", "0") or 0)
    except ValueError:
        return None
    if name.upper() == "LOCAL":
        return path, offset, need
    if not name or len(name.split()) != 1 or "%" in name or name.upper() == "LIST":
        return None
    data = Path(name) if Path(name).is_absolute() else path.parent / name
    if header_size == -1:  # the data are the last bytes of the file
        return data, 0, need
    return data, max(header_size, 0), need


def check_metaimage_file(path: str | Path, source: str | None = None) -> None:
    """Refuse a damaged MetaImage (``.mha``, or ``.mhd`` + data file) before it is read (module doc)."""
    src = Path(path)
    source = source or str(src)
    lines, offset = _read_lines(src, re.compile(rb"^\s*ElementDataFile\s*=", re.I))
    if not lines or "=" not in lines[0]:
        return  # not a MetaImage header: ITK's own error applies
    fields = _meta_fields(lines, source)
    if offset < 0 and {"objecttype", "ndims", "dimsize"} & set(fields):
        raise InputError(f"{source}: the MetaImage header has no ElementDataFile line: file truncated")
    if "dimsize" not in fields:
        return  # not a MetaImage header: ITK's own error applies
    dims = _ints(fields["dimsize"], source, "DimSize")
    ndims = fields.get("ndims", "").strip()
    if ndims.isdigit() and int(ndims) != len(dims):
        raise InputError(f"{source}: the header says NDims = {ndims} but DimSize has {len(dims)} values")
    channels = fields.get("elementnumberofchannels", "1").strip()
    size = _MET_SIZE.get(fields.get("elementtype", "").strip().upper())
    per_voxel = (
        size * int(channels) if size is not None and channels.isdigit() and int(channels) > 0 else None
    )
    _check_shape(source, dims, "DimSize", per_voxel or 1)
    for field, name in (("elementspacing", "ElementSpacing"), ("elementsize", "ElementSize")):
        if field in fields:
            _check_spacing(source, _floats(fields[field]) or [math.nan], name)
    compressed = fields.get("compresseddata", "false").strip().lower() == "true"
    layout = _meta_data(src, fields, offset, math.prod(dims) * (per_voxel or 0))
    if per_voxel is None or layout is None:
        return
    data, start, need = layout
    if not compressed and fields.get("headersize", "").strip() == "-1" and data.is_file():
        start = max(data.stat().st_size - need, 0)
    _check_data(source, data, start, "zlib" if compressed else "raw", need, attached=data == src)


# --- PNG ---------------------------------------------------------------------------------------

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png_chunks(path: Path, source: str) -> tuple[bytes, list[bytes]]:
    """(IHDR payload, IDAT payloads) of a PNG file; CRCs are left to the decoder."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return b"", []
    at, ihdr, idat = 8, b"", []
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        payload = data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            ihdr = payload
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            break
        at += 12 + length
    return ihdr, idat


def check_png_file(path: str | Path, source: str | None = None) -> None:
    """Refuse a PNG whose pixel data do not match its IHDR size (module doc); non-interlaced only."""
    src = Path(path)
    source = source or str(src)
    ihdr, idat = _png_chunks(src, source)
    if len(ihdr) != 13:
        return  # not a PNG, or no header: the decoders' own errors apply
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or interlace != 0 or depth not in (1, 2, 4, 8, 16):
        return
    _check_shape(source, [width, height], "IHDR width/height", channels * max(depth // 8, 1))
    need = height * (1 + (width * channels * depth + 7) // 8)
    decoder = zlib.decompressobj()
    have = 0
    try:
        for chunk in idat:
            have += len(decoder.decompress(chunk, 1 << 22))
            while decoder.unconsumed_tail:
                have += len(decoder.decompress(decoder.unconsumed_tail, 1 << 22))
    except zlib.error as exc:
        raise InputError(f"{source}: the PNG pixel data is corrupt ({exc})") from exc
    if not decoder.eof:
        raise InputError(f"{source}: the PNG pixel data is truncated ({have:,} of {need:,} bytes)")
    check_data_length(source, have, need, "PNG pixel data", exact=True)
