"""Shared pieces of the `medsam2 serve` tests: a tiny model, test volumes, a client."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what the web extra installs
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient  # noqa: E402

from medsam2.model.presets import get_preset  # noqa: E402
from medsam2.model.sam2_model import Sam2Model  # noqa: E402
from medsam2.types import Volume  # noqa: E402
from medsam2.web.annotator import Annotator  # noqa: E402
from medsam2.web.app import ServeState, create_app  # noqa: E402

TOKEN = "test-token-0123456789"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


def tiny_model() -> Sam2Model:
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny")).eval()
    with torch.no_grad():  # random weights, biased to "object present" so masks are not all empty
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return m


def oblique_volume(shape: tuple[int, int, int] = (40, 32, 12)) -> Volume:
    """Anisotropic, rotated and with permuted axes: not stored in RAS (nor LPS) order."""
    rng = np.random.default_rng(0)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])[:, [1, 0, 2]]
    arr = rng.normal(40, 10, shape).astype(np.float32)
    arr[10:30, 8:24, 3:9] += 200
    return Volume(arr, (0.7, 0.9, 2.5), (10.0, -20.0, 5.0), direction, source="/data/secret/oblique.nii.gz")


def make_client(
    model: Sam2Model, volume: Volume, output: Path, output_format: str | None = None, **app_kwargs: Any
) -> tuple[TestClient, ServeState]:
    annotator = Annotator(model, volume, memory="fifo", cache_size=4)
    state = ServeState(annotator, output, output_format)
    app = create_app(state, token=TOKEN, port=PORT, **app_kwargs)
    client = TestClient(app, base_url=BASE, headers={"X-Medsam2-Token": TOKEN}, raise_server_exceptions=False)
    return client, state


def sse_events(text: str) -> list[dict[str, Any]]:
    """The data of each server-sent event in a response body."""
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def patch_plane(patch: dict[str, Any]) -> np.ndarray:
    """A slice patch as an array (n_a, n_b) over the two non-sliced index axes."""
    import base64

    n_a, n_b = patch["shape"]
    return np.frombuffer(base64.b64decode(patch["data"]), np.uint8).reshape(n_b, n_a).T
