"""Checks made on a file's bytes *before* a reader allocates or decodes anything.

SimpleITK (like most readers) repairs damage silently: a gzip stream cut short, or raw data
shorter than the header says, comes back with the missing voxels set to 0. And a header whose
dimensions were damaged makes it try to allocate terabytes. The helpers here let the format
modules (`medsam2.io.nifti`, `medsam2.io.headers`) refuse such files with a clear message:

* `check_voxel_budget`: refuse a voxel count that is absurd (more than `MAX_VOXELS`) or that
  would need more memory than the machine has (stored data + a float32 working copy), with the
  size in the message, before anything is allocated.
* `count_decompressed`: stream a gzip / zlib / bzip2 stream to its end in chunks (never holding
  it whole), counting the bytes it yields; a truncated or corrupt stream is refused.
* `check_data_length`: the data holds the bytes the header describes (exactly, when the data
  are the rest of the file).
* `captured_output`: C libraries (libtiff, MetaIO, libjpeg) print warnings straight to file
  descriptors 1 and 2; this keeps them off the user's terminal (they are logged instead) so errors
  stay one line, and lets a caller refuse a file that libjpeg only warns about.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import logging
import math
import os
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from medsam2.errors import InputError

__all__ = [
    "MAX_VOXELS",
    "available_memory",
    "captured_output",
    "check_data_length",
    "check_voxel_budget",
    "count_decompressed",
]

_log = logging.getLogger(__name__)

MAX_VOXELS = 4 * 1024**3
"""More voxels than this (4 Gi, e.g. 2048 x 2048 x 1024) is taken as a damaged header."""

_WORKING_BYTES = 4  # a float32 copy of every voxel is made for intensity normalisation
_CHUNK = 1 << 22
_GIB = 1024.0**3


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux, else free pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16 * 1024**3  # unknown platform: a typical workstation


def check_voxel_budget(source: str, shape: Sequence[int], bytes_per_voxel: int, what: str = "header") -> None:
    """Refuse ``shape`` (from a header) when it is absurd or cannot fit in memory; nothing is allocated."""
    dims = [int(d) for d in shape]
    voxels = math.prod(dims)
    need = voxels * (max(int(bytes_per_voxel), 1) + _WORKING_BYTES)
    if voxels > MAX_VOXELS:
        raise InputError(
            f"{source}: the {what} describes {'x'.join(map(str, dims))} = {voxels:,} voxels "
            f"(about {need / _GIB:,.1f} GiB to read); more than {MAX_VOXELS:,} voxels is taken as a damaged "
            "header; refused before allocating"
        )
    free = available_memory()
    if need > free:
        raise InputError(
            f"{source}: the {what} describes {'x'.join(map(str, dims))} = {voxels:,} voxels; reading it "
            f"needs about {need / _GIB:,.1f} GiB (stored data + a float32 copy) but only {free / _GIB:,.1f} GiB "
            "of memory is available; refused before allocating (damaged header, or crop/resample the image)"
        )


def _decoder(encoding: str) -> zlib._Decompress | bz2.BZ2Decompressor:
    if encoding == "zlib":
        return zlib.decompressobj()
    if encoding == "bzip2":
        return bz2.BZ2Decompressor()
    raise ValueError(f"unknown encoding {encoding!r}")


def _count_gzip(fh: BinaryIO) -> int:
    total = 0
    with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
        while block := gz.read(_CHUNK):
            total += len(block)
    return total


def _count_stream(fh: BinaryIO, encoding: str) -> tuple[int, bool]:
    """(bytes decompressed, whether the stream reached its end marker) for zlib / bzip2."""
    decoder = _decoder(encoding)
    total = 0
    while not decoder.eof and (chunk := fh.read(_CHUNK)):
        if isinstance(decoder, bz2.BZ2Decompressor):
            total += len(decoder.decompress(chunk))
            while not decoder.eof and not decoder.needs_input:
                total += len(decoder.decompress(b"", _CHUNK))
            continue
        total += len(decoder.decompress(chunk, _CHUNK))
        while decoder.unconsumed_tail:
            total += len(decoder.decompress(decoder.unconsumed_tail, _CHUNK))
    return total, decoder.eof


def count_decompressed(fh: BinaryIO, encoding: str, source: str) -> int:
    """Bytes yielded by the ``encoding`` ('gzip', 'zlib' or 'bzip2') stream read from ``fh``.

    The stream is decompressed chunk by chunk to its end (so the gzip CRC and length are checked);
    a stream that is cut short or corrupt raises `InputError` naming ``source``.
    """
    try:
        if encoding == "gzip":
            return _count_gzip(fh)
        total, complete = _count_stream(fh, encoding)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputError(f"{source}: the {encoding} data is truncated or corrupt ({reason})") from exc
    if not complete:
        raise InputError(
            f"{source}: the {encoding} data is truncated (the stream ends after {total:,} bytes without its end marker)"
        )
    return total


def check_data_length(
    source: str, have: int, need: int, what: str = "image data", exact: bool = False
) -> None:
    """Refuse data shorter than the header says (a reader would fill the rest with zeros) and, with
    ``exact`` (the data are the rest of the file), longer: then the header's dimensions or voxel
    type do not describe the data, and a reader would silently show a sheared or cropped image."""
    if have < need:
        raise InputError(
            f"{source}: the {what} is truncated: the header describes {need:,} bytes but the file holds "
            f"{max(have, 0):,}; refused (a reader would fill the missing voxels with zeros)"
        )
    if exact and have > need:
        raise InputError(
            f"{source}: the {what} holds {have - need:,} bytes more than the {need:,} the header describes; "
            "its dimensions or voxel type do not match the data (damaged header?)"
        )


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Redirect file descriptors 1 and 2 to a temporary file for the block; log what was written.

    C libraries print straight to them (libtiff to stderr, libjpeg through ITK to stdout). Yields a
    list that holds the captured text once the block has ended, for callers that treat a library's
    warnings as errors (libjpeg: "Corrupt JPEG data ...")."""
    messages: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            saved = os.dup(1), os.dup(2)
        except OSError:  # no usable descriptors (embedded interpreter): nothing to capture
            yield messages
            return
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield messages
        finally:
            for fd, old in zip((1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            text = sink.read(4096).decode("utf-8", "replace").strip()
            if text:
                messages.append(text)
                _log.debug("library messages: %s", " | ".join(text.splitlines()))
