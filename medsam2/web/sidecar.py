"""Autosave of an annotation session beside its OUTPUT, and resuming from it.

The sidecar ``.<OUTPUT name>.medsam2-session.npz`` holds the current labels (input index order)
and a JSON state: the input's name and geometry, and every object with its prompts in slice
pixels. It is written atomically after each change that took model time (prompts, propagation,
undo) so that a crash loses nothing; `medsam2 serve` with the same INPUT and OUTPUT offers to
continue from it. A sidecar of another volume (different shape or geometry) is ignored.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.errors import InputError
from medsam2.io.atomic import atomic_output
from medsam2.types import Volume
from medsam2.web.annotator import Annotator
from medsam2.web.prompts import PromptAction

__all__ = ["sidecar_path", "write_sidecar", "read_sidecar", "restore"]

log = logging.getLogger(__name__)
VERSION = 1


def sidecar_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.medsam2-session.npz")


def _geometry(volume: Volume) -> dict[str, Any]:
    return {
        "shape": list(volume.shape),
        "spacing": [round(float(s), 6) for s in volume.spacing],
        "origin": [round(float(o), 4) for o in volume.origin],
        "direction": np.asarray(volume.direction, np.float64).round(6).reshape(-1).tolist(),
    }


def write_sidecar(annotator: Annotator, path: Path) -> None:
    """Atomically write the session state and labels to `path`."""
    state = {
        "version": VERSION,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "input": Path(annotator.volume.source).name,
        "geometry": _geometry(annotator.volume),
        "propagated": annotator.propagated,
        "objects": [
            {**o.to_json(), "actions": [a.to_json() for a in o.actions]} for o in annotator.objects.values()
        ],
    }
    labels = annotator.label_volume()
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=labels, state=np.frombuffer(json.dumps(state).encode(), np.uint8))
    log.debug("autosaved %s", path)


def read_sidecar(path: Path, volume: Volume) -> tuple[dict[str, Any], np.ndarray] | None:
    """(state, labels) from `path` when it exists and belongs to `volume`; None otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            state = json.loads(bytes(data["state"]).decode())
            labels = np.asarray(data["labels"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable autosave ignored (%s)", path, exc)
        return None
    if state.get("version") != VERSION or state.get("geometry") != _geometry(volume):
        log.warning("%s: autosave of another volume or version; ignored", path)
        return None
    if labels.shape != volume.shape or labels.dtype != np.uint8:
        return None
    return state, labels


def _color(text: str) -> tuple[int, int, int]:
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def restore(annotator: Annotator, state: dict[str, Any], labels: np.ndarray) -> None:
    """Recreate the objects and prompts of `state` (prompted slices are decoded again) and show
    `labels` (the last propagation) until the next one."""
    annotator.reset()
    try:
        for obj in state["objects"]:
            info = annotator.add_object(str(obj["name"]), _color(obj["color"]), int(obj["id"]))
            for data in obj["actions"]:
                action = PromptAction.from_json(data)
                annotator._apply(info.obj_id, action)
                info.actions.append(action)
    except (KeyError, TypeError, ValueError) as exc:
        annotator.reset()
        raise InputError(f"the autosave cannot be restored: {exc}") from None
    annotator.set_label_volume(labels)
    annotator.propagated = bool(state.get("propagated"))
