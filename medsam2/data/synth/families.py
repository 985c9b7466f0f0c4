"""One-Prompt image sets: families of unrelated 2D images that share what is to be segmented.

Use it as a 2D dataset for the ``2d-one-prompt`` recipe::

    --recipe 2d-one-prompt --data "synth2d:seed=0;cases=6000;size=128;families=300"

Case ``i`` belongs to family ``i % families``. A family, drawn from ``(seed, family)`` only, fixes
a *kind* of object — a shape model (many small cells, one disc with or without a cup, a few
irregular blobs, thin tubes), its count and size range, its brightness and texture against its
background — and a background model (smooth noise or a real picture's texture). Each image of the
family is a new random instance from ``(seed, i)``, with distractor objects of another kind in
it, then blurred, biased, noised and normalised like the 3D synthetic data
(:mod:`.appearance`). The label value of a case's target is its family + 1, so the recipe draws
streams within a family: one image is prompted, the others must be segmented from memory — which
only works if the model carries *what* was prompted, not *where*.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy import ndimage

from medsam2.data.datasets import CaseFrames, DatasetSpec, case_frames
from medsam2.data.synth.appearance import corrupt, to_unit
from medsam2.data.synth.generated import GeneratedCases, parse_items
from medsam2.errors import InputError

__all__ = ["FamilySpec", "SyntheticImageSets", "parse_synth2d", "family_image", "is_image_sets", "PREFIX_2D"]

PREFIX_2D = "synth2d"
SHAPES = ("cells", "disc", "blobs", "tubes")


@dataclass(frozen=True)
class FamilySpec:
    """What ``synth2d:key=value;...`` asks for."""

    seed: int = 0
    cases: int = 6000
    size: int = 128
    families: int = 300


@dataclass(frozen=True)
class Kind:
    """The look of one kind of object: shape model, count and size, mean intensity and spread."""

    shape: str
    count: tuple[int, int]
    radius: tuple[float, float]  # fraction of the image size
    mean: float
    spread: float
    texture: float  # amplitude of smooth noise inside the objects


def is_image_sets(root: str | Path) -> bool:
    return str(root).split(":", 1)[0] == PREFIX_2D


def parse_synth2d(text: str) -> FamilySpec:
    """``synth2d:seed=0;cases=6000;size=128;families=300`` -> FamilySpec (InputError if bad)."""
    known = {f.name for f in fields(FamilySpec)}
    values: dict[str, int] = {}

    def assign(key: str, raw: str) -> None:
        if key not in known:
            raise ValueError(f"expected key=value with key one of {sorted(known)}")
        values[key] = int(raw)

    parse_items(text, assign)
    spec = FamilySpec(**values)
    if spec.cases < 1 or spec.size < 32 or not 1 <= spec.families <= spec.cases:
        raise InputError(f"training data {text!r}: cases >= 1, size >= 32, 1 <= families <= cases")
    return spec


def _kind(rng: np.random.Generator, avoid: float | None = None) -> Kind:
    shape = str(rng.choice(SHAPES, p=[0.35, 0.2, 0.25, 0.2]))
    count, radius = {
        "cells": ((int(rng.integers(3, 12)), int(rng.integers(12, 40))), (0.02, rng.uniform(0.03, 0.07))),
        "disc": ((1, 1), (rng.uniform(0.08, 0.15), rng.uniform(0.16, 0.28))),
        "blobs": ((1, int(rng.integers(1, 4))), (rng.uniform(0.06, 0.1), rng.uniform(0.12, 0.2))),
        "tubes": ((1, int(rng.integers(2, 6))), (0.008, rng.uniform(0.012, 0.025))),
    }[shape]
    mean = float(rng.uniform(0.0, 1.0))
    while avoid is not None and abs(mean - avoid) < 0.25:
        mean = float(rng.uniform(0.0, 1.0))
    return Kind(shape, count, radius, mean, float(rng.uniform(0.01, 0.06)), float(rng.uniform(0.0, 0.15)))


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (np.abs(field).max() + 1e-6)


def _ellipse(size: int, cy: float, cx: float, ry: float, rx: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / max(rx, 0.5)) ** 2 + (v / max(ry, 0.5)) ** 2 <= 1.0


def _tube(size: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve drawn ``width`` pixels thick."""
    out = np.zeros((size, size), bool)
    pos = rng.uniform(0.1, 0.9, 2) * size
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(size * rng.uniform(0.6, 1.5))):
        heading += rng.normal(0, 0.12)
        pos = pos + np.array([np.sin(heading), np.cos(heading)])
        y, x = int(pos[0]), int(pos[1])
        if not (0 <= y < size and 0 <= x < size):
            break
        out[y, x] = True
    return ndimage.binary_dilation(out, iterations=max(1, round(width / 2)))


