"""`medsam2 serve` as a command: the one printed line, a free loopback port, the token, refusals."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from serve_browser_helpers import serve

from medsam2.cli.main import main
from medsam2.cli.serve import default_output
from medsam2.io.convert import array_to_image

pytest.importorskip("uvicorn")


def _small(path: Path) -> None:
    arr = np.random.default_rng(0).normal(100, 10, (24, 20, 6)).astype(np.float32)
    sitk.WriteImage(array_to_image(arr, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3)), str(path))


def _get(url: str, **headers: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_prints_one_line_and_guards_the_api(tmp_path: Path) -> None:
    src = tmp_path / "small.nii.gz"
    _small(src)
    with serve(src, tmp_path / "labels.nii.gz") as url:
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_\-]{40,})", url)
        assert m, url
        base, token = f"http://127.0.0.1:{m.group(1)}", m.group(2)
        assert _get(f"{base}/healthz") == 200
        assert _get(f"{base}/api/volume") == 401
        assert _get(f"{base}/api/volume", **{"X-Medsam2-Token": token}) == 200
        assert _get(f"{base}/api/volume", **{"X-Medsam2-Token": token, "Host": "evil.example"}) == 400


def test_existing_output_needs_overwrite(tmp_path: Path, capsys) -> None:
    src, out = tmp_path / "small.nii.gz", tmp_path / "labels.nii.gz"
    _small(src)
    out.write_bytes(b"earlier work")
    assert main(["serve", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and out.read_bytes() == b"earlier work"


def test_default_output_is_beside_the_input() -> None:
    assert default_output("/data/ct.nii.gz") == Path("/data/ct_labels.nii.gz")
    assert default_output("/data/series/") == Path("/data/series_labels.nii.gz")
