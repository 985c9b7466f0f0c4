"""Plain data records shared across pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Volume"]


@dataclass
class Volume:
    """An image with its physical geometry, in the file's own index order.

    `array` is indexed ``array[i, j, k]`` with i the fastest-varying file index (ITK/NIfTI
    voxel index order, as 3D Slicer and ITK-SNAP show coordinates), i.e. the transpose of
    SimpleITK's ``GetArrayFromImage``.  2D images have shape (i, j) (column, row), i.e.
    ``array.T`` of the usual (row, column) picture array.
    `spacing` is in mm per index axis, `origin` the world position (mm, LPS) of voxel 0 and
    `direction` a (D, D) matrix whose column d is the world direction of index axis d.
    world = origin + direction @ (spacing * index).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: np.ndarray
    source: str = "<array>"
    modality: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape[: self.ndim])

    def index_to_world(self, index: np.ndarray) -> np.ndarray:
        """Continuous voxel index (..., D) -> world mm (..., D)."""
        idx = np.asarray(index, dtype=np.float64)
        m = np.asarray(self.direction, np.float64) @ np.diag(self.spacing)
        return idx @ m.T + np.asarray(self.origin, np.float64)

    def world_to_index(self, world: np.ndarray) -> np.ndarray:
        """World mm (..., D) -> continuous voxel index (..., D)."""
        w = np.asarray(world, dtype=np.float64) - np.asarray(self.origin, np.float64)
        m = np.asarray(self.direction, np.float64) @ np.diag(self.spacing)
        return np.linalg.solve(m, w.reshape(-1, self.ndim).T).T.reshape(w.shape)
