"""Painting intensities, the SynthSeg way (Billot et al., 2023), and corrupting them like scanners do.

Labels -> image: every label gets a random mean and spread (background too, dark half of the time),
then partial-volume blur, a smooth bias field, a random gamma, low resolution along the slice axis,
Gibbs ringing and noise. Real-intensity slabs get the same corruptions (no repainting) and are
sometimes inverted. Everything ends as float32 in [0, 1] through the 0.5-99.5 percentiles, as the
inference pipeline normalises an MR volume. MONAI's transforms do the corruptions
(``RandBiasField``, ``RandAdjustContrast``, ``RandGibbsNoise``, ``RandGaussianNoise``,
``GaussianSmooth``); their random state is seeded from the case's generator, so a case is the same
on every run.
"""

from __future__ import annotations

import numpy as np

from medsam2.preprocessing.intensity import percentile_normalize

__all__ = ["paint", "corrupt", "to_unit"]


def paint(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(D, S, S) int labels -> float32 image: a Gaussian intensity per label."""
    n = int(labels.max()) + 1
    means = rng.uniform(0.0, 1.0, n).astype(np.float32)
    if rng.random() < 0.5:
        means[0] = rng.uniform(0.0, 0.08)
    stds = (rng.uniform(0.0, 0.06, n) * rng.uniform(0.3, 1.0)).astype(np.float32)
    noise = rng.standard_normal(labels.shape, dtype=np.float32)
    return means[labels] + stds[labels] * noise


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def corrupt(image: np.ndarray, rng: np.random.Generator, painted: bool) -> np.ndarray:
    """(D, S, S) float32 -> the same, blurred / biased / gamma-adjusted / low-res / ringing / noisy."""
    import torch
    from monai.transforms import (
        GaussianSmooth,
        RandAdjustContrast,
        RandBiasField,
        RandGaussianNoise,
        RandGibbsNoise,
    )

    x = torch.from_numpy(np.ascontiguousarray(image))[None]  # (1, D, S, S)
    if painted or rng.random() < 0.3:  # partial volume: blur in-plane, less across slices
        s = rng.uniform(0.3, 1.2)
        x = GaussianSmooth(sigma=(rng.uniform(0.0, 0.6), s, s))(x)
    if rng.random() < 0.25:  # thick slices: average neighbouring slices
        x = GaussianSmooth(sigma=(rng.uniform(0.8, 1.5), 0.0, 0.0))(x)
    x = x - x.min()
    steps = [
        RandBiasField(degree=3, coeff_range=(0.0, 0.3), prob=0.6),
        RandAdjustContrast(gamma=(0.6, 1.6), prob=0.7),
        RandGibbsNoise(alpha=(0.0, 0.5), prob=0.15),
        RandGaussianNoise(std=float(rng.uniform(0.0, 0.05)) * float(x.max()), prob=0.8),
    ]
    for t in steps:
        t.set_random_state(seed=_seed(rng))
        x = t(x)
    out = np.asarray(x[0], dtype=np.float32)
    if not painted and rng.random() < 0.15:
        out = -out  # contrast inversion (T1 vs T2-like)
    return out


def to_unit(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Percentile normalisation to [0, 1]; sometimes a narrower window, clipping like a CT window does."""
    lo_p, hi_p = (0.5, 99.5) if rng.random() < 0.7 else (rng.uniform(0.5, 20.0), rng.uniform(80.0, 99.5))
    return percentile_normalize(image, lo_p, hi_p)
