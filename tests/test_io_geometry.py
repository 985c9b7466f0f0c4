"""Geometry round trip: input file -> Volume -> write_mask -> the mask has exactly the input's geometry.

Covers all 48 axis-aligned orientations (3! axis permutations x 2^3 sign flips, proper and
improper), an oblique rotation (proper and improper) and anisotropic spacing, for NIfTI, NRRD
and MHA; nibabel must read the same affine from the mask as from the input, and a marked voxel
must keep its world position.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medsam2.io import read_image, write_mask
from medsam2.types import Volume

SHAPE = (5, 6, 7)
SPACING = (0.7, 1.3, 2.9)
ORIGIN = (-12.25, 33.5, 101.75)
MARK = (1, 4, 5)


def _axis_aligned() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            d = np.zeros((3, 3))
            for col, (row, sign) in enumerate(zip(perm, signs, strict=True)):
                d[row, col] = sign
            out.append(d)
    return out


def _oblique(improper: bool) -> np.ndarray:
    a, b, c = np.radians([20.0, -35.0, 50.0])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    return r @ np.diag([1.0, 1.0, -1.0]) if improper else r


DIRECTIONS = _axis_aligned() + [_oblique(False), _oblique(True)]
assert len(DIRECTIONS) == 50


def _input_file(tmp_path: Path, direction: np.ndarray, suffix: str) -> Path:
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    image = sitk.GetImageFromArray(data.T.copy())
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(tuple(direction.reshape(-1)))
    path = tmp_path / f"input{suffix}"
    sitk.WriteImage(image, str(path))
    return path


def _assert_same_geometry(a: Volume, b: Volume, atol: float = 1e-6) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=atol)
    np.testing.assert_allclose(a.origin, b.origin, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


@pytest.mark.parametrize("index", range(len(DIRECTIONS)))
def test_nifti_round_trip_all_orientations(tmp_path: Path, index: int) -> None:
    nib = pytest.importorskip("nibabel")
    direction = DIRECTIONS[index]
    src = _input_file(tmp_path, direction, ".nii.gz")
    vol = read_image(src)
    np.testing.assert_allclose(vol.direction, direction, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, SPACING, atol=1e-5)
    mask = np.zeros(vol.shape, np.uint8)
    mask[MARK] = 7
    out = write_mask(mask, vol, tmp_path / "mask.nii.gz")
    back = read_image(out)
    _assert_same_geometry(back, vol)
    np.testing.assert_array_equal(back.array, mask)
    # nibabel agrees on the affine of input and mask, and the marked voxel's world position
    a_in, a_out = nib.load(str(src)).affine, nib.load(str(out)).affine
    np.testing.assert_allclose(a_out, a_in, atol=1e-5)
    marked = np.argwhere(np.asarray(nib.load(str(out)).dataobj) == 7)
    assert [tuple(m) for m in marked] == [MARK]
    world_ras = a_out @ np.array([*MARK, 1.0])
    world_lps = vol.index_to_world(np.array(MARK, float))
    np.testing.assert_allclose(world_ras[:3] * [-1, -1, 1], world_lps, atol=1e-4)
    np.testing.assert_allclose(back.index_to_world(np.array(MARK, float)), world_lps, atol=1e-6)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("index", [0, 7, 21, 47, 48, 49])
def test_nrrd_mha_round_trip(tmp_path: Path, suffix: str, index: int) -> None:
    src = _input_file(tmp_path, DIRECTIONS[index], suffix)
    vol = read_image(src)
    np.testing.assert_allclose(vol.direction, DIRECTIONS[index], atol=1e-6)
    mask = (vol.array % 3).astype(np.uint8)
    out = write_mask(mask, vol, tmp_path / f"mask{suffix}")
    back = read_image(out)
    _assert_same_geometry(back, vol, atol=1e-9)
    np.testing.assert_array_equal(back.array, mask)
    nifti = read_image(write_mask(mask, vol, tmp_path / "mask.nii.gz"))
    _assert_same_geometry(nifti, vol, atol=1e-5)  # NIfTI stores float32


def test_exact_double_geometry_survives_nrrd_and_mha(tmp_path: Path) -> None:
    direction = _oblique(False)
    ref = Volume(
        np.zeros(SHAPE, np.int16),
        spacing=(0.123456789012, 1.0 / 3.0, 2.718281828459),
        origin=(-123.456789012345, 0.1 + 0.2, 98765.4321),
        direction=direction,
    )
    for suffix in (".nrrd", ".mha"):
        back = read_image(write_mask(np.ones(SHAPE, np.uint8), ref, tmp_path / f"m{suffix}"))
        _assert_same_geometry(back, ref, atol=1e-9)
