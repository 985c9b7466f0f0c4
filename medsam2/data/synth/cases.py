"""`SyntheticCases`: an endless, deterministic training set generated on the fly (a ``CaseSource``).

Use it as a dataset in ``medsam2 train --data`` (alone or in a union with real datasets)::

    --data "synth:seed=0;cases=100000;size=128;depth=10"
    --data "synth:seed=0,data/Dataset902_PhantomsCT"

Case ``i`` is generated from ``(seed, i)`` only: a source drawn by weight (:mod:`.sources`), a slab
cut at a random pose (:mod:`.slab`), a target (:mod:`.targets`), intensities painted or real, then
corrupted (:mod:`.appearance`), and, with ``min_contrast`` > 0, drawn again while the target's
edge does not show (:func:`.targets.boundary_contrast`); with ``invert`` > 0, sometimes inverted.
Two object classes: 1 = the target, 2 = another structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.data.datasets import CaseFrames, DatasetSpec, case_frames
from medsam2.data.synth import sources
from medsam2.data.synth.appearance import corrupt, paint, to_unit
from medsam2.data.synth.generated import GeneratedCases, parse_items
from medsam2.data.synth.slab import Source, sample_slab
from medsam2.data.synth.targets import OTHER, TARGET, boundary_contrast, choose_targets
from medsam2.errors import InputError

__all__ = ["SynthSpec", "SyntheticCases", "is_synthetic", "parse_synth", "generate_case"]

PREFIX = "synth"
DEFAULT_WEIGHTS = {
    "phantom": 0.1,  # painted phantom tissue maps
    "ct": 0.12,  # rendered CT phantoms (their own appearance)
    "mr": 0.08,  # rendered T1/T2 phantoms
    "brain": 0.15,  # painted MNI152 tissue maps + shells
    "blobs": 0.15,  # painted random shapes
    "real3d": 0.15,  # real MR volumes, supervoxels
    "real2d": 0.25,  # real pictures as pseudo-volumes, superpixels
    "shapes": 0.0,  # painted primitives of every size (off unless asked: older configs keep their cases)
}


FLOAT_KEYS = ("min_contrast", "invert", "part", "whole")


@dataclass(frozen=True)
class SynthSpec:
    """What ``synth:key=value;...`` asks for; ``weights`` are the source kinds' relative odds."""

    seed: int = 0
    cases: int = 100_000
    size: int = 128
    depth: int = 10
    min_contrast: float = 0.0  # redraw targets whose edge is fainter (targets.boundary_contrast)
    invert: float = 0.0  # probability of inverting the finished image (bright <-> dark)
    part: float = 0.0  # probability of asking for a part its box does not say (targets.part_labels)
    whole: float = 0.0  # probability of asking for a compound object filling its box (targets.whole_labels)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


def is_synthetic(root: str | Path) -> bool:
    return str(root).split(":", 1)[0] == PREFIX


def parse_synth(text: str) -> SynthSpec:
    """``synth`` or ``synth:seed=0;cases=1000;size=128;depth=10;brain=0.3`` -> SynthSpec (InputError if bad)."""
    known = {f.name for f in fields(SynthSpec)} - {"weights"}
    values: dict[str, Any] = {}
    weights = dict(DEFAULT_WEIGHTS)

    def assign(key: str, raw: str) -> None:
        if key in known:
            values[key] = float(raw) if key in FLOAT_KEYS else int(raw)
        elif key in weights:
            weights[key] = float(raw)
        else:
            raise ValueError(f"unknown key (use {sorted(known)} or source weights {sorted(weights)})")

    parse_items(text, assign)
    spec = SynthSpec(**values, weights=weights)
    if (
        spec.min_contrast < 0
        or not 0 <= spec.invert <= 1
        or not 0 <= spec.part <= 1
        or not 0 <= spec.whole <= 1
        or spec.cases < 1
        or spec.size < 16
        or spec.depth < 1
        or min(weights.values()) < 0
        or sum(weights.values()) <= 0
    ):
        raise InputError(
            f"training data {text!r}: cases >= 1, size >= 16, depth >= 1, min_contrast >= 0,"
            " invert in [0, 1], part in [0, 1], whole in [0, 1], weights >= 0 (not all 0)"
        )
    return spec


