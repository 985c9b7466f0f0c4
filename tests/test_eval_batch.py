"""segment-batch: manifest, skip/redo/retry, a bad case never stops the batch, SIGKILL then rerun
equals an uninterrupted run, and torchrun shards (2 gloo processes) equal one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from eval_helpers import blob_case, blob_dataset, write_dataset

from medsam2 import save_model
from medsam2.cli.main import main
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny")).eval()
    with torch.no_grad():  # random weights biased to "object present": non-empty masks
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_model(m, path)
    return path


def _entries(out: Path) -> list[dict]:
    entries = json.loads((out / "manifest.json").read_text())["entries"]
    return [{k: v for k, v in e.items() if k != "seconds"} for e in entries]


def _masks(out: Path) -> dict[str, np.ndarray]:
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((out / "masks").iterdir())}


def _no_partial_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_prompts_file_skip_redo_retry_and_a_bad_case(tmp_path: Path, ckpt: Path) -> None:
    ds = blob_dataset(tmp_path / "ds", n=3)
    inputs = sorted(str(p) for p in (ds / "imagesTr").iterdir())
    box = {"objects": [{"id": 1, "prompts": [{"box": [[3, 3, 6], [12, 10, 6]]}]}]}
    bad = {"objects": [{"id": 1, "prompts": [{"box": [[3, 3, 60], [12, 10, 60]]}]}]}  # outside the volume
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"cases": {"c0_0000": box, "c1_0000": bad, "c2_0000": box}}))
    args = [
        "segment-batch",
        *inputs,
        "--prompts",
        str(prompts),
        "--checkpoint",
        str(ckpt),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 1  # one case failed, the others were written
    entries = {e["case"]: e for e in _entries(tmp_path / "o")}
    assert [entries[c]["status"] for c in ("c0_0000", "c1_0000", "c2_0000")] == ["ok", "failed", "ok"]
    assert "outside" in entries["c1_0000"]["error"] and entries["c1_0000"]["output"] is None
    assert sorted(_masks(tmp_path / "o")) == ["c0_0000.nii.gz", "c2_0000.nii.gz"]
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o" / "manifest").iterdir()}
    prompts.write_text(
        json.dumps({"cases": {"c0_0000": box, "c1_0000": box, "c2_0000": {**box, "world": False}}})
    )
    assert main(args) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o" / "manifest").iterdir()}
    assert after["c0_0000.json"] == stamp["c0_0000.json"]  # unchanged: skipped
    assert after["c1_0000.json"] != stamp["c1_0000.json"]  # failed: retried
    assert after["c2_0000.json"] != stamp["c2_0000.json"]  # prompts changed: redone
    assert all(e["status"] == "ok" for e in _entries(tmp_path / "o"))
    assert all("tracker" not in e["options"] for e in _entries(tmp_path / "o"))  # the memory: as before
    assert main([*args, "--tracker", "box-chain"]) == 0
    chained = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o" / "manifest").iterdir()}
    assert all(chained[name] != after[name] for name in after)  # another tracker: every case redone
    assert all(e["options"]["tracker"] == "box-chain" for e in _entries(tmp_path / "o"))
    csv_prompts = tmp_path / "p.csv"
    csv_prompts.write_text("case,object,name,kind,coords,label\n" + "".join(
        f'c{i}_0000,1,blob,box,"3,3,6,12,10,6",\n' for i in range(3)))  # fmt: skip
    assert (
        main(
            [
                *args[:-4],
                "--prompts",
                str(csv_prompts),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert _masks(tmp_path / "c").keys() == _masks(tmp_path / "o").keys()


def _finished(out: Path) -> int:
    """Cases whose manifest entry was written: a killed write leaves a hidden ``.k1.tmp-...json``,
    which pathlib's ``*.json`` would count too, so temporary names are left out."""
    return sum(not p.name.startswith(".") for p in (out / "manifest").glob("*.json"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "medsam2", *args]


def test_sigkill_mid_batch_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, ckpt: Path) -> None:
    ds = write_dataset(tmp_path / "ds", {f"k{i}": blob_case(i, (32, 30, 16)) for i in range(5)})
    common = ["segment-batch", "--data", str(ds), "--checkpoint", str(ckpt), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(
        _cli(*common, "--out", str(tmp_path / "whole")), env=env, capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*common, "--out", str(out)), env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and _finished(out) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _finished(out)
    assert 2 <= done < 5, f"the kill came too late to test anything ({done} cases done)"
    assert not (out / "manifest.json").exists()
    again = subprocess.run(_cli(*common, "--out", str(out)), env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{done} already done" in again.stdout
    assert _entries(out) == _entries(tmp_path / "whole")
    a, b = _masks(out), _masks(tmp_path / "whole")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert _no_partial_files(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2"]
    cmd += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "medsam2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_two_torchrun_processes_equal_one(tmp_path: Path, ckpt: Path) -> None:
    ds = blob_dataset(tmp_path / "ds", n=3)
    common = ["segment-batch", "--data", str(ds), "--checkpoint", str(ckpt), "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    two = _torchrun(*common, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert _entries(tmp_path / "two") == _entries(tmp_path / "one")
    a, b = _masks(tmp_path / "one"), _masks(tmp_path / "two")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ev = [
        "evaluate",
        "--data",
        str(ds),
        "--no-model",
        "--classes",
        "1",
        "--protocol",
        "iterative",
        "--clicks",
        "1",
    ]
    assert main([*ev, "--out", str(tmp_path / "e1")]) == 0
    run = _torchrun(*ev, "--out", str(tmp_path / "e2"))
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("per_case.csv", "per_slice.csv", "interactive.csv"):
        rows = [(tmp_path / d / name).read_text().splitlines() for d in ("e1", "e2")]
        if name == "per_case.csv":  # the seconds column (last) is a measurement
            rows = [[r.rsplit(",", 1)[0] for r in rs] for rs in rows]
        assert rows[0] == rows[1], name
    assert _no_partial_files(tmp_path / "e2")
