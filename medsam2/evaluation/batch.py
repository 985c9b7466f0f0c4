"""``segment_batch``: many volumes, one label volume each, a manifest, resumable and shardable.

Layout of ``OUT``::

    OUT/masks/{case}{suffix}        the label volume in the input's geometry (value = object id)
    OUT/manifest/{case}.json        this case's entry (written after its mask, atomically)
    OUT/manifest.json, manifest.csv every entry of the run, in case order (rank 0, at the end)

An entry holds the input's SHA-256, the prompts, the model id, the options, its ``key`` (a hash of
those four), ``status`` (``ok``/``failed``), the error and the seconds. A rerun skips a case whose
entry is ``ok`` with the same key and whose mask exists, redoes changed cases and retries failed
ones. A failing case is recorded and the batch goes on. Under ``torchrun`` rank r takes cases
r, r + W, ... in name order and writes only their files; the merged manifest does not depend on
the number of processes (only ``seconds`` does). Every file is written through
:func:`medsam2.io.atomic.atomic_output`; temporary files left by a killed process are removed
when the next run starts.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.evaluation.run import rank_barrier, shard_of, world, write_json
from medsam2.evaluation.tables import safe_name, write_csv
from medsam2.model.sam2_model import Sam2Model
from medsam2.types import Volume
from medsam2.volume import VolumeObject

__all__ = ["BatchCase", "BatchOptions", "ManifestEntry", "BatchOutcome", "segment_batch", "input_sha256"]

log = logging.getLogger(__name__)

ObjectParser = Callable[[dict[str, Any], str, Volume], list[VolumeObject]]


@dataclass(frozen=True)
class BatchCase:
    """One input (file or DICOM folder) and its prompts, ``{"objects": [...]}`` as ``medsam2 segment
    --prompts`` takes them (voxel indices, or world mm with ``"world": true``)."""

    name: str
    input: Path
    prompts: dict[str, Any]


@dataclass(frozen=True)
class BatchOptions:
    axis: str = "auto"
    window: str | None = None
    memory: str = "self-sorting"
    memory_options: dict[str, Any] = field(default_factory=dict)
    suffix: str = ".nii.gz"
    speed: str = "exact"  # exact or fast (medsam2.engine.speed)
    tracker: str = "memory"  # memory or box-chain (medsam2.engine.box_chain), resolved: never auto

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.speed == "exact":
            del out["speed"]  # exact runs keep the keys of manifests written before --speed existed
        if self.tracker == "memory":
            del out["tracker"]  # likewise for runs before --tracker
        return out


@dataclass(frozen=True)
class ManifestEntry:
    case: str
    input: str
    input_sha256: str
    output: str | None
    prompts: dict[str, Any]
    model: str
    options: dict[str, Any]
    key: str
    status: str
    error: str | None
    seconds: float


@dataclass(frozen=True)
class BatchOutcome:
    """Entries of this run's cases (rank 0 after merging; other ranks: their own), and counts."""

    entries: list[ManifestEntry]
    done: int
    skipped: int
    failed: int
    merged: bool


