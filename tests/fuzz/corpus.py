"""Fuzzing corpus: damaged variants of small valid NIfTI, NRRD, MHA, DICOM and PNG files.

`make_seeds` writes the valid files; `generate` derives ``n`` damaged inputs from them, each from
its own random stream (``seed`` + index), so any single input can be rebuilt from its name. Kinds:

* ``truncate``: the file cut at a random offset;
* ``flip-header`` / ``flip-data``: 1-4 random bytes XOR-ed with a random non-zero value, in the
  header or in the data (compressed files: in the compressed stream);
* ``field``: one header field set to a hostile value: NIfTI dim / datatype / bitpix / vox_offset /
  pixdim / qform_code / sform_code; NRRD sizes / type / encoding / space directions / dimension;
  MetaImage DimSize / ElementType / CompressedData / ElementSpacing / NDims; DICOM Rows / Columns /
  BitsAllocated / ImagePositionPatient of one slice of a series; PNG width / height (CRC fixed);
  TIFF ImageWidth / ImageLength / BitsPerSample / StripOffsets / StripByteCounts; JPEG SOF height /
  width.
"""

from __future__ import annotations

import gzip
import random
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

__all__ = ["Case", "generate", "make_seeds", "IMAGE_FORMATS", "SEED_FORMATS"]

SEED_FORMATS = ("nii", "nii.gz", "nrrd", "nrrd-gz", "mha", "mha-z", "dicom", "png", "tiff", "jpeg")
IMAGE_FORMATS = ("png", "tiff", "jpeg")


@dataclass(frozen=True)
class Case:
    """One fuzzed input: ``path`` (a file, or a folder for DICOM) derived from seed ``fmt``."""

    name: str
    fmt: str
    kind: str
    detail: str
    path: Path
    seed_path: Path


def _phantom() -> np.ndarray:
    i, j, k = np.meshgrid(np.arange(16), np.arange(12), np.arange(6), indexing="ij")
    blob = ((i - 8) / 5.0) ** 2 + ((j - 6) / 4.0) ** 2 + ((k - 3) / 2.5) ** 2 <= 1.0
    return np.where(blob, 300, -50).astype(np.int16)  # (i, j, k)


def _dicom_series(folder: Path) -> Path | None:
    try:
        from data_files import pydicom_series_dir  # the tests' locator (pydicom's CT5N series)

        src = pydicom_series_dir()
    except Exception:  # noqa: BLE001 - pytest.skip raises a BaseException subclass elsewhere
        return None
    dest = folder / "dicom"
    shutil.copytree(src, dest)
    return dest


