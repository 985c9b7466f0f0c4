"""Label table, tissue classes and lesion records of the 3D phantoms, and their random streams."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = [
    "AORTA",
    "KIDNEY_L",
    "KIDNEY_R",
    "LESION",
    "LESION_TISSUE_BASE",
    "LIVER",
    "LIVER_VESSELS",
    "PHANTOM_LABELS",
    "SPINE",
    "SPLEEN",
    "Lesion",
    "Tissue",
    "part_rng",
]

PHANTOM_LABELS: dict[int, str] = {
    1: "liver",
    2: "kidney_right",
    3: "kidney_left",
    4: "spleen",
    5: "lesion",
    6: "aorta",
    7: "liver_vessels",
    8: "spine",
}
"""Label value -> structure name for the 3D phantoms (0 is background)."""

LIVER, KIDNEY_R, KIDNEY_L, SPLEEN, LESION, AORTA, LIVER_VESSELS, SPINE = range(1, 9)
LESION_TISSUE_BASE = 64
"""Lesion n (0-based) has tissue value ``LESION_TISSUE_BASE + n`` in the tissue map."""


class Tissue(IntEnum):
    """Tissue classes of the tissue map; each maps to a CT HU, a T1 and a T2 value."""

    AIR = 0
    SUBCUT_FAT = 1
    MUSCLE = 2
    VISCERAL_FAT = 3
    BOWEL_WALL = 4
    BOWEL_FLUID = 5
    BOWEL_GAS = 6
    LIVER = 7
    SPLEEN = 8
    KIDNEY_CORTEX = 9
    KIDNEY_MEDULLA = 10
    IVC = 11
    AORTA = 12
    LIVER_VESSEL = 13
    BONE_CORTICAL = 14
    BONE_CANCELLOUS = 15
    DISC = 16
    CSF = 17


@dataclass(frozen=True)
class Lesion:
    """One lesion: ``center`` voxel index (i, j, k), ellipsoid semi-axes in mm along i, j, k, and its
    CT contrast against the host organ's nominal value (negative = hypodense)."""

    center: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    contrast_hu: float
    host: str = "liver"

    @property
    def kind(self) -> str:
        """``"hyper"`` or ``"hypo"`` (CT and T1 sign; T2 has the opposite sign)."""
        return "hyper" if self.contrast_hu > 0 else "hypo"


def part_rng(seed: int, part: str) -> np.random.Generator:
    """The random stream of one part (structure, noise...) of the phantom for ``seed`` (>= 0)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, zlib.crc32(part.encode())])
