"""Small synthetic datasets in the nnU-Net v2 raw layout (tests, benchmarks, trying `medsam2 train`).

3D: noisy volumes with one ellipsoid per class (class c brighter than c+1), written as NIfTI
(or NRRD/MHA) with a non-trivial spacing and origin. 2D: 8-bit PNG images with one ellipse per
class. Everything is drawn from ``seed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["write_synthetic_dataset", "ellipsoid"]


def ellipsoid(shape: tuple[int, ...], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipsoid (any number of dimensions) in index space."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii, strict=True))
    return np.asarray(r2 <= 1.0)


def _objects(shape: tuple[int, ...], num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Label array (index order) with one non-overlapping ellipsoid per class; in 3D they sit
    side by side in the middle slices (like organs in axial slices)."""
    labels = np.zeros(shape, np.uint8)
    extent = np.asarray(shape, np.float64)
    for c in range(1, num_classes + 1):
        for _ in range(50):
            radii = extent * rng.uniform(0.14, 0.24, size=len(shape))
            lo, hi = radii + 1, extent - radii - 1
            if len(shape) == 3:
                radii[2] = extent[2] * rng.uniform(0.25, 0.35)
                lo[2] = hi[2] = extent[2] / 2
                lo[2], hi[2] = lo[2] - 0.1 * extent[2], hi[2] + 0.1 * extent[2]
            center = rng.uniform(lo, hi)
            mask = ellipsoid(shape, center, radii)
            if not (labels[mask] > 0).any():
                break
        labels[mask & (labels == 0)] = c
    return labels


def _image(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    img = rng.normal(40.0, 8.0, size=labels.shape)
    for c in range(1, num_classes + 1):
        img[labels == c] = rng.normal(220.0 - 60.0 * (c - 1), 8.0, size=int((labels == c).sum()))
    return np.clip(img, 0, 255)


def _write(array: np.ndarray, path: Path, spacing: tuple[float, ...], origin: tuple[float, ...]) -> None:
    """Write an index-order array (i, j[, k]) with SimpleITK (which wants (k, j, i))."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.T))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))


def write_synthetic_dataset(
    root: str | Path,
    num_cases: int = 4,
    dims: int = 3,
    shape: tuple[int, ...] | None = None,
    num_classes: int = 1,
    seed: int = 0,
    file_ending: str | None = None,
) -> Path:
    """Write a dataset under ``root`` (created) and return ``root``.

    dims 3: volumes of ``shape`` (default (48, 48, 24)), float32 MR-like, spacing (0.8, 0.8, 2.0);
    dims 2: uint8 PNG images of ``shape`` (default (64, 64)). Case names ``case_000``....
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    out = Path(root)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    shape = shape or ((48, 48, 24) if dims == 3 else (64, 64))
    ending = file_ending or (".nii.gz" if dims == 3 else ".png")
    spacing = (0.8, 0.8, 2.0) if dims == 3 else (1.0, 1.0)
    origin = (-20.0, 10.0, 5.0) if dims == 3 else (0.0, 0.0)
    rng = np.random.default_rng(seed)
    for n in range(num_cases):
        labels = _objects(shape, num_classes, rng)
        image = _image(labels, num_classes, rng)
        image = image.astype(np.float32) if dims == 3 else image.astype(np.uint8)
        _write(image, out / "imagesTr" / f"case_{n:03d}_0000{ending}", spacing, origin)
        _write(labels, out / "labelsTr" / f"case_{n:03d}{ending}", spacing, origin)
    names = {"background": 0, **{f"object{c}": c for c in range(1, num_classes + 1)}}
    meta = {
        "channel_names": {"0": "MRI" if dims == 3 else "image"},
        "labels": names,
        "numTraining": num_cases,
        "file_ending": ending,
        "name": "synthetic",
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
