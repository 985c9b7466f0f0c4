"""Atomic file output: write to a temporary file in the destination folder, then ``os.replace``.

An interrupted or failed write never leaves a file under the final name: the temporary file is
removed on any exception (including ``KeyboardInterrupt``), and ``os.replace`` is atomic on the
same file system, so readers see either the old file or the complete new one.

A process killed hard (SIGKILL, power loss) cannot clean up: its temporary file stays, named
``.<name>.tmp-<pid>-<random><suffix>`` so that users recognise it. The next write to the same
destination removes such leftovers whose process no longer runs.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from medsam2.errors import InputError

__all__ = ["atomic_output", "full_suffix"]

_log = logging.getLogger(__name__)

_DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz")


def full_suffix(path: str | os.PathLike[str]) -> str:
    """Lower-case suffix including a compression part: ``a.nii.gz`` -> ``.nii.gz``, ``a.NRRD`` -> ``.nrrd``."""
    name = Path(path).name.lower()
    for double in _DOUBLE_SUFFIXES:
        if name.endswith(double) and len(name) > len(double):
            return double
    return Path(name).suffix


def _check_destination(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{path}: output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{path}: output folder {parent} is not writable")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave its file alone
    return True


def _remove_leftovers(final: Path, stem: str, suffix: str) -> None:
    """Delete temporary files of earlier writes to ``final`` whose writing process has died."""
    pattern = re.compile(rf"^\.{re.escape(stem)}\.tmp-(\d+)-[0-9a-f]+{re.escape(suffix)}$")
    for entry in final.parent.glob(f".{glob.escape(stem)}.tmp-*"):
        match = pattern.match(entry.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink()
                _log.info("removed %s, left by an interrupted earlier write", entry)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    The temporary name keeps the full suffix (``.nii.gz``, ``.nrrd``...) so that writers which
    choose the format from the suffix (SimpleITK) behave exactly as for the final name. It starts
    with a dot and contains ``.tmp-<pid>-`` so that it is recognisable if a process is killed
    hard (SIGKILL) before the clean-up can run; the next write to ``path`` removes it (module doc).
    """
    final = Path(path)
    _check_destination(final)
    suffix = full_suffix(final)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    _remove_leftovers(final, stem, suffix)
    tmp = final.with_name(f".{stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise InputError(f"{final}: the writer produced no file")
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _log.debug("wrote %s", final)
