"""Prompts of the frame / image-set commands: flags and `--prompts FILE.json` -> typed records.

Syntax (DESIGN.md §6 "CLI prompt syntax"):

* ``--point F:X,Y[:LABEL]`` (LABEL 1 = positive, the default; 0 = negative) and
  ``--box F:X0,Y0,X1,Y1`` describe object 1. F is a frame index (digits only) or an image file
  name; X is the column and Y the row, in the image's own pixels.
* ``--prompts FILE.json``: ``{"objects": [{"id": 1, "name": "liver", "prompts": [
  {"frame": F, "box": [[x0, y0], [x1, y1]]}, {"frame": F, "point": [x, y], "label": 1},
  {"frame": F, "mask": "path"}]}]}``; mask paths are relative to the JSON file's folder.

Parsing (this module's first half) checks syntax only; :func:`resolve_prompts` then maps frame
references to indices and checks every prompt against its frame's size. Every problem raises
`PromptError` naming the flag (or file and JSON location) and the offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.errors import InputError, PromptError

__all__ = [
    "BoxPrompt",
    "FrameIndex",
    "FramePrompts",
    "FrameRef",
    "MaskPrompt",
    "ObjectPrompts",
    "PointPrompt",
    "Prompt",
    "load_prompts_json",
    "parse_box",
    "parse_point",
    "prompts_from_flags",
    "resolve_prompts",
    "MAX_OBJECT_ID",
]

MAX_OBJECT_ID = 65535  # label PNGs are at most 16-bit
FrameRef = int | str | None  # frame index, image file name, or None: "the prompted image"

_POINT = re.compile(r"^(?:(?P<frame>.+):)?(?P<x>[^:,]+),(?P<y>[^:,]+)(?::(?P<label>[^:,]*))?$")
_BOX = re.compile(r"^(?:(?P<frame>.+):)?(?P<coords>[^:]+)$")


@dataclass(frozen=True)
class PointPrompt:
    """A click at column ``x``, row ``y``; ``label`` 1 positive, 0 negative; ``origin`` for messages."""

    frame: FrameRef
    x: float
    y: float
    label: int
    origin: str


@dataclass(frozen=True)
class BoxPrompt:
    """A box with corners (x0, y0) and (x1, y1) in the frame's pixels."""

    frame: FrameRef
    x0: float
    y0: float
    x1: float
    y1: float
    origin: str


@dataclass(frozen=True)
class MaskPrompt:
    """A mask image (non-zero = object) of the frame's size."""

    frame: FrameRef
    path: Path
    origin: str


Prompt = PointPrompt | BoxPrompt | MaskPrompt


@dataclass(frozen=True)
class ObjectPrompts:
    """All prompts of one object (label value ``obj_id`` in the outputs)."""

    obj_id: int
    name: str | None
    prompts: tuple[Prompt, ...]


@dataclass
class FramePrompts:
    """Resolved prompts of one object on one frame, ready for ``VideoPredictor.add_prompt``."""

    obj_id: int
    frame: int
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None


# ----------------------------------------------------------------------------------------- parsing


