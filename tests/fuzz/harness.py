"""Fuzzing harness: feed damaged inputs (`corpus.generate`) to ``medsam2 segment`` (volumes, DICOM
folders) and ``medsam2 segment-images`` (PNG), each in a worker process with a timeout per input.

Every input must end in one of two ways:

* **refused**: exit code 2, exactly one line on stderr, ``medsam2 CMD: error: <the input> ...``,
  and nothing written (no output, no temporary file);
* 2D images (PNG, TIFF, JPEG) go through both readers: ``segment-images`` (Pillow) decides the
  outcome; ``segment`` (SimpleITK) must read them as 2D or refuse them cleanly (``reader``);
* **accepted**: exit code 0 and complete, readable outputs of the image's shape.

Anything else is a finding: a traceback, a hang (no answer within the timeout), a crash of the
worker (a C library killing the process), a partial output, an unclear error (not one line, or not
naming the file), another exit code. Accepted inputs are compared with the seed they came from
(identical image / same image with other voxel values / other geometry / other shape) so that the
report can say why accepting each is right.

Usage: ``python tests/fuzz/harness.py --n 240 --seed 0 [--json report.json]``; exit code 1 when
there is any finding. A worker answers requests on stdin when started with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from corpus import IMAGE_FORMATS, Case, generate  # noqa: E402

FINDINGS = ("traceback", "hang", "crash", "partial", "unclear", "other-exit")


# --- worker (child process) ----------------------------------------------------------------------


def _call(main: Any, argv: list[str]) -> dict[str, Any]:
    """Run the CLI's ``main(argv)`` with file descriptors 1 and 2 captured."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        rc: int | None = None
        trace = None
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - an escaped exception is exactly what we look for
            trace = traceback.format_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        err.seek(0)
        return {"rc": rc, "stderr": err.read().decode("utf-8", "replace")[-4000:], "traceback": trace}


def _serve() -> None:
    import torch

    from medsam2.cli.main import main

    torch.set_num_threads(1)
    for line in sys.stdin:
        result = _call(main, json.loads(line)["argv"])
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class Worker:
    """A child process that runs CLI commands; restarted after a hang or a crash."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env
            )
        return self.proc

    def ask(self, argv: list[str], timeout: float) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps({"argv": argv}) + "\n").encode())
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            return {"finding": "hang"}
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.proc = None
            return {"finding": "crash", "detail": f"worker died with exit code {code}"}
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


# --- judging --------------------------------------------------------------------------------------


def _argvs(case: Case, out: Path) -> list[tuple[str, list[str], Path, Path]]:
    """(command, argv, output target, output folder) for each path an input is fed to: volumes and
    DICOM folders to ``segment``; 2D images to ``segment-images`` (Pillow) and to ``segment``
    (SimpleITK, whose reader accepts a 2D image and the command then says it needs 3D)."""
    runs = []
    if case.fmt in IMAGE_FORMATS:
        sub = out / "images"
        cmd = ["segment-images", "--prompt-image", str(case.path), "--point", "0,0", "--device", "cpu"]
        runs.append(
            ("segment-images", [*cmd, "--no-overlays", "-o", str(sub / "result")], sub / "result", sub)
        )
    sub = out / "volume"
    cmd = ["segment", str(case.path), "--point", "0,0,0", "--device", "cpu", "-o", str(sub / "mask.nii.gz")]
    runs.append(("segment", cmd, sub / "mask.nii.gz", sub))
    return runs


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _compare(case: Case) -> str:
    """How an accepted input differs from its seed (the reason accepting it is right)."""
    import numpy as np

    from medsam2.errors import MedSam2Error
    from medsam2.io import read_image

    try:
        got, seed = read_image(case.path), read_image(case.seed_path)
    except MedSam2Error as exc:
        return (
            f"Pillow path only; read_image refuses it ({str(exc).replace(str(case.path), '<input>')[:120]})"
        )
    if got.shape != seed.shape:
        return "other shape"
    geometry = np.allclose(got.spacing, seed.spacing) and np.allclose(got.origin, seed.origin)
    if not geometry or not np.allclose(got.direction, seed.direction):
        return "other geometry"
    if got.array.dtype != seed.array.dtype or not np.array_equal(got.array, seed.array):
        return "other voxel values"
    return "identical"


def _check_outputs(case: Case, target: Path) -> str | None:
    """None when the outputs of an accepted input are complete, else what is wrong."""
    from medsam2.io import read_image

    if case.fmt in IMAGE_FORMATS:
        masks = [p for p in _files(target) if p.suffix == ".png"]
        return None if masks else "no mask image written"
    if not target.is_file() or not target.with_name("mask.json").is_file():
        return "mask or summary missing"
    try:
        json.loads(target.with_name("mask.json").read_text())
        if read_image(target).shape != read_image(case.path).shape:
            return "mask shape differs from the input's"
    except Exception as exc:  # noqa: BLE001 - an unreadable output is the finding
        return f"output unreadable: {exc}"
    return None


def judge(case: Case, command: str, answer: dict[str, Any], out: Path, target: Path) -> dict[str, Any]:
    """The outcome of one input: refused / accepted (+ how it differs) or a finding."""
    record: dict[str, Any] = {"name": case.name, "fmt": case.fmt, "kind": case.kind, "detail": case.detail}
    leftovers = [p for p in _files(out) if ".tmp-" in p.name]
    if "finding" in answer:
        return {**record, "outcome": answer["finding"], "why": answer.get("detail", "")}
    if answer["traceback"]:
        return {**record, "outcome": "traceback", "why": answer["traceback"][-600:]}
    notice = "medsam2: no --checkpoint given"  # the embedded-model notice, printed before any work
    lines = [ln for ln in answer["stderr"].strip().splitlines() if not ln.startswith(notice)]
    if answer["rc"] == 2:
        written = _files(out)
        if written:
            return {**record, "outcome": "partial", "why": f"refused but wrote {[p.name for p in written]}"}
        prefix = f"medsam2 {command}: error: "
        if len(lines) != 1 or not lines[0].startswith(prefix) or str(case.path) not in lines[0]:
            return {**record, "outcome": "unclear", "why": answer["stderr"][-600:]}
        why = lines[0][len(prefix) :].replace(str(case.path), "<input>")
        if case.fmt in IMAGE_FORMATS and "segment needs a 3D volume" in why:
            return {**record, "outcome": "read-2d", "why": "SimpleITK read it as a 2D image"}
        return {**record, "outcome": "refused", "why": why}
    if answer["rc"] == 0:
        problem = "temporary file left" if leftovers else _check_outputs(case, target)
        if problem:
            return {**record, "outcome": "partial", "why": problem}
        return {**record, "outcome": "accepted", "why": _compare(case)}
    return {**record, "outcome": "other-exit", "why": f"exit {answer['rc']}: {answer['stderr'][-400:]}"}


def _combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One record per input: a finding on any path wins; for 2D images, the ``segment-images``
    outcome, with the SimpleITK reader's outcome kept under ``reader``."""
    for result in results:
        if result["outcome"] in FINDINGS:
            return result
    record = dict(results[0])
    if len(results) > 1:
        record["reader"] = f"{results[1]['outcome']}: {results[1]['why']}"
    return record


