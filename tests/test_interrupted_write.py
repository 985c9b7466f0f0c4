"""A `medsam2 segment` killed with SIGKILL while it writes its outputs leaves no truncated file
under the output name: the name holds nothing, or the complete previous file (issue 10).

The process under test is the real CLI in a child process whose SimpleITK writer is slowed down:
it writes the temporary file, cuts it to half (a write in progress), tells the test, then waits,
and the test kills it from outside. The leftover temporary file is recognisably named and the next
run to the same destination removes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medsam2.io import read_image

REPO = Path(__file__).resolve().parent.parent

_SLOW_WRITER = """
import os, sys, time
import SimpleITK as sitk
real = sitk.WriteImage
def slow_write(image, path, *args, **kwargs):
    real(image, path, *args, **kwargs)
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:  # half of the file is on disk: the write is in progress
        fh.write(data[: len(data) // 2])
    with open(os.environ["MEDSAM2_TEST_MARK"], "w") as fh:
        fh.write(str(path))
    time.sleep(120)
sitk.WriteImage = slow_write
from medsam2.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    i, j, k = np.meshgrid(np.arange(40), np.arange(36), np.arange(4), indexing="ij")
    inside = ((i - 20) / 10.0) ** 2 + ((j - 18) / 8.0) ** 2 + ((k - 2) / 2.0) ** 2 <= 1.0
    image = sitk.GetImageFromArray(np.where(inside, 180, 20).astype(np.int16).transpose(2, 1, 0).copy())
    path = tmp_path_factory.mktemp("input") / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _args(volume: Path, out: Path, *extra: str) -> list[str]:
    return ["segment", str(volume), "--box", "11,11,2,29,25,2", "--device", "cpu", "-o", str(out), *extra]


def _kill_while_writing(args: list[str], mark: Path) -> str:
    """Run the CLI with the slow writer; SIGKILL it once it is half-way through a write."""
    env = {**os.environ, "MEDSAM2_TEST_MARK": str(mark)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, *args], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 240
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), f"the child never reached its write (exit {proc.poll()})"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return mark.read_text()


def test_sigkill_during_writes_never_leaves_a_truncated_output(volume: Path, tmp_path: Path) -> None:
    from medsam2.cli.main import main

    out, summary = tmp_path / "mask.nii.gz", tmp_path / "mask.json"
    # 1. killed during its first write: nothing under the output names, a recognisable leftover
    tmp_name = Path(_kill_while_writing(_args(volume, out), tmp_path / "mark1"))
    assert not out.exists() and not summary.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".mask.tmp-")] == [tmp_name]
    assert tmp_name.name.endswith(".nii.gz")  # hidden, ".tmp-<pid>-", the output's own suffix
    # 2. the next run completes and removes the leftover of the killed one
    assert main(_args(volume, out)) == 0
    assert not tmp_name.exists()
    assert read_image(out).shape == (40, 36, 4) and int(read_image(out).array.max()) == 1
    assert json.loads(summary.read_text())["output"] == str(out)
    # 3. killed while overwriting: the previous files stay, byte for byte complete
    before, summary_before = out.read_bytes(), summary.read_bytes()
    _kill_while_writing(_args(volume, out, "--overwrite", "--memory", "fifo"), tmp_path / "mark2")
    assert out.read_bytes() == before and summary.read_bytes() == summary_before
