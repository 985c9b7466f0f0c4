"""The page's vendored files: NiiVue's bundle unchanged (checksum), its licence shipped, nothing
fetched from elsewhere, no inline code (CSP), and `import medsam2` works without the web extra."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from medsam2.web.files import NIIVUE_SHA256, NIIVUE_VERSION, STATIC_DIR, STATIC_FILES, sha256

ROOT = Path(__file__).resolve().parent.parent


def test_niivue_bundle_checksum_and_licence() -> None:
    bundle = STATIC_DIR / "niivue" / "niivue.umd.js"
    assert sha256(bundle) == NIIVUE_SHA256
    licence = (STATIC_DIR / "niivue" / "LICENSE").read_text()
    assert "BSD 2-Clause License" in licence and "Copyright (c) 2021, Niivue" in licence
    assert NIIVUE_SHA256 in licence and NIIVUE_VERSION in licence


def test_page_files_exist_and_load_nothing_from_elsewhere() -> None:
    for public, (relative, _) in STATIC_FILES.items():
        assert (STATIC_DIR / relative).is_file(), public
    for name in ("index.html", "app.js", "api.js", "app.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name  # no CDN
        assert 'fetch("http' not in text and "eval(" not in text
    html = (STATIC_DIR / "index.html").read_text()
    assert (
        "<style" not in html and " style=" not in html and " on" + "click=" not in html
    )  # CSP: no inline code
    assert [m for m in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S) if m.strip()] == []


def test_static_files_are_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["medsam2"]
    assert "web/static/*" in patterns and "web/static/niivue/*" in patterns
    assert "web" in data["project"]["optional-dependencies"]


def test_core_imports_without_the_web_extra() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "import medsam2, medsam2.web, medsam2.web.annotator, medsam2.cli.main\n"
        "medsam2.cli.main.build_parser()\n"
        "try:\n    import medsam2.web.app\nexcept ImportError:\n    print('no-web-ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "no-web-ok"