def run_fuzz(
    n: int, seed: int, folder: Path, timeout: float = 60.0, log: bool = False
) -> list[dict[str, Any]]:
    """Generate ``n`` inputs in ``folder`` and return one judged record per input."""
    cases = generate(n, seed, folder / "inputs")
    worker, records = Worker(), []
    try:
        for case in cases:
            t0 = time.perf_counter()
            results = []
            for command, argv, target, sub in _argvs(case, folder / "outputs" / case.name):
                sub.mkdir(parents=True)
                results.append(judge(case, command, worker.ask(argv, timeout), sub, target))
            record = _combine(results)
            record["seconds"] = round(time.perf_counter() - t0, 2)
            records.append(record)
            if log:
                print(f"{case.name:<28} {record['outcome']:<10} {record['why'][:110]}", flush=True)
    finally:
        worker.close()
    return records


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = Counter(r["outcome"] for r in records)
    return {
        "tried": len(records),
        "outcomes": dict(outcomes),
        "by_format": {
            f: dict(Counter(r["outcome"] for r in records if r["fmt"] == f))
            for f in sorted({r["fmt"] for r in records})
        },
        "accepted_because": dict(
            Counter(f"{r['fmt']} {r['kind']}: {r['why']}" for r in records if r["outcome"] == "accepted")
        ),
        "findings": [r for r in records if r["outcome"] in FINDINGS],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fuzz medsam2's readers through the CLI")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=240, help="number of damaged inputs (default 240)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per input")
    parser.add_argument("--json", type=Path, help="write every record and the summary here")
    args = parser.parse_args(argv)
    if args.worker:
        _serve()
        return 0
    with tempfile.TemporaryDirectory(prefix="medsam2-fuzz-") as tmp:
        t0 = time.perf_counter()
        records = run_fuzz(args.n, args.seed, Path(tmp), args.timeout, log=True)
        report = summary(records)
        report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: v for k, v in report.items() if k != "findings"}, indent=2))
    for finding in report["findings"]:
        print(
            f"FINDING {finding['name']} {finding['outcome']}: {finding['detail']} -> {finding['why'][:300]}"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": report, "records": records}, indent=2) + "\n")
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
