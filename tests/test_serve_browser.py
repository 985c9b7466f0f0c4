"""`medsam2 serve` end to end in a real headless Chromium (WebGL2 through SwiftShader).

The real command serves a small anisotropic volume stored in LPS order (not RAS) with the
embedded model; the test drags a box on the canvas, checks the millimetres and slice the server
received, that the overlay is drawn over the object, propagates, saves and reads the file.
In CI (CI=true) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
from serve_browser_helpers import (
    browser_page,
    canvas_point,
    chromium_path,
    crosshair_mm,
    drag,
    open_app,
    red_pixels,
    serve,
    snapshot,
    wait_state,
    webgl2_version,
)

from medsam2.io import read_image
from medsam2.io.convert import array_to_image
from medsam2.web.coords import WorldMap

CENTRE, RADII = (32, 30, 10), (12, 10, 5)


def _need_browser() -> None:
    missing = [
        n
        for n, ok in (("chromium", chromium_path()), ("playwright", importlib.util.find_spec("playwright")))
        if not ok
    ]
    missing += [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        message = (
            f"browser tests need {', '.join(missing)} (apt-get install chromium; pip install -e '.[dev,web]')"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _volume(path: Path) -> None:
    """64x64x20 MR-like volume, 1.0 x 1.2 x 3.0 mm, identity ITK direction (LPS storage)."""
    rng = np.random.default_rng(3)
    i, j, k = np.meshgrid(*(np.arange(n) for n in (64, 64, 20)), indexing="ij")
    inside = sum(((a - c) / r) ** 2 for a, c, r in zip((i, j, k), CENTRE, RADII, strict=True)) <= 1
    arr = rng.normal(120, 15, (64, 64, 20)).astype(np.float32)
    arr[inside] += 500
    sitk.WriteImage(array_to_image(arr, (1.0, 1.2, 3.0), (-30.0, 12.0, -25.0), np.eye(3)), str(path))


def _state(page: Any, expression: str) -> Any:
    return page.evaluate(f"() => window.medsam2.state.{expression}")


def _shift_click(page: Any, key: str, point: tuple[float, float]) -> None:
    page.keyboard.down(key)
    page.mouse.click(*point)
    page.keyboard.up(key)


def _box(page: Any, wmap: WorldMap) -> int:
    """Drag a box around the object on the slice shown; check mm, slice and overlay. -> the slice."""
    k = wmap.world_to_voxel(crosshair_mm(page))[2]
    corners = [(CENTRE[0] - 13, CENTRE[1] - 11, k), (CENTRE[0] + 13, CENTRE[1] + 11, k)]
    start, end = (canvas_point(page, wmap.index_to_world(c, "ras").tolist()) for c in corners)
    before = page.locator("#gl").screenshot()
    drag(page, start, end)
    result = wait_state(page, "lastResult", 60)
    # the server got the millimetres the viewer reports, on the slice being shown, where the drag was
    got = np.array(result["voxels"])
    expected = np.array([wmap.world_to_index(mm, "ras") for mm in _state(page, "lastPrompt.box")])
    assert np.allclose(got, expected, atol=1e-3) and result["slice"] == k
    assert np.allclose(got[:, :2], np.array(corners, float)[:, :2], atol=1.5)
    # the overlay is drawn over the object, in the object's colour
    box = page.locator("#gl").bounding_box()
    local = (min(start[0], end[0]) - box["x"], min(start[1], end[1]) - box["y"],
             max(start[0], end[0]) - box["x"], max(start[1], end[1]) - box["y"])  # fmt: skip
    after = page.locator("#gl").screenshot()
    assert result["pixels"] > 50 and red_pixels(before, local) == 0
    assert red_pixels(after, local) > 0.2 * result["pixels"]
    return k


def _click_and_undo(page: Any, wmap: WorldMap, k: int) -> None:
    """Shift+click: a positive point on the same slice; Ctrl+Z takes it back."""
    previous = snapshot(page, "lastResult")
    _shift_click(
        page, "Shift", canvas_point(page, wmap.index_to_world((CENTRE[0], CENTRE[1], k), "ras").tolist())
    )
    clicked = wait_state(page, "lastResult", 60, previous=previous)
    assert _state(page, "lastPrompt.labels") == [1] and clicked["slice"] == k
    assert np.allclose(clicked["voxels"][0][:2], CENTRE[:2], atol=1.5)
    page.wait_for_function("() => window.medsam2.state.objects[0].prompts === 2")
    page.keyboard.press("Control+z")
    page.wait_for_function("() => window.medsam2.state.objects[0].prompts === 1", timeout=60_000)


def _correct_after_propagating(page: Any, wmap: WorldMap, k: int) -> None:
    """Alt+click (negative) on another slice of a propagated volume propagates again by itself."""
    page.keyboard.press("ArrowUp")
    k2 = wmap.world_to_voxel(crosshair_mm(page))[2]
    assert k2 == k + 1
    previous, before = snapshot(page, "lastResult"), snapshot(page, "lastPropagation")
    _shift_click(
        page, "Alt", canvas_point(page, wmap.index_to_world((CENTRE[0] + 9, CENTRE[1], k2), "ras").tolist())
    )
    corrected = wait_state(page, "lastResult", 60, previous=previous)
    assert corrected["slice"] == k2 and _state(page, "lastPrompt.labels") == [0]
    again = wait_state(page, "lastPropagation", 180, previous=before)
    assert again["type"] == "done" and _state(page, "propagations") == 2


def _check_saved(out: Path, volume: Any) -> None:
    labels = read_image(out)
    assert labels.shape == volume.shape and np.allclose(labels.origin, volume.origin, atol=1e-4)
    assert np.allclose(labels.spacing, volume.spacing) and np.allclose(labels.direction, volume.direction)
    assert len(np.flatnonzero((labels.array == 1).any(axis=(0, 1)))) >= 3  # propagated to other slices


def test_box_propagate_save_in_the_browser(tmp_path: Path) -> None:
    _need_browser()
    src, out = tmp_path / "blob.nii.gz", tmp_path / "blob_labels.nii.gz"
    _volume(src)
    volume = read_image(src)
    wmap = WorldMap(volume)
    with serve(src, out) as url, browser_page() as page:
        assert (webgl2_version(page) or "").startswith("WebGL 2.0")
        open_app(page, url)
        assert "token=" not in page.url  # the token went into a cookie
        # the default model (nano-chain) chains boxes through volumes, and the page says so
        assert "propagates by chaining boxes" in page.inner_text("#status")
        k = _box(page, wmap)
        _click_and_undo(page, wmap, k)
        page.click("#propagate")
        prop = wait_state(page, "lastPropagation", 180)
        assert prop["type"] == "done" and prop["slices"] == 20 and not prop["cancelled"]
        _correct_after_propagating(page, wmap, k)
        page.keyboard.press("Control+s")
        assert wait_state(page, "saved", 60)["saved"] == out.name
        _check_saved(out, volume)
        assert not [e for e in page.medsam2_errors if "Content Security Policy" in e or "Refused" in e]
        assert not _state(page, "errors"), page.medsam2_errors
        timing = {
            "first_mask": _state(page, "latencies[0]"),
            "propagation_ms_per_slice": prop["browser_ms_per_slice"],
        }
        print("browser timing:", json.dumps(timing))
