"""The fast subset of the fuzzing harness (`harness.py`; the full run is ``--n 240``): 48 damaged
inputs, every format x every kind of damage, through the real CLI in a worker process with a
timeout per input. Each must be refused cleanly or accepted with complete outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness import FINDINGS, run_fuzz, summary


def test_fuzzed_inputs_are_refused_cleanly_or_read_completely(tmp_path: Path) -> None:
    records = run_fuzz(48, seed=7, folder=tmp_path, timeout=90.0)
    report = summary(records)
    assert report["tried"] == 48
    assert not report["findings"], "\n".join(
        f"{f['name']} {f['outcome']}: {f['detail']} -> {f['why']}" for f in report["findings"]
    )
    assert set(report["outcomes"]) <= {"refused", "accepted"} and not set(report["outcomes"]) & set(FINDINGS)
    kinds = Counter((r["fmt"], r["kind"]) for r in records)
    assert len({fmt for fmt, _ in kinds}) >= 7 and len({kind for _, kind in kinds}) == 4
    # truncation never yields an accepted image: every format checks its data length or stream end
    assert all(r["outcome"] == "refused" for r in records if r["kind"] == "truncate"), records
    # compressed streams carry checksums: a flipped data byte is always caught
    flipped = [r for r in records if r["kind"] == "flip-data" and r["fmt"] in ("nii.gz", "nrrd-gz", "mha-z")]
    assert flipped and all(r["outcome"] == "refused" for r in flipped), flipped