def _objects(kind: Kind, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool: one random instance of ``kind``'s objects."""
    n = int(rng.integers(kind.count[0], kind.count[1] + 1))
    out = np.zeros((size, size), bool)
    for _ in range(n):
        r = rng.uniform(*kind.radius) * size
        if kind.shape == "tubes":
            out |= _tube(size, max(2.0, 2 * r), rng)
            continue
        cy, cx = rng.uniform(r, size - r, 2)
        ratio = rng.uniform(0.6, 1.0) if kind.shape != "blobs" else rng.uniform(0.4, 1.0)
        blob = _ellipse(size, cy, cx, r * ratio, r, rng.uniform(0, np.pi))
        if kind.shape == "blobs":  # irregular outline: threshold a warped distance
            warp = _smooth_noise((size, size), size / 16, rng)
            dist = ndimage.distance_transform_edt(~blob) - ndimage.distance_transform_edt(blob)
            blob = dist + warp * r * 0.6 <= 0
        out |= blob
    return out


@dataclass(frozen=True)
class Backdrop:
    """A family's background: a real picture's texture (``picture`` >= 0) or smooth noise."""

    picture: int
    level: float
    amplitude: float
    sigma: float


def _backdrop(rng: np.random.Generator, size: int, pictures: list[np.ndarray]) -> Backdrop:
    picture = int(rng.integers(len(pictures))) if pictures and rng.random() < 0.4 else -1
    return Backdrop(picture, rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.5), rng.uniform(2, size / 4))


def _background(b: Backdrop, size: int, rng: np.random.Generator, pictures: list[np.ndarray]) -> np.ndarray:
    """One instance of a family's backdrop: another crop of its picture, or another noise field."""
    if b.picture >= 0:
        pic = pictures[b.picture]
        y, x = (int(rng.integers(0, max(1, d - size + 1))) for d in pic.shape)
        crop = pic[y : y + size, x : x + size]
        crop = np.pad(crop, [(0, size - crop.shape[0]), (0, size - crop.shape[1])], mode="reflect")
        return (crop - crop.mean()) * b.amplitude + b.level
    return b.level + _smooth_noise((size, size), b.sigma, rng) * b.amplitude * 0.4


def _pictures() -> list[np.ndarray]:
    from medsam2.data.synth.sources import real2d_sources

    seen: dict[str, np.ndarray] = {}
    for src in real2d_sources():
        assert src.image is not None
        seen.setdefault(src.name.split("/")[0], np.asarray(src.image[:, :, 0], np.float32))
    return list(seen.values())


def family_image(
    spec: FamilySpec, index: int, pictures: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Case ``index``: image (S, S) float32 in [0, 1], target mask (S, S) bool, description."""
    family = index % spec.families
    frng = np.random.default_rng([spec.seed, family, 29])
    size = spec.size
    pics = _pictures() if pictures is None else pictures
    backdrop = _backdrop(frng, size, pics)
    target = _kind(frng, avoid=backdrop.level)
    rng = np.random.default_rng([spec.seed, index, 31])
    image = _background(backdrop, size, rng, pics).astype(np.float32)
    if rng.random() < 0.7:  # distractors: another kind, not to be segmented
        other = _kind(rng, avoid=target.mean)
        mask = _objects(other, size, rng)
        image[mask] = other.mean + other.spread * rng.standard_normal(int(mask.sum()))
    for _ in range(4):
        mask = _objects(target, size, rng)
        if mask.sum() >= 20:
            break
    jitter = rng.normal(0, 0.04)
    inside = target.mean + jitter + target.spread * rng.standard_normal(int(mask.sum()))
    inside += target.texture * _smooth_noise((size, size), 1.5, rng)[mask]
    image[mask] = inside
    if target.shape == "disc" and frng.random() < 0.5:  # a cup inside the disc, part of the target
        cup = ndimage.binary_erosion(mask, iterations=max(1, int(mask.sum() ** 0.5 * 0.2)))
        image[cup] += 0.15 * np.sign(0.5 - target.mean)
    raw = corrupt(image[None], rng, painted=True)[0]
    out = to_unit(raw[None], rng)[0]
    return out, mask, {"family": family, "shape": target.shape}


class SyntheticImageSets(GeneratedCases):
    """A 2D ``CaseSource`` of ``spec.cases`` generated images in ``spec.families`` families; LRU-cached."""

    def __init__(
        self, text: str, cases: list[str] | None = None, cache_cases: int = 64, label_offset: int = 0
    ) -> None:
        self.synth = parse_synth2d(text)
        folder = f"{PREFIX_2D}_{self.synth.seed}"
        names = {"background": 0, **{f"family_{f}": f + 1 for f in range(self.synth.families)}}
        self.spec = DatasetSpec(Path(folder), {"0": "synthetic"}, names, self.synth.cases, "")
        what = f"synthetic image sets (seed {self.synth.seed})"
        super().__init__(folder, self.synth.cases, what, cases, cache_cases, label_offset)
        self._pictures: list[np.ndarray] | None = None

    def is_2d(self) -> bool:
        return True

    def class_cases(self) -> dict[int, list[int]]:
        """Class value -> indices of the cases of that family (no image is generated)."""
        index: dict[int, list[int]] = {}
        for i, case in enumerate(self._ids):
            index.setdefault(case % self.synth.families + 1 + self.label_offset, []).append(i)
        return index

    def _make(self, case: int, name: str) -> CaseFrames:
        """Image ``case`` as one frame: image (1, S, S), labels (1, S, S) = its family + 1 on the target."""
        if self._pictures is None:
            self._pictures = _pictures()
        image, mask, _ = family_image(self.synth, case, self._pictures)
        labels = np.where(mask, case % self.synth.families + 1, 0).astype(np.int64)
        return case_frames(name, "axial", image[None], labels[None], self.classes, self.label_offset)
