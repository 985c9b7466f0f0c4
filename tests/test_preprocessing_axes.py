"""Slice axis in patient space, display convention, and volume <-> frames round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medsam2.errors import InputError
from medsam2.preprocessing import (
    auto_axis,
    frames_to_volume,
    slice_geometry,
    slice_geometry_from_direction,
    volume_to_frames,
)
from medsam2.types import Volume

SHAPE = (3, 4, 5)


def _signed_permutations() -> list[np.ndarray]:
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for axis, (world, sign) in enumerate(zip(perm, signs, strict=True)):
                m[world, axis] = sign  # column = world direction of index axis
            mats.append(m)
    return mats


ORIENTATIONS = _signed_permutations()


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# An oblique direction whose storage order is not (x, y, z): index i ~ -z, j ~ +x, k ~ -y.
OBLIQUE = _rotation(0.3, -0.2, 0.25) @ ORIENTATIONS[19]
# plane -> (world axis sliced, (row world axis, sign), (col world axis, sign))
CONVENTION = {"axial": (2, (1, 1), (0, 1)), "coronal": (1, (2, -1), (0, 1)), "sagittal": (0, (2, -1), (1, 1))}


def test_there_are_48_distinct_orientations() -> None:
    assert len({m.tobytes() for m in ORIENTATIONS}) == 48


def _check_display(direction: np.ndarray, plane: str) -> None:
    """Frames carry their voxel index; stepping along frame columns / rows / t moves in world as promised."""
    geom = slice_geometry_from_direction(SHAPE, direction, plane)
    vol = Volume(np.zeros(SHAPE), (0.7, 1.3, 2.9), (10.0, -5.0, 3.0), direction)
    index = np.moveaxis(np.indices(SHAPE), 0, -1)  # (i, j, k, 3)
    world = vol.index_to_world(volume_to_frames(index, geom))  # (T, H, W, 3)
    normal, (w_row, s_row), (w_col, s_col) = CONVENTION[plane]
    col_step = world[:, :, 1:] - world[:, :, :-1]
    row_step = world[:, 1:] - world[:, :-1]
    assert np.all(s_col * col_step[..., w_col] > 0)
    assert np.all(s_row * row_step[..., w_row] > 0)
    t_step = world[1:] - world[:-1]
    assert np.all(np.abs(t_step[..., normal]) > np.abs(t_step[..., w_row]))
    # frame t is voxel t along the slice axis (the slice axis is never flipped)
    assert geom.slice_axis is not None
    assert np.array_equal(
        volume_to_frames(index, geom)[..., geom.slice_axis], np.indices(geom.frame_shape)[0]
    )


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("n", range(48))
def test_axis_aligned_orientations(n: int, plane: str) -> None:
    direction = ORIENTATIONS[n]
    geom = slice_geometry_from_direction(SHAPE, direction, plane)
    normal = CONVENTION[plane][0]
    assert geom.slice_axis == int(np.argmax(np.abs(direction[normal])))
    assert sorted([geom.slice_axis, geom.row_axis, geom.col_axis]) == [0, 1, 2]
    array = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    frames = volume_to_frames(array, geom)
    assert frames.shape == geom.frame_shape
    back = frames_to_volume(frames, geom)
    assert back.dtype == array.dtype and np.array_equal(back, array)
    _check_display(direction, plane)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_oblique_direction(plane: str) -> None:
    geom = slice_geometry_from_direction(SHAPE, OBLIQUE, plane)
    normal = CONVENTION[plane][0]
    assert geom.slice_axis == int(np.argmax(np.abs(OBLIQUE[normal])))
    array = np.random.default_rng(0).normal(size=(*SHAPE, 2)).astype(np.float32)  # trailing channels too
    back = frames_to_volume(volume_to_frames(array, geom), geom)
    assert np.array_equal(back, array)
    _check_display(OBLIQUE, plane)


LPS = np.eye(3)
RAS = np.diag([-1.0, -1.0, 1.0])
# sagittal acquisition: i -> posterior, j -> inferior, k -> left
SAG = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@pytest.mark.parametrize(
    ("direction", "plane", "expected"),
    [
        # (slice_axis, row_axis, col_axis, flip_rows, flip_cols)
        (LPS, "axial", (2, 1, 0, False, False)),
        (RAS, "axial", (2, 1, 0, True, True)),
        (LPS, "coronal", (1, 2, 0, True, False)),
        (LPS, "sagittal", (0, 2, 1, True, False)),
        (RAS, "sagittal", (0, 2, 1, True, True)),
        (SAG, "auto", (1, 0, 2, False, False)),
        (SAG, "sagittal", (2, 1, 0, False, False)),
        (SAG, "Coronal", (0, 1, 2, False, False)),
    ],
)
def test_known_geometries(direction: np.ndarray, plane: str, expected: tuple) -> None:
    geom = slice_geometry_from_direction(SHAPE, direction, plane)
    assert (geom.slice_axis, geom.row_axis, geom.col_axis, geom.flip_rows, geom.flip_cols) == expected


def test_axial_frames_of_lps_volume_are_transposed_slices() -> None:
    array = np.arange(60).reshape(SHAPE)
    vol = Volume(array, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    geom = slice_geometry(vol)
    assert geom.plane == "axial" and auto_axis(vol) == "axial"
    frames = volume_to_frames(array, geom)
    assert np.array_equal(frames[2], array[:, :, 2].T)
    assert "axial" in geom.describe()


@pytest.mark.parametrize(
    ("shape", "direction", "plane", "frame_shape"),
    [
        ((4, 5, 1), np.eye(3), "axial", (1, 5, 4)),
        ((4, 1, 5), np.eye(3), "coronal", (1, 5, 4)),
        ((1, 4, 5), np.eye(3), "sagittal", (1, 5, 4)),
        ((4, 5, 1), SAG, "sagittal", (1, 5, 4)),  # k -> left: a single sagittal slice
        ((1, 1, 5), np.eye(3), "axial", (5, 1, 1)),  # not a single slice: stays axial
    ],
)
def test_auto_axis_keeps_a_single_slice_whole(
    shape: tuple[int, ...], direction: np.ndarray, plane: str, frame_shape: tuple[int, int, int]
) -> None:
    vol = Volume(np.zeros(shape), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), direction)
    assert auto_axis(vol) == plane
    geom = slice_geometry(vol)
    assert geom.plane == plane and geom.frame_shape == frame_shape


def test_2d_image_is_one_frame() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(4, 3)  # (i, j) = (column, row)
    vol = Volume(array, (0.5, 0.5), (0.0, 0.0), -np.eye(2))
    assert auto_axis(vol) == "image"
    for axis in ("auto", "axial", "sagittal"):
        geom = slice_geometry(vol, axis)
        assert geom.plane == "image" and geom.frame_shape == (1, 3, 4)
        frames = volume_to_frames(array, geom)
        assert np.array_equal(frames[0], array.T)
        assert np.array_equal(frames_to_volume(frames, geom), array)
    rgb = np.random.default_rng(1).integers(0, 255, (4, 3, 3), dtype=np.uint8)
    assert np.array_equal(frames_to_volume(volume_to_frames(rgb, geom), geom), rgb)


@pytest.mark.parametrize(
    ("shape", "direction", "axis", "needle"),
    [
        (SHAPE, np.eye(3), "transverse", "axis"),
        (SHAPE, np.eye(3), "", "axis"),
        (SHAPE, np.eye(3), "image", "axis"),
        ((4, 3), np.eye(2), "oblique", "axis"),
        (SHAPE, np.zeros((3, 3)), "axial", "singular"),
        (SHAPE, np.eye(2), "axial", "direction"),
        (SHAPE, np.full((3, 3), np.nan), "axial", "direction"),
        ((2, 3, 4, 5), np.eye(4), "axial", "shape"),
    ],
)
def test_geometry_errors(shape: tuple, direction: np.ndarray, axis: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        slice_geometry_from_direction(shape, direction, axis)


def test_shape_mismatch_errors() -> None:
    geom = slice_geometry_from_direction(SHAPE, np.eye(3))
    with pytest.raises(InputError, match="array"):
        volume_to_frames(np.zeros((3, 4, 6)), geom)
    with pytest.raises(InputError, match="frames"):
        frames_to_volume(np.zeros((5, 4, 4)), geom)
