"""World mm (RAS, as NiiVue reports it) <-> voxel indices, checked against nibabel's RAS affine of
the very NIfTI the page loads, on a volume stored in LPS-like order and on an oblique one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serve_helpers import oblique_volume

from medsam2.errors import PromptError
from medsam2.types import Volume
from medsam2.web.coords import WorldMap
from medsam2.web.files import nifti_bytes

nib = pytest.importorskip("nibabel")


def lps_stored() -> Volume:
    """Identity direction in ITK terms = LPS storage (i runs to patient left): not RAS order."""
    arr = np.arange(6 * 7 * 5, dtype=np.float32).reshape(6, 7, 5)
    return Volume(arr, (1.5, 0.8, 3.0), (-40.0, 25.0, 12.0), np.eye(3), source="lps.nii.gz")


@pytest.mark.parametrize("make", [lps_stored, oblique_volume], ids=["lps-order", "oblique"])
def test_ras_mm_round_trip_matches_the_served_nifti(make, tmp_path: Path) -> None:
    vol = make()
    path = tmp_path / "served.nii.gz"
    path.write_bytes(nifti_bytes(vol.array, vol))
    affine = nib.load(str(path)).affine  # voxel -> RAS mm, as any NIfTI viewer (NiiVue) uses it
    wmap = WorldMap(vol)
    rng = np.random.default_rng(1)
    for index in [np.zeros(3), np.array(vol.shape, float) - 1, *rng.uniform(0, 5, (5, 3))]:
        ras = (affine @ np.append(index, 1.0))[:3]
        assert np.allclose(wmap.index_to_world(index, "ras"), ras, atol=1e-3)
        assert np.allclose(wmap.world_to_index(ras, "ras"), index, atol=1e-4)
        lps = vol.index_to_world(index)
        assert np.allclose(ras[:2], -lps[:2], atol=1e-3) and np.isclose(ras[2], lps[2], atol=1e-3)
        assert np.allclose(wmap.world_to_index(lps, "lps"), index, atol=1e-6)
    voxel = (2, 3, 4)
    ras = (affine @ np.array([*voxel, 1.0]))[:3] + 0.2  # off-centre -> the nearest voxel
    assert wmap.world_to_voxel(ras, "ras") == voxel


def test_unknown_space_is_refused() -> None:
    with pytest.raises(PromptError, match="space"):
        WorldMap(lps_stored()).world_to_index([0, 0, 0], "mni")
