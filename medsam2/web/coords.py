"""World millimetres <-> voxel indices for the browser app, through SimpleITK.

Coordinates cross the wire in world millimetres. NiiVue reports RAS (+x left->Right, +y
posterior->Anterior); SimpleITK and `medsam2.types.Volume` work in LPS. The two differ by the
sign of x and y, flipped here and nowhere else. Indices are continuous voxel indices in the
file's own order (i, j, k), integers at voxel centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from medsam2.errors import PromptError
from medsam2.types import Volume

__all__ = ["SPACES", "WorldMap"]

SPACES = ("ras", "lps")
_RAS_LPS = np.array([-1.0, -1.0, 1.0])


class WorldMap:
    """Maps points between a volume's index space and world mm (RAS or LPS).

    Holds a 1-voxel SimpleITK image carrying the volume's origin, spacing and direction: the
    physical <-> index transforms do not depend on the image size.
    """

    def __init__(self, volume: Volume) -> None:
        if volume.ndim != 3:
            raise PromptError(f"{volume.source}: world coordinates need a 3D volume")
        ref = sitk.Image([1, 1, 1], sitk.sitkUInt8)
        ref.SetSpacing([float(s) for s in volume.spacing])
        ref.SetOrigin([float(o) for o in volume.origin])
        ref.SetDirection([float(v) for v in np.asarray(volume.direction, np.float64).reshape(-1)])
        self._ref = ref

    @staticmethod
    def to_lps(point: Sequence[float] | np.ndarray, space: str) -> np.ndarray:
        """A world point in `space` ("ras" or "lps") as LPS mm."""
        if space not in SPACES:
            raise PromptError(f"space {space!r}: use 'ras' (NiiVue) or 'lps' (ITK)")
        p = np.asarray(point, dtype=np.float64)
        return p * _RAS_LPS if space == "ras" else p

    def world_to_index(self, point: Sequence[float], space: str = "ras") -> np.ndarray:
        """World mm -> continuous voxel index (i, j, k)."""
        lps = self.to_lps(point, space)
        return np.asarray(self._ref.TransformPhysicalPointToContinuousIndex(lps.tolist()), np.float64)

    def world_to_voxel(self, point: Sequence[float], space: str = "ras") -> tuple[int, int, int]:
        """World mm -> the nearest voxel (i, j, k) (SimpleITK rounds to the nearest centre)."""
        lps = self.to_lps(point, space)
        i, j, k = self._ref.TransformPhysicalPointToIndex(lps.tolist())
        return int(i), int(j), int(k)

    def index_to_world(self, index: Sequence[float], space: str = "ras") -> np.ndarray:
        """Continuous voxel index -> world mm in `space`."""
        lps = np.asarray(
            self._ref.TransformContinuousIndexToPhysicalPoint([float(v) for v in index]), np.float64
        )
        return self.to_lps(lps, space)  # the flip is its own inverse
