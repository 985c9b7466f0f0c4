"""Strict parsing of the JSON bodies of `medsam2 serve` (unknown keys, wrong types -> errors).

No request carries a file path: object names are display text from a small character set (no
slashes, no ``..``), colours are ``#rrggbb``, coordinates are finite numbers. Anything else is a
`RequestError` (HTTP 422).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from medsam2.errors import MedSam2Error
from medsam2.web.coords import SPACES
from medsam2.web.prompts import WorldPrompt

__all__ = ["RequestError", "parse_body", "parse_object", "parse_prompt", "parse_options", "MAX_POINTS"]

MAX_POINTS = 64
_NAME = re.compile(r"^[A-Za-z0-9 _\-+(),]{1,64}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class RequestError(MedSam2Error):
    """A malformed request body (HTTP 400 for bad JSON, 422 for bad content)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestError("the body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    return data


def _only(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise RequestError(f"unknown field(s) {unknown}; allowed: {list(allowed)}")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value.strip() != value:
        raise RequestError("name: 1-64 letters, digits, spaces or _-+(), (no paths)")
    return value


def _color(value: Any) -> tuple[int, int, int]:
    if not isinstance(value, str) or not _COLOR.match(value):
        raise RequestError("color: expected #rrggbb")
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def parse_object(data: dict[str, Any]) -> tuple[str | None, tuple[int, int, int] | None]:
    """(name, colour) of a create/patch request; each optional."""
    _only(data, ("name", "color"))
    name = _name(data["name"]) if "name" in data else None
    color = _color(data["color"]) if "color" in data else None
    return name, color


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def _vec3(value: Any, what: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) not in (3, 4):  # NiiVue's mm are vec4 (x, y, z, 1)
        raise RequestError(f"{what}: expected [x, y, z] in millimetres")
    x, y, z = (_number(v, what) for v in value[:3])
    return x, y, z


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f"{what}: expected an integer in {low}..{high}")
    return value


def parse_prompt(data: dict[str, Any]) -> WorldPrompt:
    """``{"box": [[x,y,z],[x,y,z]], "points": [[x,y,z],...], "labels": [1,0,...],
    "space": "ras"|"lps", "slice": N}`` — box and/or points (labels default to 1)."""
    _only(data, ("box", "points", "labels", "space", "slice"))
    space = data.get("space", "ras")
    if space not in SPACES:
        raise RequestError(f"space: expected one of {list(SPACES)}")
    box = None
    if data.get("box") is not None:
        corners = data["box"]
        if not isinstance(corners, list) or len(corners) != 2:
            raise RequestError("box: expected two corners [[x,y,z],[x,y,z]]")
        box = (_vec3(corners[0], "box"), _vec3(corners[1], "box"))
    raw_points = data.get("points") or []
    if not isinstance(raw_points, list) or len(raw_points) > MAX_POINTS:
        raise RequestError(f"points: expected a list of at most {MAX_POINTS} [x,y,z]")
    points = tuple(_vec3(p, "points") for p in raw_points)
    raw_labels = data.get("labels", [1] * len(points))
    if not isinstance(raw_labels, list) or len(raw_labels) != len(points):
        raise RequestError("labels: one label (1 positive, 0 negative) per point")
    labels = tuple(_int(v, "labels", 0, 1) for v in raw_labels)
    if box is None and not points:
        raise RequestError("give a box and/or points")
    slice_ = None if data.get("slice") is None else _int(data["slice"], "slice", 0, 1 << 20)
    return WorldPrompt(box, points, labels, space, slice_)


def parse_options(data: dict[str, Any], allowed: dict[str, tuple[type, tuple[Any, ...]]]) -> dict[str, Any]:
    """Small option bodies: each key -> (type, allowed values or () for any of that type)."""
    _only(data, tuple(allowed))
    out = {}
    for key, value in data.items():
        kind, choices = allowed[key]
        if (
            not isinstance(value, kind)
            or isinstance(value, bool) != (kind is bool)
            or (choices and value not in choices)
        ):
            expected = f"one of {list(choices)}" if choices else kind.__name__
            raise RequestError(f"{key}: expected {expected}")
        out[key] = value
    return out
