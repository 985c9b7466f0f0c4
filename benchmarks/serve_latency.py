"""`medsam2 serve` as a user meets it: latency of the first mask and of propagation, in a browser.

Usage: .venv/bin/python benchmarks/serve_latency.py [VOLUME] [--box I0,J0,I1,J1] [--screenshot PNG]

Starts the real command (embedded model, CPU) on VOLUME (default: nilearn's MNI152 T1, 197x233x189
at 1 mm), opens the page in headless Chromium (Debian's package; WebGL2 through SwiftShader, so
drawing is slower than on a GPU), drags a box on the axial slice under the crosshair, then clicks
Propagate. Reports the time from mouse release to the mask drawn (split into the HTTP round trip,
the model's share and the redraw), more prompts on other slices (warm), and propagation per slice
as the page saw it (streamed slices painted as they arrive) and as the server timed it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from serve_browser_helpers import (  # noqa: E402
    browser_page,
    canvas_point,
    crosshair_mm,
    drag,
    open_app,
    serve,
    snapshot,
    wait_state,
    webgl2_version,
)

from medsam2.io import read_image  # noqa: E402
from medsam2.web.coords import WorldMap  # noqa: E402


def _mni() -> Path:
    import nilearn

    return (
        Path(nilearn.__file__).parent
        / "datasets"
        / "data"
        / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )


def _box_prompt(page: Any, wmap: WorldMap, box: tuple[int, int, int, int], k: int) -> dict[str, Any]:
    i0, j0, i1, j1 = box
    start, end = (
        canvas_point(page, wmap.index_to_world((i, j, k), "ras").tolist()) for i, j in ((i0, j0), (i1, j1))
    )
    previous = snapshot(page, "lastResult")
    drag(page, start, end)
    return wait_state(page, "lastResult", 120, previous=previous)


def run(volume_path: Path, box: tuple[int, int, int, int], screenshot: Path | None) -> dict[str, Any]:
    wmap = WorldMap(read_image(volume_path))
    with tempfile.TemporaryDirectory() as tmp, serve(volume_path, Path(tmp) / "labels.nii.gz") as url:
        with browser_page(1280, 800) as page:
            gl = webgl2_version(page)
            open_app(page, url, timeout_s=180)
            k = wmap.world_to_voxel(crosshair_mm(page))[2]
            _box_prompt(page, wmap, box, k)
            for step in (2, 4, -2):  # the same box a few slices away, then back: warm prompts
                page.keyboard.press("ArrowUp" if step > 0 else "ArrowDown")
                _box_prompt(page, wmap, box, wmap.world_to_voxel(crosshair_mm(page))[2])
            page.click("#propagate")
            prop = wait_state(page, "lastPropagation", 900)
            lat = page.evaluate("() => window.medsam2.state.latencies")
            if screenshot is not None:
                page.click("button[data-view='3']")
                page.wait_for_timeout(800)
                page.screenshot(path=str(screenshot))
    first = lat[0]
    return {
        "volume": volume_path.name,
        "webgl": gl,
        "first_mask_ms": round(first["ms"], 1),
        "first_mask_split_ms": {k: round(first[k], 1) for k in ("request_ms", "server_ms", "draw_ms")},
        "later_prompts_ms_median": round(statistics.median(x["ms"] for x in lat[1:]), 1)
        if len(lat) > 1
        else None,
        "propagation_slices": prop["slices"],
        "propagation_ms_per_slice_browser": round(prop["browser_ms_per_slice"], 1),
        "propagation_ms_per_slice_server": prop["ms_per_slice"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("volume", nargs="?", type=Path, default=None)
    parser.add_argument("--box", default="60,70,137,165", help="I0,J0,I1,J1 voxel box on the crosshair slice")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    box = tuple(int(v) for v in args.box.split(","))
    assert len(box) == 4
    print(json.dumps(run(args.volume or _mni(), box, args.screenshot), indent=2))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
