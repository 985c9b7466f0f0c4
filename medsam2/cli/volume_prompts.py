"""Volume prompt syntax (DESIGN.md §6): voxel-index flags and the `--prompts` JSON file.

Flags describe object 1: `--point I,J,K`, `--negative-point I,J,K`, `--box I0,J0,K0,I1,J1,K1`,
`--mask-prompt FILE`; `--world` reads the numbers as millimetres (LPS). JSON:
`{"objects": [{"id": 1, "name": "liver", "prompts": [{"box": [[i0,j0,k0],[i1,j1,k1]]},
{"point": [i,j,k], "label": 1}, {"mask": "path"}]}]}` (mask paths relative to the JSON file;
an optional top-level `"world": true`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.errors import InputError, PromptError
from medsam2.volume import VolumeObject, VoxelBox, VoxelPoint

__all__ = ["parse_triplet", "objects_from_flags", "objects_from_json", "objects_from_data"]

MaskReader = Callable[[Path, str], np.ndarray]


def _numbers(text: str, count: int, flag: str, syntax: str) -> tuple[float, ...]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise PromptError(f"{flag} {text}: expected {syntax} (numbers separated by commas)") from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise PromptError(f"{flag} {text}: expected {syntax}")
    return values


def parse_triplet(text: str, flag: str) -> tuple[float, float, float]:
    i, j, k = _numbers(text, 3, flag, "I,J,K")
    return (i, j, k)


def objects_from_flags(
    points: Sequence[str],
    negatives: Sequence[str],
    boxes: Sequence[str],
    mask_prompt: str | None,
    world: bool,
    read_mask: MaskReader,
) -> list[VolumeObject]:
    """The flags' prompts as object 1 (empty list when no flag was given)."""
    pts = [VoxelPoint(parse_triplet(p, "--point"), 1) for p in points]
    pts += [VoxelPoint(parse_triplet(p, "--negative-point"), 0) for p in negatives]
    bxs = []
    for b in boxes:
        v = _numbers(b, 6, "--box", "I0,J0,K0,I1,J1,K1")
        bxs.append(VoxelBox(v[:3], v[3:]))
    masks = (read_mask(Path(mask_prompt), "--mask-prompt"),) if mask_prompt else ()
    if not pts and not bxs and not masks:
        return []
    return [VolumeObject(1, None, tuple(pts), tuple(bxs), masks, world)]


def _vector(value: Any, where: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise PromptError(f"{where}: expected [i, j, k], got {json.dumps(value)}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _json_prompt(entry: Any, where: str, base: Path, read_mask: MaskReader) -> tuple[str, Any]:
    if not isinstance(entry, dict) or len({"box", "point", "mask"} & set(entry)) != 1:
        raise PromptError(f"{where}: each prompt needs exactly one of box, point, mask")
    unknown = set(entry) - {"box", "point", "mask", "label"}
    if unknown:
        raise PromptError(f"{where}: unknown key(s) {sorted(unknown)}")
    if "box" in entry:
        box = entry["box"]
        if not isinstance(box, list) or len(box) != 2:
            raise PromptError(f"{where}: box must be [[i0, j0, k0], [i1, j1, k1]]")
        return "box", VoxelBox(_vector(box[0], where), _vector(box[1], where))
    if "point" in entry:
        label = entry.get("label", 1)
        if label not in (0, 1):
            raise PromptError(f"{where}: label must be 1 (positive) or 0 (negative), got {label!r}")
        return "point", VoxelPoint(_vector(entry["point"], where), int(label))
    path = Path(str(entry["mask"]))
    return "mask", read_mask(path if path.is_absolute() else base / path, where)


def _json_object(obj: Any, where: str, base: Path, world: bool, read_mask: MaskReader) -> VolumeObject:
    if not isinstance(obj, dict) or "id" not in obj or "prompts" not in obj:
        raise PromptError(f"{where}: each object needs an id and a list of prompts")
    oid = obj["id"]
    if not isinstance(oid, int) or isinstance(oid, bool) or not 1 <= oid <= 65535:
        raise PromptError(f"{where}: id must be an integer 1..65535, got {oid!r}")
    if not isinstance(obj["prompts"], list) or not obj["prompts"]:
        raise PromptError(f"{where} (id {oid}): prompts must be a non-empty list")
    found: dict[str, list[Any]] = {"box": [], "point": [], "mask": []}
    for n, entry in enumerate(obj["prompts"]):
        kind, value = _json_prompt(entry, f"{where} (id {oid}) prompt {n + 1}", base, read_mask)
        found[kind].append(value)
    name = obj.get("name")
    return VolumeObject(
        oid,
        None if name is None else str(name),
        tuple(found["point"]),
        tuple(found["box"]),
        tuple(found["mask"]),
        world,
    )


def objects_from_json(path: str | Path, world: bool, read_mask: MaskReader) -> list[VolumeObject]:
    """Objects of a `--prompts` file; PromptError names the file and the offending entry."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--prompts {p}: file not found")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PromptError(f"--prompts {p}: not valid JSON ({exc})") from None
    return objects_from_data(data, f"--prompts {p}", p.parent, world, read_mask)


def objects_from_data(
    data: dict[str, Any], where: str, base: Path, world: bool, read_mask: MaskReader
) -> list[VolumeObject]:
    """Objects of a parsed ``{"objects": [...]}`` mapping; ``where`` starts error messages, mask
    paths are relative to ``base``."""
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list) or not data["objects"]:
        raise PromptError(f'{where}: expected {{"objects": [...]}} with at least one object')
    world = world or bool(data.get("world", False))
    objects = [
        _json_object(o, f"{where}: object {n + 1}", base, world, read_mask)
        for n, o in enumerate(data["objects"])
    ]
    ids = [o.obj_id for o in objects]
    if len(set(ids)) != len(ids):
        raise PromptError(f"{where}: object ids repeat: {ids}")
    return objects