def input_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _key(sha: str, prompts: dict[str, Any], model_id: str, options: dict[str, Any]) -> str:
    text = json.dumps([sha, prompts, model_id, options], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read_entry(path: Path) -> ManifestEntry | None:
    try:
        return ManifestEntry(**json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def _clean_partial(root: Path, name: str) -> None:
    """Remove the temporary files a killed process left for case ``name`` (``.NAME.tmp-XXXX...``,
    see atomic_output); each rank cleans only its own cases."""
    for folder in (root / "masks", root / "manifest"):
        for p in folder.glob(f".{glob.escape(name)}.tmp-*"):
            log.info("removing a partial file from an interrupted run: %s", p)
            p.unlink(missing_ok=True)


def _segment_one(
    model: Sam2Model, case: BatchCase, opts: BatchOptions, out: Path, parse: ObjectParser
) -> None:
    from medsam2.io import read_image
    from medsam2.io.writers import write_mask
    from medsam2.volume import segment_volume

    volume = read_image(case.input)
    objects = parse(case.prompts, f"case {case.name}", volume)
    res = segment_volume(
        model,
        volume,
        objects,
        axis=opts.axis,
        window=opts.window,
        memory=opts.memory,
        memory_options=opts.memory_options,
        speed=opts.speed,
        tracker=opts.tracker,
    )
    labels = res.labels if int(np.max(res.labels, initial=0)) > 255 else res.labels.astype(np.uint8)
    write_mask(labels, volume, out)


def _run_case(
    model: Sam2Model, model_id: str, case: BatchCase, opts: BatchOptions, root: Path, parse: ObjectParser
) -> tuple[ManifestEntry, bool]:
    """(entry, whether it was skipped as already done)."""
    entry_path = root / "manifest" / f"{safe_name(case.name)}.json"
    mask = root / "masks" / f"{safe_name(case.name)}{opts.suffix}"
    _clean_partial(root, safe_name(case.name))
    t0 = time.perf_counter()
    error: str | None = None
    try:
        sha = input_sha256(case.input)
    except OSError as exc:
        sha, error = "", f"unreadable input: {exc}"
    key = _key(sha, case.prompts, model_id, opts.to_json())
    old = _read_entry(entry_path)
    if old is not None and old.status == "ok" and old.key == key and mask.is_file():
        return old, True
    if error is None:
        try:
            _segment_one(model, case, opts, mask, parse)
        except Exception as exc:  # one bad case is reported and skipped, never stops the batch
            error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if error is not None:
        log.error("%s: failed: %s", case.name, error)
        mask.unlink(missing_ok=True)
    entry = ManifestEntry(
        case.name, str(case.input), sha, None if error else str(mask.relative_to(root)), case.prompts,
        model_id, opts.to_json(), key, "failed" if error else "ok", error, time.perf_counter() - t0,
    )  # fmt: skip
    write_json(entry_path, asdict(entry))
    return entry, False


def segment_batch(
    model: Sam2Model,
    model_id: str,
    cases: Sequence[BatchCase],
    out: str | Path,
    options: BatchOptions,
    parse: ObjectParser,
) -> BatchOutcome:
    """Segment ``cases`` into ``out`` (module docstring); ``parse`` turns prompts into objects."""
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("segment_batch: case names must be unique")
    root = Path(out)
    for sub in ("masks", "manifest"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rank, size = world()
    ordered = sorted(cases, key=lambda c: c.name)
    mine = [ordered[i] for i in shard_of(len(ordered), rank, size)]
    results = [_run_case(model, model_id, c, options, root, parse) for c in mine]
    created = rank_barrier(size)
    try:
        if rank != 0:
            entries = [e for e, _ in results]
            return BatchOutcome(entries, sum(not s for _, s in results), sum(s for _, s in results),
                                sum(e.status != "ok" for e in entries), False)  # fmt: skip
        merged = [_read_entry(root / "manifest" / f"{safe_name(c.name)}.json") for c in ordered]
        entries = [e for e in merged if e is not None]
        write_json(root / "manifest.json", {"entries": [asdict(e) for e in entries]})
        write_csv(root / "manifest.csv", [_flat(e) for e in entries], _FlatEntry)
        skipped = sum(s for _, s in results)
        return BatchOutcome(
            entries, len(results) - skipped, skipped, sum(e.status != "ok" for e in entries), True
        )
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


@dataclass(frozen=True)
class _FlatEntry:
    case: str
    input: str
    input_sha256: str
    output: str | None
    status: str
    error: str | None
    seconds: float
    key: str


def _flat(e: ManifestEntry) -> _FlatEntry:
    return _FlatEntry(e.case, e.input, e.input_sha256, e.output, e.status, e.error, e.seconds, e.key)
