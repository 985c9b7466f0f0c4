"""Prompt coordinates: voxel / world -> frame (t, x, y) and back, boxes, and the errors users see."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medsam2.errors import PromptError
from medsam2.preprocessing import (
    FrameBox,
    FramePoint,
    box_to_frame,
    check_frame_box,
    check_frame_point,
    frame_box_to_index,
    frame_point_to_index,
    frame_point_to_world,
    frame_to_index,
    index_to_frame,
    point_to_frame,
    slice_geometry,
    volume_to_frames,
)
from medsam2.types import Volume


def _signed_permutations() -> list[np.ndarray]:
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[list(perm), [0, 1, 2]] = signs  # column d = world direction of index axis d
            mats.append(m)
    return mats


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _same(a: FramePoint | FrameBox, b: FramePoint | FrameBox) -> bool:
    """Equal frames / ranges and coordinates within 1e-9 (world conversions are not exact)."""
    fa, fb = vars(a), vars(b)
    return all(fa[k] == fb[k] if isinstance(fa[k], (int, tuple)) else abs(fa[k] - fb[k]) < 1e-9 for k in fa)


ORIENTATIONS = _signed_permutations()
OBLIQUE = _rotation(0.3, -0.2, 0.25) @ ORIENTATIONS[19]  # oblique, storage order not (x, y, z)

SHAPE = (5, 6, 7)
SPACING = (0.8, 1.1, 3.5)
ORIGIN = (-100.0, 40.0, 20.0)


def _volume(direction: np.ndarray, shape: tuple[int, ...] = SHAPE) -> Volume:
    array = np.arange(int(np.prod(shape))).reshape(shape)
    return Volume(array, SPACING[: len(shape)], ORIGIN[: len(shape)], direction)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("n", range(48))
def test_voxel_frame_voxel_identity_all_orientations(n: int, plane: str) -> None:
    vol = _volume(ORIENTATIONS[n])
    geom = slice_geometry(vol, plane)
    if plane == "axial":
        assert geom.slice_axis == int(np.argmax(np.abs(ORIENTATIONS[n][2])))  # nearest to world z
    frames = volume_to_frames(vol.array, geom)
    for voxel in np.ndindex(*SHAPE):
        p = point_to_frame(voxel, geom)
        assert frames[p.t, int(p.y), int(p.x)] == vol.array[voxel]  # the frame pixel is that voxel
        assert tuple(frame_point_to_index(p, geom)) == voxel
    corner = (4, 0, 6)
    world = vol.index_to_world(np.array(corner, float))
    assert _same(point_to_frame(world, geom, volume=vol, world=True), point_to_frame(corner, geom))


def test_oblique_anisotropic_world_points() -> None:
    vol = _volume(OBLIQUE)
    geom = slice_geometry(vol, "axial")
    voxel = (3, 2, 4)
    centre = vol.index_to_world(np.array(voxel, float))
    by_voxel = point_to_frame(voxel, geom)
    by_world = point_to_frame(centre, geom, volume=vol, world=True)
    assert by_world.t == by_voxel.t
    assert by_world.x == pytest.approx(by_voxel.x, abs=1e-9) and by_world.y == pytest.approx(
        by_voxel.y, abs=1e-9
    )
    np.testing.assert_allclose(frame_point_to_world(by_world, geom, vol), centre, atol=1e-6)
    # a point a little off the voxel centre (less than half a voxel) still lands on that voxel
    offset = vol.index_to_world(np.array(voxel) + np.array([0.3, -0.4, 0.45]))
    p = point_to_frame(offset, geom, volume=vol, world=True)
    assert tuple(np.rint(frame_point_to_index(p, geom)).astype(int)) == voxel
    frames = volume_to_frames(vol.array, geom)
    assert frames[p.t, round(p.y), round(p.x)] == vol.array[voxel]


def test_continuous_round_trip() -> None:
    vol = _volume(OBLIQUE)
    for plane in ("axial", "coronal", "sagittal"):
        geom = slice_geometry(vol, plane)
        idx = np.random.default_rng(0).uniform(-0.5, 4.5, size=(50, 3))
        np.testing.assert_allclose(frame_to_index(index_to_frame(idx, geom), geom), idx, atol=1e-12)
        world = vol.index_to_world(idx)
        np.testing.assert_allclose(vol.index_to_world(vol.world_to_index(world)), world, atol=1e-6)


RAS = np.diag([-1.0, -1.0, 1.0])


@pytest.mark.parametrize(
    ("direction", "c0", "c1", "expected"),
    [
        # LPS axial: rows j, cols i, no flips; corners on one slice -> box on that slice
        (np.eye(3), (1, 2, 3), (4, 5, 3), FrameBox(3, 1, 2, 4, 5, (3, 3))),
        # 3D box: middle slice (2 + 6) // 2 = 4, projected in-plane box, span kept
        (np.eye(3), (1, 2, 2), (4, 5, 6), FrameBox(4, 1, 2, 4, 5, (2, 6))),
        ((np.eye(3)), (0, 0, 1), (4, 5, 4), FrameBox(2, 0, 0, 4, 5, (1, 4))),
        # RAS storage: both in-plane axes flipped; the frame box comes out ordered
        (RAS, (1, 2, 3), (4, 5, 3), FrameBox(3, 0, 0, 3, 3, (3, 3))),
    ],
)
def test_boxes(direction: np.ndarray, c0: tuple, c1: tuple, expected: FrameBox) -> None:
    vol = _volume(direction)
    geom = slice_geometry(vol)
    box = box_to_frame(c0, c1, geom)
    assert box == expected
    lo, hi = frame_box_to_index(box, geom)
    assert tuple(lo[:2]) == c0[:2] and tuple(hi[:2]) == c1[:2] and lo[2] == hi[2] == box.t


def test_world_box_corners_are_ordered_in_voxel_space() -> None:
    vol = _volume(RAS)
    geom = slice_geometry(vol)
    w0, w1 = vol.index_to_world(np.array([1.0, 2.0, 1.0])), vol.index_to_world(np.array([4.0, 5.0, 3.0]))
    # in RAS storage the low voxel corner has the larger world x and y: world order is not voxel order
    assert w0[0] > w1[0]
    box = box_to_frame(w0, w1, geom, volume=vol, world=True)
    assert _same(box, box_to_frame((1, 2, 1), (4, 5, 3), geom))
    assert _same(box_to_frame(w1, w0, geom, volume=vol, world=True), box)


@pytest.mark.parametrize(
    ("point", "needles"),
    [
        ((5, 0, 0), ["point", "index i", "0..4"]),
        ((0, -1, 0), ["index j", "0..5"]),
        ((0, 0, 7), ["slice axis", "0..6", "(5, 6, 7)"]),
        ((1, 2), ["3 coordinates"]),
        ((1, 2, float("nan")), ["finite"]),
        ("abc", ["point"]),
    ],
)
def test_point_errors(point: object, needles: list[str]) -> None:
    geom = slice_geometry(_volume(np.eye(3)))
    with pytest.raises(PromptError) as err:
        point_to_frame(point, geom)  # type: ignore[arg-type]
    for needle in needles:
        assert needle in str(err.value)


def test_world_point_errors() -> None:
    vol = _volume(OBLIQUE)
    geom = slice_geometry(vol)
    with pytest.raises(PromptError, match="world"):
        point_to_frame((0.0, 0.0, 0.0), geom, world=True)  # no volume given
    far = vol.index_to_world(np.array([2.0, 2.0, 30.0]))
    with pytest.raises(PromptError, match=r"seed: world .* mm = voxel .* outside the image"):
        point_to_frame(far, geom, volume=vol, world=True, name="seed")


@pytest.mark.parametrize(
    ("c0", "c1", "needles"),
    [
        ((4, 2, 3), (1, 5, 3), ["box", "wrong order", "i1 = 1 < i0 = 4"]),
        ((1, 2, 5), (4, 5, 3), ["k1 = 3 < k0 = 5"]),
        ((1, 2, 3), (4, 6, 3), ["box corner 2", "index j", "0..5"]),
        ((1, 2, -2), (4, 5, 3), ["box corner 1", "slice axis"]),
    ],
)
def test_box_errors(c0: tuple, c1: tuple, needles: list[str]) -> None:
    geom = slice_geometry(_volume(np.eye(3)))
    with pytest.raises(PromptError) as err:
        box_to_frame(c0, c1, geom)
    for needle in needles:
        assert needle in str(err.value)


def test_frame_space_checks() -> None:
    shape = (7, 6, 5)  # (T, H, W)
    check_frame_point(FramePoint(6, 4, 5), shape)
    with pytest.raises(PromptError, match=r"frame 7 does not exist \(frames 0..6\)"):
        check_frame_point(FramePoint(7, 0, 0), shape)
    with pytest.raises(PromptError, match=r"click: x = 5 is outside the frame \(x in 0..4\)"):
        check_frame_point(FramePoint(0, 5, 0), shape, "click")
    with pytest.raises(PromptError, match="wrong order"):
        check_frame_box(FrameBox(0, 3, 0, 1, 2, (0, 0)), shape)
    with pytest.raises(PromptError, match="frame range"):
        check_frame_box(FrameBox(0, 0, 0, 1, 2, (1, 3)), shape)
    geom = slice_geometry(_volume(np.eye(3)))
    with pytest.raises(PromptError, match="frame 9 does not exist"):
        frame_point_to_index(FramePoint(9, 0, 0), geom)


def test_2d_image_prompts() -> None:
    vol = _volume(np.eye(2), (4, 3))  # (i, j) = (column, row)
    geom = slice_geometry(vol)
    assert point_to_frame((3, 1), geom) == FramePoint(0, 3.0, 1.0)
    assert box_to_frame((0, 0), (3, 2), geom) == FrameBox(0, 0, 0, 3, 2, (0, 0))
    world = vol.index_to_world(np.array([2.0, 1.0]))
    assert _same(point_to_frame(world, geom, volume=vol, world=True), FramePoint(0, 2.0, 1.0))
    np.testing.assert_allclose(frame_point_to_world(FramePoint(0, 2.0, 1.0), geom, vol), world)
    with pytest.raises(PromptError, match="2 coordinates"):
        point_to_frame((1, 1, 0), geom)