def _number(text: str, origin: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PromptError(f"{origin}: {what} {text.strip()!r} is not a number") from None
    if not np.isfinite(value):
        raise PromptError(f"{origin}: {what} must be a finite number, got {text.strip()!r}")
    return value


def _frame_ref(text: str | None, origin: str, syntax: str, allow_missing: bool) -> FrameRef:
    if text is None:
        if allow_missing:
            return None
        raise PromptError(f"{origin}: expected {syntax} (F = frame index or image file name)")
    text = text.strip()
    if not text:
        raise PromptError(f"{origin}: empty frame before ':' (expected {syntax})")
    return int(text) if text.isdigit() else text


def parse_point(value: str, allow_missing_frame: bool = False, flag: str = "--point") -> PointPrompt:
    """``F:X,Y[:LABEL]`` (F optional when ``allow_missing_frame``) -> PointPrompt."""
    origin = f"{flag} {value}"
    syntax = "F:X,Y[:LABEL]"
    m = _POINT.match(value.strip())
    if m is None:
        raise PromptError(f"{origin}: expected {syntax} (F = frame index or image file name)")
    frame = _frame_ref(m["frame"], origin, syntax, allow_missing_frame)
    label_text = m["label"]
    if label_text is None:
        label = 1
    elif label_text.strip() in ("0", "1"):
        label = int(label_text)
    else:
        raise PromptError(f"{origin}: LABEL must be 1 (positive) or 0 (negative), got {label_text!r}")
    x, y = _number(m["x"], origin, "X"), _number(m["y"], origin, "Y")
    return PointPrompt(frame, x, y, label, origin)


def parse_box(value: str, allow_missing_frame: bool = False, flag: str = "--box") -> BoxPrompt:
    """``F:X0,Y0,X1,Y1`` (F optional when ``allow_missing_frame``) -> BoxPrompt."""
    origin = f"{flag} {value}"
    syntax = "F:X0,Y0,X1,Y1"
    m = _BOX.match(value.strip())
    parts = [] if m is None else m["coords"].split(",")
    if m is None or len(parts) != 4:
        raise PromptError(f"{origin}: expected {syntax} (F = frame index or image file name)")
    frame = _frame_ref(m["frame"], origin, syntax, allow_missing_frame)
    x0, y0, x1, y1 = (_number(t, origin, n) for t, n in zip(parts, ("X0", "Y0", "X1", "Y1"), strict=True))
    return BoxPrompt(frame, x0, y0, x1, y1, origin)


def prompts_from_flags(
    points: Sequence[str], boxes: Sequence[str], allow_missing_frame: bool = False
) -> list[ObjectPrompts]:
    """``--point``/``--box`` values -> one object (id 1), or nothing when no flag is given."""
    parsed: list[Prompt] = [parse_box(b, allow_missing_frame) for b in boxes]
    parsed += [parse_point(p, allow_missing_frame) for p in points]
    return [ObjectPrompts(1, None, tuple(parsed))] if parsed else []


def _read_json(path: Path) -> Any:
    origin = f"--prompts {path}"
    if not path.is_file():
        raise InputError(f"{origin}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PromptError(f"{origin}: not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise PromptError(
            f"{origin}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def _check_keys(obj: Any, where: str, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise PromptError(f"{where}: expected a JSON object, got {json.dumps(obj)[:60]}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise PromptError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = sorted(required - set(obj))
    if missing:
        raise PromptError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
    return obj


def _json_xy(value: Any, where: str) -> tuple[float, float]:
    ok = isinstance(value, list) and len(value) == 2
    if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise PromptError(f"{where}: expected [x, y] (two numbers), got {json.dumps(value)[:60]}")
    x, y = float(value[0]), float(value[1])
    if not (np.isfinite(x) and np.isfinite(y)):
        raise PromptError(f"{where}: coordinates must be finite, got {json.dumps(value)}")
    return x, y


def _json_frame(entry: dict[str, Any], where: str, allow_missing: bool) -> FrameRef:
    if "frame" not in entry:
        if allow_missing:
            return None
        raise PromptError(f"{where}: missing key 'frame' (a frame index or an image file name)")
    f = entry["frame"]
    if isinstance(f, int) and not isinstance(f, bool) and f >= 0:
        return f
    if isinstance(f, str) and f.strip():
        return int(f.strip()) if f.strip().isdigit() else f.strip()
    raise PromptError(f"{where}: 'frame' must be an index >= 0 or an image file name, got {json.dumps(f)}")


def _json_prompt(entry: Any, where: str, base: Path, allow_missing: bool) -> Prompt:
    keys = {"frame", "point", "label", "box", "mask"}
    entry = _check_keys(entry, where, set(), keys)
    kinds = [k for k in ("point", "box", "mask") if k in entry]
    if len(kinds) != 1:
        raise PromptError(f"{where}: give exactly one of 'point', 'box' or 'mask', got {kinds or 'none'}")
    if "label" in entry and kinds != ["point"]:
        raise PromptError(f"{where}: 'label' goes with a 'point'")
    frame = _json_frame(entry, where, allow_missing)
    if kinds == ["point"]:
        x, y = _json_xy(entry["point"], f"{where}.point")
        label = entry.get("label", 1)
        if label not in (0, 1) or isinstance(label, bool):
            raise PromptError(f"{where}.label: must be 1 (positive) or 0 (negative), got {json.dumps(label)}")
        return PointPrompt(frame, x, y, int(label), where)
    if kinds == ["box"]:
        corners = entry["box"]
        if not isinstance(corners, list) or len(corners) != 2:
            raise PromptError(f"{where}.box: expected [[x0, y0], [x1, y1]], got {json.dumps(corners)[:60]}")
        (x0, y0), (x1, y1) = (_json_xy(c, f"{where}.box") for c in corners)
        return BoxPrompt(frame, x0, y0, x1, y1, where)
    mask = entry["mask"]
    if not isinstance(mask, str) or not mask.strip():
        raise PromptError(f"{where}.mask: expected a file path, got {json.dumps(mask)[:60]}")
    return MaskPrompt(frame, base / mask, where)


def _json_object(obj: Any, where: str, base: Path, allow_missing: bool) -> ObjectPrompts:
    obj = _check_keys(obj, where, {"id", "prompts"}, {"id", "name", "prompts"})
    oid = obj["id"]
    if not isinstance(oid, int) or isinstance(oid, bool) or not 1 <= oid <= MAX_OBJECT_ID:
        raise PromptError(
            f"{where}.id: must be an integer 1..{MAX_OBJECT_ID} (0 is background), got {json.dumps(oid)}"
        )
    name = obj.get("name")
    if name is not None and not isinstance(name, str):
        raise PromptError(f"{where}.name: must be a string, got {json.dumps(name)[:60]}")
    plist = obj["prompts"]
    if not isinstance(plist, list) or not plist:
        raise PromptError(f"{where}.prompts: expected a non-empty list of prompts")
    prompts = tuple(
        _json_prompt(p, f"{where}.prompts[{j}]", base, allow_missing) for j, p in enumerate(plist)
    )
    return ObjectPrompts(oid, name, prompts)


def load_prompts_json(path: str | Path, allow_missing_frame: bool = False) -> list[ObjectPrompts]:
    """Read ``--prompts FILE.json`` (strict: unknown keys and duplicate ids are errors)."""
    p = Path(path)
    data = _check_keys(_read_json(p), f"--prompts {p}", {"objects"}, {"objects"})
    objects = data["objects"]
    if not isinstance(objects, list) or not objects:
        raise PromptError(f"--prompts {p}: 'objects' must be a non-empty list")
    base = p.parent
    parsed = [
        _json_object(o, f"--prompts {p}: objects[{i}]", base, allow_missing_frame)
        for i, o in enumerate(objects)
    ]
    seen: set[int] = set()
    for obj in parsed:
        if obj.obj_id in seen:
            raise PromptError(f"--prompts {p}: object id {obj.obj_id} is used twice")
        seen.add(obj.obj_id)
    return parsed


# -------------------------------------------------------------------------------------- resolution


class FrameIndex:
    """Maps frame references (index, file name or the path as typed) to frame indices."""

    def __init__(self, paths: Sequence[Path], default: int | None, default_hint: str) -> None:
        self.paths = list(paths)
        self.default = default
        self.default_hint = default_hint
        self._by_name: dict[str, list[int]] = {}
        for i, p in enumerate(self.paths):
            self._by_name.setdefault(p.name, []).append(i)
            self._by_name.setdefault(str(p), []).append(i)

    def resolve(self, ref: FrameRef, origin: str) -> int:
        n = len(self.paths)
        if ref is None:
            if self.default is None:
                raise PromptError(f"{origin}: {self.default_hint}")
            return self.default
        if isinstance(ref, int):
            if not 0 <= ref < n:
                raise PromptError(f"{origin}: frame {ref} does not exist (frames 0..{n - 1})")
            return ref
        hits = sorted(set(self._by_name.get(ref, []) + self._by_name.get(str(Path(ref)), [])))
        if len(hits) > 1:
            raise PromptError(f"{origin}: {ref!r} names several inputs; give its path as typed instead")
        if not hits:
            some = ", ".join(p.name for p in self.paths[:3]) + (", ..." if n > 3 else "")
            raise PromptError(f"{origin}: no input image is named {ref!r} (inputs: {some})")
        return hits[0]


def _check_xy(x: float, y: float, size: tuple[int, int], frame: int, origin: str) -> None:
    h, w = size
    if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
        raise PromptError(
            f"{origin}: ({x:g}, {y:g}) is outside frame {frame} of {w}x{h} pixels (x 0..{w - 1}, y 0..{h - 1})"
        )


def _read_mask(prompt: MaskPrompt, size: tuple[int, int], frame: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not prompt.path.is_file():
        raise InputError(f"{prompt.origin}: mask file {prompt.path} not found")
    try:
        with Image.open(prompt.path) as img:
            arr = np.asarray(img.convert("RGB") if img.mode in ("P", "PA", "CMYK", "YCbCr") else img)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{prompt.origin}: mask {prompt.path} is not a readable image ({exc})") from None
    mask = np.asarray(arr.any(axis=2) if arr.ndim == 3 else arr != 0, dtype=bool)
    if mask.shape != size:
        raise PromptError(
            f"{prompt.origin}: mask {prompt.path} is {mask.shape[1]}x{mask.shape[0]} pixels, "
            f"frame {frame} is {size[1]}x{size[0]}"
        )
    if not mask.any():
        raise PromptError(f"{prompt.origin}: mask {prompt.path} is empty (no non-zero pixel)")
    return mask


def _merge(target: FramePrompts, prompt: Prompt, size: tuple[int, int]) -> None:
    where = f"{prompt.origin}: object {target.obj_id}, frame {target.frame}"
    has_clicks = bool(target.points) or target.box is not None
    if isinstance(prompt, MaskPrompt) or target.mask is not None:
        if has_clicks or target.mask is not None:
            raise PromptError(
                f"{where}: a mask prompt cannot be combined with other prompts on the same frame"
            )
        assert isinstance(prompt, MaskPrompt)
        target.mask = _read_mask(prompt, size, target.frame)
    elif isinstance(prompt, BoxPrompt):
        if target.box is not None:
            raise PromptError(f"{where}: only one box per object and frame")
        _check_xy(prompt.x0, prompt.y0, size, target.frame, prompt.origin)
        _check_xy(prompt.x1, prompt.y1, size, target.frame, prompt.origin)
        if prompt.x1 < prompt.x0 or prompt.y1 < prompt.y0:
            raise PromptError(
                f"{prompt.origin}: box corners in the wrong order; expected X0 <= X1 and Y0 <= Y1"
            )
        target.box = (prompt.x0, prompt.y0, prompt.x1, prompt.y1)
    else:
        _check_xy(prompt.x, prompt.y, size, target.frame, prompt.origin)
        target.points.append((prompt.x, prompt.y))
        target.labels.append(prompt.label)


def resolve_prompts(
    objects: Sequence[ObjectPrompts],
    frames: FrameIndex,
    frame_size: Callable[[int], tuple[int, int]],
) -> list[FramePrompts]:
    """Map every prompt to its frame and check it against the frame's (H, W); group by object and frame."""
    if not objects:
        raise PromptError("no prompts: give --point, --box or --prompts FILE.json")
    grouped: dict[tuple[int, int], FramePrompts] = {}
    for obj in objects:
        for prompt in obj.prompts:
            frame = frames.resolve(prompt.frame, prompt.origin)
            key = (obj.obj_id, frame)
            target = grouped.setdefault(key, FramePrompts(obj.obj_id, frame))
            _merge(target, prompt, frame_size(frame))
    return [grouped[k] for k in sorted(grouped)]