def make_seeds(folder: Path) -> dict[str, Path]:
    """Write the valid seed files into ``folder``; returns {format: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.ascontiguousarray(_phantom().transpose(2, 1, 0)))
    image.SetSpacing((0.9, 0.8, 2.5))
    image.SetOrigin((-10.0, 5.0, 30.0))
    seeds = {}
    for fmt, name, compress in (
        ("nii", "seed.nii", False),
        ("nii.gz", "seed.nii.gz", True),
        ("nrrd", "seed.nrrd", False),
        ("nrrd-gz", "seed_gz.nrrd", True),
        ("mha", "seed.mha", False),
        ("mha-z", "seed_z.mha", True),
    ):
        sitk.WriteImage(image, str(folder / name), useCompression=compress)
        seeds[fmt] = folder / name
    rng = np.random.default_rng(0)
    picture = (rng.random((40, 48)) * 60 + 40).astype(np.uint8)
    picture[10:30, 12:36] += 120
    for fmt, name in (("png", "seed.png"), ("tiff", "seed.tif"), ("jpeg", "seed.jpg")):
        Image.fromarray(picture).save(folder / name)
        seeds[fmt] = folder / name
    series = _dicom_series(folder)
    if series is not None:
        seeds["dicom"] = series
    return seeds


# --- generic byte damage -----------------------------------------------------------------------


def _header_length(fmt: str, data: bytes) -> int:
    if fmt in ("nii", "nii.gz"):
        return 352 if fmt == "nii" else min(len(data), 64)  # gzip: the stream's first bytes
    if fmt == "png":
        return 33  # signature + IHDR
    if fmt == "jpeg":
        return max(data.find(b"\xff\xda"), 20)  # up to the start of scan
    if fmt == "tiff":  # the 8-byte file header, and the first IFD when it follows it (as Pillow writes)
        ifd = struct.unpack("<I", data[4:8])[0]
        return ifd + 6 + 12 * struct.unpack("<H", data[ifd : ifd + 2])[0] if ifd == 8 else 8
    if fmt == "dicom":
        return max(data.rfind(b"\xe0\x7f\x10\x00"), 132)  # up to the PixelData element
    end = data.find(b"\n\n") if fmt.startswith("nrrd") else data.find(b"ElementDataFile")
    return max(end, 16)


def _flip(data: bytes, rng: random.Random, lo: int, hi: int) -> tuple[bytes, str]:
    out = bytearray(data)
    spots = sorted(rng.randrange(lo, max(hi, lo + 1)) for _ in range(rng.randint(1, 4)))
    for at in spots:
        out[at] ^= rng.randint(1, 255)
    return bytes(out), f"bytes {spots}"


def _byte_damage(fmt: str, data: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    if kind == "truncate":
        cut = rng.randrange(0, len(data))
        return data[:cut], f"cut at {cut} of {len(data)}"
    head = _header_length(fmt, data)
    if kind == "flip-header":
        return _flip(data, rng, 0, head)
    return _flip(data, rng, head, len(data))


# --- header fields -----------------------------------------------------------------------------

_HOSTILE_INTS = [0, -1, 1, 2, 7, 255, 32767, -32768, 100000, 2**31 - 1]
_HOSTILE_FLOATS = [0.0, -1.0, -2.5, float("nan"), float("inf"), -float("inf"), 1e-30, 1e30]
_NIFTI_FIELDS = {  # name: (offset, struct code, count)
    "dim": (40, "h", 8), "datatype": (70, "h", 1), "bitpix": (72, "h", 1), "pixdim": (76, "f", 8),
    "vox_offset": (108, "f", 1), "qform_code": (252, "h", 1), "sform_code": (254, "h", 1),
}  # fmt: skip


def _nifti_field(raw: bytes, rng: random.Random) -> tuple[bytes, str]:
    name = rng.choice(list(_NIFTI_FIELDS))
    offset, code, count = _NIFTI_FIELDS[name]
    index = rng.randrange(count) if count > 1 else 0
    if name in ("pixdim", "vox_offset"):
        value: float = rng.choice(_HOSTILE_FLOATS + [352.0, 348.0, 400.0, 1e9])
    elif name == "datatype":
        value = rng.choice([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1536, 2304, 3, 99, -1])
    else:
        value = rng.choice(_HOSTILE_INTS[:8] + [3, 4, 16, 8, 12])
    at = offset + index * struct.calcsize(code)
    if code == "h":
        value = int(np.clip(value, -32768, 32767))
    out = bytearray(raw)
    out[at : at + struct.calcsize(code)] = struct.pack("<" + code, value)
    return bytes(out), f"{name}[{index}] = {value}"


def _nrrd_field(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    head, sep, body = text.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    choices = {
        "sizes": ["sizes: 16 12 0", "sizes: 16 12 -6", "sizes: 16 12 7", "sizes: 16 12 5", "sizes: 99999 99999 9999",
                  "sizes: 12 16 6", "sizes: 16 12", "sizes: 16 12 six"],
        "type": ["type: float", "type: double", "type: uchar", "type: int", "type: block", "type: nonsense"],
        "encoding": ["encoding: gzip", "encoding: raw", "encoding: bzip2", "encoding: ascii", "encoding: hex",
                     "encoding: zip"],
        "space directions": ["space directions: (0,0,0) (0,0.8,0) (0,0,2.5)",
                             "space directions: (nan,0,0) (0,0.8,0) (0,0,2.5)",
                             "space directions: none (0,0.8,0) (0,0,2.5)",
                             "space directions: (-0.9,0,0) (0,0.8,0) (0,0,2.5)",
                             "space directions: (0.9,0,0) (0.9,0,0) (0,0,2.5)"],
        "dimension": ["dimension: 2", "dimension: 4", "dimension: 0", "dimension: -3"],
    }  # fmt: skip
    field = rng.choice(list(choices))
    new = rng.choice(choices[field])
    lines = [new if ln.split(":")[0] == field else ln for ln in lines]
    return ("\n".join(lines)).encode("latin-1") + sep + body, new


def _mha_field(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    end = text.index(b"ElementDataFile")
    end = text.index(b"\n", end) + 1
    lines = text[:end].decode("latin-1").split("\n")
    choices = {
        "DimSize": ["DimSize = 16 12 0", "DimSize = 16 12 7", "DimSize = 16 12 5", "DimSize = 70000 70000 9000",
                    "DimSize = 12 16 6", "DimSize = 16 12", "DimSize = 16 -12 6"],
        "ElementType": ["ElementType = MET_FLOAT", "ElementType = MET_UCHAR", "ElementType = MET_DOUBLE",
                        "ElementType = MET_NONE", "ElementType = MET_SHORT_ARRAY"],
        "CompressedData": ["CompressedData = True", "CompressedData = False"],
        "ElementSpacing": ["ElementSpacing = 0 0.8 2.5", "ElementSpacing = -0.9 0.8 2.5",
                           "ElementSpacing = nan 0.8 2.5", "ElementSpacing = 0.9 inf 2.5", "ElementSpacing = 9 8 25"],
        "NDims": ["NDims = 2", "NDims = 4", "NDims = 0"],
    }  # fmt: skip
    field = rng.choice(list(choices))
    new = rng.choice(choices[field])
    lines = [new if ln.split(" = ")[0] == field else ln for ln in lines]
    return "\n".join(lines).encode("latin-1") + text[end:], new


def _png_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    field = rng.choice(["width", "height"])
    value = rng.choice([0, 1, 47, 49, 39, 41, 4096, 65535, 2**31 - 1])
    out = bytearray(data)
    at = 16 if field == "width" else 20
    out[at : at + 4] = struct.pack(">I", value)
    out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))  # a valid CRC: only the size lies
    return bytes(out), f"IHDR {field} = {value}"


_TIFF_TAGS = {
    256: "ImageWidth",
    257: "ImageLength",
    258: "BitsPerSample",
    273: "StripOffsets",
    279: "StripByteCounts",
}


def _tiff_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Set one baseline tag of the first IFD (little-endian TIFF, as Pillow writes) to a hostile value."""
    out = bytearray(data)
    ifd = struct.unpack("<I", data[4:8])[0]
    entries = {}
    for e in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * e
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in _TIFF_TAGS:
            entries[tag] = (at, kind)
    tag = rng.choice(sorted(entries))
    at, kind = entries[tag]
    value = rng.choice([0, 1, 7, 47, 49, 4096, 65535] + ([16, 32] if tag == 258 else []))
    out[at + 8 : at + 12] = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    return bytes(out), f"{_TIFF_TAGS[tag]} = {value}"


