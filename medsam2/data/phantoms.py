"""Deterministic synthetic medical data with exact labels: CT/MR abdomen phantoms and 2D image sets.

3D phantoms (`ct_phantom`, `mr_phantom`) share one anatomy per seed (`generate_anatomy`): body,
liver (two lobes, a portal-like vessel tree, hypo- and hyperdense lesions), spleen, kidneys (cortex
and medulla), aorta, IVC, spine, bowel loops. Arrays are in the file's own index order (i, j, k)
like `medsam2.types.Volume`; read with an identity direction, i runs to the patient's left, j to
posterior and k to superior (LPS), so axial slices are ``array[:, :, k]``. Labels come from the sharp
geometry; intensities are the tissue values below, Gaussian-blurred (partial volume), then noised.

Labels (`PHANTOM_LABELS`) and CT values, HU (nominal; `LABEL_HU_RANGES` = expected mean inside each
label, one voxel in from its edge, at the default noise and blur):

=====  =============  ==============================================  ================
value  name           tissue, nominal HU                              interior mean HU
=====  =============  ==============================================  ================
1      liver          60                                              45 .. 75
2      kidney_right   cortex 42, medulla 22                           25 .. 45
3      kidney_left    cortex 42, medulla 22                           25 .. 45
4      spleen         48                                              35 .. 60
5      lesion         liver 60 + contrast: -60..-25 hypo, +35..+80    per lesion (sign)
6      aorta          200                                             150 .. 230
7      liver_vessels  180 (radius about 1.5-2.6 mm at the default)    90 .. 200
8      spine          cortical 1000, cancellous 450                   500 .. 950
=====  =============  ==============================================  ================

Unlabelled: air -1000, subcutaneous fat -100, visceral fat -90, muscle 50, bowel wall 40, bowel
fluid 10, bowel gas -950, IVC 160, intervertebral disc 80, CSF 10. MR (arbitrary units, T1 / T2):
see `TISSUE_VALUES`; lesion T1 = liver T1 * (1 + 0.6 c / 100) and T2 = liver T2 * (1 - 0.8 c / 100)
for CT contrast c, so a lesion keeps its CT sign on T1 and has the opposite sign on T2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medsam2.data.phantoms_2d import CELL_LABELS, FUNDUS_LABELS, Sample2D, cells_set, fundus_set
from medsam2.data.phantoms_anatomy import Anatomy, generate_anatomy
from medsam2.data.phantoms_io import write_nnunet_dataset, write_nnunet_dataset_2d, write_phantom
from medsam2.data.phantoms_labels import LESION_TISSUE_BASE, PHANTOM_LABELS, Lesion, Tissue, part_rng
from medsam2.types import Volume

__all__ = [
    "CELL_LABELS",
    "FUNDUS_LABELS",
    "LABEL_HU_RANGES",
    "PHANTOM_LABELS",
    "TISSUE_VALUES",
    "Anatomy",
    "Lesion",
    "Phantom",
    "Sample2D",
    "Tissue",
    "cells_set",
    "ct_phantom",
    "fundus_set",
    "generate_anatomy",
    "mr_phantom",
    "write_nnunet_dataset",
    "write_nnunet_dataset_2d",
    "write_phantom",
]

TISSUE_VALUES: dict[Tissue, tuple[float, float, float]] = {
    Tissue.AIR: (-1000.0, 0.0, 0.0),
    Tissue.SUBCUT_FAT: (-100.0, 900.0, 700.0),
    Tissue.MUSCLE: (50.0, 400.0, 250.0),
    Tissue.VISCERAL_FAT: (-90.0, 850.0, 650.0),
    Tissue.BOWEL_WALL: (40.0, 450.0, 350.0),
    Tissue.BOWEL_FLUID: (10.0, 200.0, 900.0),
    Tissue.BOWEL_GAS: (-950.0, 0.0, 0.0),
    Tissue.LIVER: (60.0, 550.0, 300.0),
    Tissue.SPLEEN: (48.0, 450.0, 550.0),
    Tissue.KIDNEY_CORTEX: (42.0, 500.0, 600.0),
    Tissue.KIDNEY_MEDULLA: (22.0, 350.0, 800.0),
    Tissue.IVC: (160.0, 250.0, 180.0),
    Tissue.AORTA: (200.0, 150.0, 100.0),
    Tissue.LIVER_VESSEL: (180.0, 300.0, 150.0),
    Tissue.BONE_CORTICAL: (1000.0, 50.0, 50.0),
    Tissue.BONE_CANCELLOUS: (450.0, 650.0, 450.0),
    Tissue.DISC: (80.0, 350.0, 700.0),
    Tissue.CSF: (10.0, 150.0, 1200.0),
}
"""Tissue -> (CT HU, T1, T2); MR values are arbitrary positive units."""

LABEL_HU_RANGES: dict[int, tuple[float, float]] = {
    1: (45.0, 75.0),
    2: (25.0, 45.0),
    3: (25.0, 45.0),
    4: (35.0, 60.0),
    6: (150.0, 230.0),
    7: (90.0, 200.0),
    8: (500.0, 950.0),
}
"""Label -> expected mean HU one voxel inside the label (default noise/blur); lesions: see `Lesion`."""

_DEFAULT_BLUR = (0.6, 0.6, 0.5)


@dataclass(frozen=True)
class Phantom:
    """A synthetic volume and its exact labels.

    ``volume.array`` and ``label`` have the same shape (i, j, k) and index order; ``label`` is uint8
    with the values of ``labels`` (value -> name, background 0 not listed). A structure that falls
    outside a very small field of view may be absent from ``label`` although listed.
    """

    volume: Volume
    label: np.ndarray
    labels: dict[int, str] = field(default_factory=lambda: dict(PHANTOM_LABELS))
    lesions: tuple[Lesion, ...] = ()
    seed: int = 0

    def mask(self, which: int | str) -> np.ndarray:
        """Bool mask (i, j, k) of one label, given by value or name."""
        if isinstance(which, str):
            values = [v for v, name in self.labels.items() if name == which]
            if not values:
                raise KeyError(f"no label named {which!r}; known: {sorted(self.labels.values())}")
            which = values[0]
        return self.label == which


def _check_geometry(
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    origin: tuple[float, ...],
    direction: np.ndarray | None,
) -> np.ndarray:
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be 3 sizes of at least 8 voxels, got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be 3 positive values (mm), got {spacing}")
    if len(origin) != 3:
        raise ValueError(f"origin must have 3 values (mm), got {origin}")
    d = np.eye(3) if direction is None else np.array(direction, np.float64)  # a copy
    if d.shape != (3, 3) or not np.allclose(d.T @ d, np.eye(3), atol=1e-6):
        raise ValueError(
            "direction must be an orthonormal 3x3 matrix (column d = world direction of index axis d)"
        )
    return d


def _lut(column: int, anatomy: Anatomy, lesion_value: np.ndarray) -> np.ndarray:
    """Tissue value -> intensity lookup (256,) float32 for column 0 (CT), 1 (T1) or 2 (T2)."""
    lut = np.zeros(256, np.float32)
    for tissue, values in TISSUE_VALUES.items():
        lut[int(tissue)] = values[column]
    lut[LESION_TISSUE_BASE : LESION_TISSUE_BASE + len(anatomy.lesions)] = lesion_value
    return lut


def _render(tissue: np.ndarray, lut: np.ndarray, blur: float | tuple[float, float, float]) -> np.ndarray:
    """Intensity (float32, same shape) from the tissue map, blurred by ``blur`` voxels (sigma per axis)."""
    image = lut[tissue]
    sigma = (blur,) * 3 if isinstance(blur, int | float) else tuple(blur)
    if any(s > 0 for s in sigma):
        image = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    return image


def _make_volume(
    array: np.ndarray,
    spacing: tuple[float, ...],
    origin: tuple[float, ...],
    d: np.ndarray,
    modality: str,
    meta: dict[str, str],
) -> Volume:
    return Volume(
        array=array,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=d,
        source=f"phantom:{meta['generator']}:seed={meta['seed']}",
        modality=modality,
        metadata=meta,
    )


def ct_phantom(
    shape: tuple[int, int, int] = (128, 128, 64),
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5),
    seed: int = 0,
    *,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    n_lesions: int = 4,
    noise_hu: float = 15.0,
    blur: float | tuple[float, float, float] = _DEFAULT_BLUR,
    dtype: str = "int16",
) -> Phantom:
    """A CT-like abdomen phantom: HU values (int16, or float32 with ``dtype="float32"``), shape (i, j, k).

    ``seed`` (>= 0) sets the anatomy (shapes, positions, lesions) and the noise; ``blur`` is the
    partial-volume Gaussian sigma in voxels per axis; ``noise_hu`` the white-noise sigma in HU.
    ``direction`` (3, 3, orthonormal, default identity) and ``origin`` only set the geometry.
    """
    d = _check_geometry(shape, spacing, origin, direction)
    if dtype not in ("int16", "float32"):
        raise ValueError(f"dtype must be 'int16' or 'float32', got {dtype!r}")
    anatomy = generate_anatomy(shape, spacing, seed, n_lesions)
    liver = TISSUE_VALUES[Tissue.LIVER][0]
    lut = _lut(0, anatomy, np.array([liver + les.contrast_hu for les in anatomy.lesions], np.float32))
    image = _render(anatomy.tissue, lut, blur)
    if noise_hu > 0:
        image += np.float32(noise_hu) * part_rng(seed, "ct_noise").standard_normal(
            image.shape, dtype=np.float32
        )
    if dtype == "int16":
        image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    meta = {"generator": "ct_phantom", "seed": str(seed), "units": "HU"}
    return Phantom(
        _make_volume(image, spacing, origin, d, "CT", meta),
        anatomy.label,
        dict(PHANTOM_LABELS),
        anatomy.lesions,
        seed,
    )


def _bias_field(shape: tuple[int, ...], seed: int, strength: float) -> np.ndarray:
    """Smooth multiplicative bias (float32, shape (i, j, k)): about 1 at the centre, within roughly
    +-``strength`` towards the edges."""
    rng = part_rng(seed, "mr_bias")
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    lin, quad = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
    f = [
        np.exp(np.float32(strength / 2) * (lin[a] * x + quad[a] * (x * x - 1.0 / 3.0)))
        for a, x in enumerate(axes)
    ]
    cross = np.exp(np.float32(strength / 2 * rng.uniform(-1, 1)) * axes[0][:, None] * axes[1][None, :])
    return (f[0][:, None, None] * f[1][None, :, None] * cross[:, :, None]) * f[2][None, None, :]


def mr_phantom(
    shape: tuple[int, int, int] = (128, 128, 64),
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5),
    seed: int = 0,
    *,
    weighting: str = "T1",
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    n_lesions: int = 4,
    noise: float = 0.03,
    bias: float = 0.3,
    blur: float | tuple[float, float, float] = _DEFAULT_BLUR,
) -> Phantom:
    """An MR-like phantom (float32, positive arbitrary units, shape (i, j, k)) with the anatomy of
    ``ct_phantom(shape, spacing, seed)``: ``weighting`` "T1" or "T2" contrast, a smooth multiplicative
    bias field of relative size ``bias``, and Rician noise of sigma ``noise`` x the liver signal."""
    d = _check_geometry(shape, spacing, origin, direction)
    if weighting not in ("T1", "T2"):
        raise ValueError(f"weighting must be 'T1' or 'T2', got {weighting!r}")
    column = 1 if weighting == "T1" else 2
    anatomy = generate_anatomy(shape, spacing, seed, n_lesions)
    liver = TISSUE_VALUES[Tissue.LIVER][column]
    gain = 0.6 if column == 1 else -0.8
    lesion_values = [liver * (1.0 + gain * les.contrast_hu / 100.0) for les in anatomy.lesions]
    image = _render(anatomy.tissue, _lut(column, anatomy, np.array(lesion_values, np.float32)), blur)
    if bias > 0:
        image *= _bias_field(shape, seed, bias)
    if noise > 0:
        rng = part_rng(seed, "mr_noise")
        sigma = np.float32(noise * liver)
        real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(image.shape, dtype=np.float32)
        image = np.sqrt(real * real + imag * imag)
    meta = {"generator": "mr_phantom", "seed": str(seed), "weighting": weighting, "units": "arbitrary"}
    return Phantom(
        _make_volume(image.astype(np.float32, copy=False), spacing, origin, d, "MR", meta),
        anatomy.label,
        dict(PHANTOM_LABELS),
        anatomy.lesions,
        seed,
    )
