"""Drive `medsam2 serve` in a real headless Chromium (Debian's package, through Playwright).

Used by tests/test_serve_browser.py and benchmarks/serve_latency.py. Never downloads a browser:
`executable_path` points at the system chromium; WebGL2 comes from SwiftShader.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--headless",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextmanager
def serve(volume: Path, output: Path, *extra: str, timeout: float = 120.0) -> Iterator[str]:
    """Run `medsam2 serve volume -o output` and yield the URL it prints; stop it afterwards."""
    cmd = [
        sys.executable,
        "-m",
        "medsam2.cli.main",
        "serve",
        str(volume),
        "-o",
        str(output),
        "--device",
        "cpu",
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("medsam2 serve printed no URL") from None
        prefix = "medsam2 serve: open "
        if not line.startswith(prefix):
            proc.kill()
            raise AssertionError(
                f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
            )
        yield line[len(prefix) :].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser_page(width: int = 1200, height: int = 760) -> Iterator[Any]:
    """A Playwright page in headless Chromium; collects console errors in `page.medsam2_errors`."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise FileNotFoundError("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.medsam2_errors = errors
            yield page
        finally:
            browser.close()


def webgl2_version(page: Any) -> str | None:
    return page.evaluate(
        "() => { const g = document.createElement('canvas').getContext('webgl2');"
        " return g ? g.getParameter(g.VERSION) : null; }"
    )


def open_app(page: Any, url: str, timeout_s: float = 60.0) -> None:
    page.goto(url)
    page.wait_for_function("() => window.medsam2 && window.medsam2.ready", timeout=timeout_s * 1000)


def canvas_point(page: Any, mm: list[float]) -> tuple[float, float]:
    """Page (CSS pixel) position of world RAS `mm` on the current view."""
    x, y = page.evaluate(
        "(mm) => { const nv = window.medsam2.nv; const p = nv.frac2canvasPos(nv.mm2frac(mm));"
        " const dpr = nv.uiData.dpr || 1; return [p[0] / dpr, p[1] / dpr]; }",
        mm,
    )
    box = page.locator("#gl").bounding_box()
    return box["x"] + x, box["y"] + y


def crosshair_mm(page: Any) -> list[float]:
    return page.evaluate(
        "() => { const nv = window.medsam2.nv; return Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3); }"
    )


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def snapshot(page: Any, key: str) -> str | None:
    """window.medsam2.state[key] as the page serialises it (to wait for a change)."""
    return page.evaluate("(k) => JSON.stringify(window.medsam2.state[k])", key)


def wait_state(page: Any, key: str, timeout_s: float = 120.0, previous: str | None = None) -> Any:
    """Wait until window.medsam2.state[key] is set and its JSON differs from `previous` (a
    `snapshot` taken before the action); return it."""
    page.wait_for_function(
        "([k, prev]) => { const v = window.medsam2.state[k]; return v && JSON.stringify(v) !== prev; }",
        arg=[key, previous],
        timeout=timeout_s * 1000,
    )
    return page.evaluate("(k) => window.medsam2.state[k]", key)


def red_pixels(png: bytes, box: tuple[float, float, float, float]) -> int:
    """Pixels of the first object's colour (red-dominant overlay) inside `box` (x0, y0, x1, y1)."""
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = rgb[y0:y1, x0:x1]
    red = (region[..., 0] - region[..., 1] > 40) & (region[..., 0] - region[..., 2] > 20)
    return int(red.sum())


def elapsed(start: float) -> float:
    return time.perf_counter() - start