def _jpeg_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at = data.find(b"\xff\xc0")
    field = rng.choice(["height", "width"])
    value = rng.choice([0, 1, 39, 41, 47, 49, 4096, 65535])
    out = bytearray(data)
    where = at + 5 if field == "height" else at + 7
    out[where : where + 2] = struct.pack(">H", value)
    return bytes(out), f"SOF {field} = {value}"


def _dicom_field(series: Path, dest: Path, rng: random.Random) -> str:
    import pydicom

    files = sorted(p for p in dest.iterdir() if p.is_file())
    target = rng.choice(files)
    ds = pydicom.dcmread(target)
    field = rng.choice(["Rows", "Columns", "BitsAllocated", "ImagePositionPatient"])
    if field == "ImagePositionPatient":
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        value: object = rng.choice(
            [[x, y, z + 1.0], [x, y, z + 0.01], [x + 30.0, y, z], [x, y, z + 500.0], [x, y, 0.0]]
        )
    elif field == "BitsAllocated":
        value = rng.choice([0, 1, 8, 12, 32, 64])
    else:
        value = rng.choice([0, 1, 8, 15, 17, 32, 4096, 65535])
    setattr(ds, field, value)
    ds.save_as(target)
    return f"{target.name}: {field} = {value}"


# --- generation ------------------------------------------------------------------------------


def _field_damage(fmt: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if fmt.startswith("nii"):
        raw = gzip.decompress(data) if fmt == "nii.gz" else data
        out, detail = _nifti_field(raw, rng)
        return (gzip.compress(out, mtime=0) if fmt == "nii.gz" else out), detail
    if fmt.startswith("nrrd"):
        return _nrrd_field(data, rng)
    if fmt.startswith("mha"):
        return _mha_field(data, rng)
    return {"png": _png_field, "tiff": _tiff_field, "jpeg": _jpeg_field}[fmt](data, rng)


def _make_one(index: int, fmt: str, kind: str, seed_path: Path, folder: Path, rng: random.Random) -> Case:
    name = f"{index:04d}-{fmt.replace('.', '')}-{kind}"
    if fmt == "dicom":
        dest = folder / name
        shutil.copytree(seed_path, dest)
        if kind == "field":
            detail = _dicom_field(seed_path, dest, rng)
        else:
            target = rng.choice(sorted(p for p in dest.iterdir() if p.is_file()))
            data, detail = _byte_damage("dicom", target.read_bytes(), kind, rng)
            target.write_bytes(data)
            detail = f"{target.name}: {detail}"
        return Case(name, fmt, kind, detail, dest, seed_path)
    data = seed_path.read_bytes()
    data, detail = _field_damage(fmt, data, rng) if kind == "field" else _byte_damage(fmt, data, kind, rng)
    suffix = {"nii": ".nii", "nii.gz": ".nii.gz", "png": ".png", "tiff": ".tif", "jpeg": ".jpg"}.get(
        fmt, "." + fmt.split("-")[0]
    )
    path = folder / f"{name}{suffix}"
    path.write_bytes(data)
    return Case(name, fmt, kind, detail, path, seed_path)


def generate(n: int, seed: int, folder: Path) -> list[Case]:
    """``n`` damaged inputs in ``folder`` (seeds in ``folder/seeds``), spread over formats and kinds."""
    seeds = make_seeds(folder / "seeds")
    formats = [f for f in SEED_FORMATS if f in seeds]
    kinds = ("truncate", "flip-header", "flip-data", "field")
    cases = []
    for index in range(n):
        rng = random.Random(seed * 1_000_003 + index)
        fmt = formats[index % len(formats)]
        kind = kinds[(index // len(formats)) % len(kinds)]
        cases.append(_make_one(index, fmt, kind, seeds[fmt], folder, rng))
    return cases