def _source(kind: str, rng: np.random.Generator) -> Source:
    if kind == "phantom":
        return sources.phantom_source(int(rng.integers(0, 200)))
    if kind in ("ct", "mr"):
        weighting = "CT" if kind == "ct" else str(rng.choice(["T1", "T2"]))
        return sources.rendered_phantom_source(int(rng.integers(0, 200)), weighting)
    if kind == "brain":
        return sources.brain_source()
    if kind == "blobs":
        return sources.blob_source(rng)
    if kind == "shapes":
        return sources.shapes_source(rng)
    pool = sources.real3d_sources() if kind == "real3d" else sources.real2d_sources()
    return pool[int(rng.integers(len(pool)))]


def generate_case(spec: SynthSpec, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Case ``index``: image (D, S, S) float32 in [0, 1], labels (D, S, S) int64 (0/1/2), description."""
    rng = np.random.default_rng([spec.seed, index, 17])
    kinds = list(spec.weights)
    p = np.array([spec.weights[k] for k in kinds], float)
    for _ in range(20):
        kind = str(rng.choice(kinds, p=p / p.sum()))
        src = _source(kind, rng)
        slab = sample_slab(src, spec.size, spec.depth, rng)
        fine = slab.labels
        if "outside_mm" in slab.extra:
            fine = sources.paint_shells(fine, slab.extra["outside_mm"], rng)
        chosen = choose_targets(fine, src.groups, rng, part=spec.part, whole=spec.whole)
        if chosen is None:
            continue
        labels, info = chosen
        painted = slab.image is None
        raw = paint(fine, rng) if painted else slab.image
        assert raw is not None
        image = to_unit(corrupt(raw, rng, painted), rng)
        if spec.min_contrast > 0:
            mid = image.shape[0] // 2
            if boundary_contrast(image[mid], labels[mid] == TARGET) < spec.min_contrast:
                continue  # no image could show where this target ends
            other = labels[mid] == OTHER
            if other.any() and boundary_contrast(image[mid], other) < spec.min_contrast:
                labels[labels == OTHER] = 0  # a faint second object: dropped, the target kept
        if spec.invert > 0 and rng.random() < spec.invert:  # dark objects on bright ground, too
            image = 1.0 - image
        return image, labels, {**slab.info, **info, "kind": kind}
    raise InputError(f"synthetic case {index} (seed {spec.seed}): no usable target in 20 tries")


class SyntheticCases(GeneratedCases):
    """A ``CaseSource`` of ``spec.cases`` generated cases (see the module doc); LRU-cached."""

    def __init__(
        self, text: str, cases: list[str] | None = None, cache_cases: int = 8, label_offset: int = 0
    ) -> None:
        self.synth = parse_synth(text)
        folder = f"{PREFIX}{self.synth.seed}"
        self.spec = DatasetSpec(
            Path(folder),
            {"0": "synthetic"},
            {"background": 0, "synthetic_target": TARGET, "synthetic_other": OTHER},
            self.synth.cases,
            "",
        )
        what = f"synthetic data (seed {self.synth.seed})"
        super().__init__(folder, self.synth.cases, what, cases, cache_cases, label_offset)

    def is_2d(self) -> bool:
        return False

    def _make(self, case: int, name: str) -> CaseFrames:
        """Case ``case`` (each is cut along its own random axis, so the requested axis is ignored)."""
        image, labels, info = generate_case(self.synth, case)
        frames = case_frames(name, "axial", image, labels, self.classes, self.label_offset)
        if info.get("target") == "part":  # its box does not say it: clicks will
            frames = replace(frames, box_ambiguous=frozenset({TARGET + self.label_offset}))
        return frames
