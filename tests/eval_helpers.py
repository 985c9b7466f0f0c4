"""Small hand-made nnU-Net datasets and stub segmenters with known answers (evaluation tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medsam2.engine.frames import FrameSource
from medsam2.evaluation.prompting import SimPrompt

SPACING = (0.8, 0.9, 2.0)


def blob_case(seed: int, shape: tuple[int, int, int] = (20, 18, 14)) -> tuple[np.ndarray, np.ndarray]:
    """(image, label): class 1 a box-ish blob over several slices, class 2 a one-slice plate."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    i0, j0 = rng.integers(2, 6, size=2)
    label[i0 : i0 + 8, j0 : j0 + 6, 3:10] = 1
    label[i0 + 8 : i0 + 10, j0 : j0 + 6, 5:7] = 1
    label[12:17, 10:15, 8] = 2
    image = (label * 80.0 + rng.normal(0, 5, shape)).astype(np.float32)
    return image, label


def _write(arr: np.ndarray, path: Path, spacing: Sequence[float]) -> None:
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.T))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin((10.0, -5.0, 3.0)[: arr.ndim])
    sitk.WriteImage(img, str(path))


def write_dataset(
    root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], spacing: Sequence[float] = SPACING
) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for name, (image, label) in cases.items():
        _write(image, root / "imagesTr" / f"{name}_0000.nii.gz", spacing)
        _write(label, root / "labelsTr" / f"{name}.nii.gz", spacing)
    meta = {
        "channel_names": {"0": "MRI"},
        "labels": {"background": 0, "blob": 1, "plate": 2},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def blob_dataset(root: Path, n: int = 2) -> Path:
    return write_dataset(root, {f"c{i}": blob_case(i) for i in range(n)})


class _Session:
    def __init__(self, stub: StubSegmenter, truth: Sequence[np.ndarray]) -> None:
        self.stub = stub
        self.truth = [np.asarray(t, bool) for t in truth]
        self.prompts: list[SimPrompt] = []

    def add(self, prompt: SimPrompt) -> None:
        self.prompts.append(prompt)

    def run(self, direction: str) -> list[np.ndarray]:
        self.stub.runs += 1
        return self.stub.predict(self.truth, self.prompts)


@dataclass
class StubSegmenter:
    """``oracle``: the truth; ``shift``: the truth moved ``shift`` frames along T; ``prompted``:
    the truth on frames holding a box/positive click only; ``empty``: nothing."""

    kind: str = "oracle"
    shift: int = 0
    memory: str = ""
    memory_size: int | None = None
    runs: int = 0
    opened: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind}{self.shift or ''}"

    def open(self, frames: FrameSource, truth: Sequence[np.ndarray]) -> _Session:
        self.opened.append(len(frames))
        return _Session(self, truth)

    def predict(self, truth: list[np.ndarray], prompts: list[SimPrompt]) -> list[np.ndarray]:
        t = np.stack(truth).astype(np.float32)
        if self.kind == "shift":
            t = np.roll(t, self.shift, axis=0)
        elif self.kind == "prompted":
            keep = {p.frame for p in prompts if p.box is not None or 1 in p.labels}
            t[[f for f in range(len(t)) if f not in keep]] = 0.0
        elif self.kind == "empty":
            t[:] = 0.0
        return list(t)
