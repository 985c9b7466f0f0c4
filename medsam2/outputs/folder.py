"""An output folder that appears complete or not at all.

Everything is written into a hidden staging folder next to the destination and moved into
place only when the whole job succeeded; on any error (or Ctrl-C) the staging folder is removed
and the destination is untouched. The destination must be new or empty, unless ``overwrite``:
then the entries the job writes replace the ones already there (and ``managed`` names the job
did not write this time are removed, so no stale result is left beside fresh ones).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from medsam2.errors import InputError

__all__ = ["check_output_folder", "staged_folder"]


def _existing_ancestor(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    raise InputError(f"{path}: no existing parent folder")  # pragma: no cover - "/" always exists


def check_output_folder(out: Path, overwrite: bool, flag: str = "-o/--output") -> None:
    """Refuse a destination that cannot be used, before any work is done."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(
            f"{flag} {out}: folder exists and is not empty; choose a new folder or pass --overwrite"
        )
    base = out if out.is_dir() else _existing_ancestor(out)
    if not base.is_dir():
        raise InputError(f"{flag} {out}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {out}: {base} is not writable")


def _commit(stage: Path, out: Path, managed: Sequence[str]) -> None:
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage, out)
        return
    trash = stage.with_name(stage.name + "-old")
    trash.mkdir()
    produced = {p.name for p in stage.iterdir()}
    for name in sorted(produced | set(managed)):
        if (out / name).exists() or (out / name).is_symlink():
            os.replace(out / name, trash / name)
        if name in produced:
            os.replace(stage / name, out / name)
    shutil.rmtree(trash, ignore_errors=True)
    stage.rmdir()


@contextlib.contextmanager
def staged_folder(
    out: str | os.PathLike[str], overwrite: bool = False, managed: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a staging folder; on success its content becomes ``out`` (see the module docstring)."""
    final = Path(out)
    check_output_folder(final, overwrite)
    base = final.parent if final.parent.is_dir() else _existing_ancestor(final)
    stage = base / f".{final.name}.tmp-{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        yield stage
        _commit(stage, final, managed)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
