"""segment_volume: geometry of the label volume, prompt kinds, 3D boxes, errors (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam2.errors import InputError, PromptError
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model
from medsam2.types import Volume
from medsam2.volume import VolumeObject, VoxelBox, VoxelPoint, infer_modality, segment_volume


@pytest.fixture(scope="module")
def model() -> Sam2Model:
    torch.manual_seed(0)
    m = Sam2Model(get_preset("tiny")).eval()
    with torch.no_grad():  # random weights, biased to "object present" so masks are not all empty
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return m


def _oblique_volume(shape=(40, 32, 12)) -> Volume:
    rng = np.random.default_rng(0)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])[:, [1, 0, 2]]  # permuted + rotated
    arr = rng.normal(40, 10, shape).astype(np.float32)
    arr[10:30, 8:24, 3:9] += 200
    arr[0, 0, 0] = -1000  # air: looks like CT
    return Volume(arr, (0.7, 0.9, 2.5), (10.0, -20.0, 5.0), direction, source="synthetic.nii.gz")


def test_labels_have_the_input_shape_and_only_given_ids(model: Sam2Model) -> None:
    vol = _oblique_volume()
    objects = [
        VolumeObject(1, "a", boxes=(VoxelBox((10, 8, 6), (29, 23, 6)),)),
        VolumeObject(7, "b", points=(VoxelPoint((20, 16, 5)), VoxelPoint((2, 2, 5), 0))),
    ]
    res = segment_volume(model, vol, objects, memory="fifo")
    assert res.labels.shape == vol.shape and res.labels.dtype == np.uint8
    assert set(np.unique(res.labels)) <= {0, 1, 7}
    assert [o.obj_id for o in res.objects] == [1, 7]
    summary = res.objects[0].to_json()
    assert summary["volume_ml"] == pytest.approx(summary["voxels"] * 0.7 * 0.9 * 2.5 / 1000)
    assert res.window.startswith("abdomen")  # HU-like values without a modality tag -> CT window


def test_mask_prompt_lands_on_the_same_voxels(model: Sam2Model) -> None:
    """A mask prompt is output as given on its slices: the round trip through frames keeps voxels."""
    vol = _oblique_volume()
    mask = np.zeros(vol.shape, np.uint8)
    mask[12:26, 10:22, 4] = 1
    res = segment_volume(model, vol, [VolumeObject(3, masks=(mask,))], memory="fifo")
    k_axis = res.geometry.slice_axis
    assert k_axis == 2
    got = res.labels[:, :, 4] == 3
    assert (got == (mask[:, :, 4] == 1)).mean() > 0.97
    assert res.objects[0].prompted_slices == (4,)


def test_3d_box_bounds_the_object(model: Sam2Model) -> None:
    vol = _oblique_volume()
    res = segment_volume(
        model, vol, [VolumeObject(2, boxes=(VoxelBox((10, 8, 4), (29, 23, 8)),))], memory="fifo"
    )
    present = np.flatnonzero((res.labels == 2).any(axis=(0, 1)))
    assert present.size and present.min() >= 4 and present.max() <= 8
    assert res.objects[0].prompted_slices == (6,)


def test_world_prompt_equals_voxel_prompt(model: Sam2Model) -> None:
    vol = _oblique_volume()
    voxel = (20.0, 16.0, 5.0)
    world = tuple(vol.index_to_world(np.array(voxel)).tolist())
    a = segment_volume(model, vol, [VolumeObject(1, points=(VoxelPoint(voxel),))], memory="fifo")
    b = segment_volume(model, vol, [VolumeObject(1, points=(VoxelPoint(world),), world=True)], memory="fifo")
    assert np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([], "no objects"),
        (
            [
                VolumeObject(1, points=(VoxelPoint((1, 1, 1)),)),
                VolumeObject(1, points=(VoxelPoint((2, 2, 2)),)),
            ],
            "distinct",
        ),
        ([VolumeObject(1, points=(VoxelPoint((100, 1, 1)),))], "point 1"),
        ([VolumeObject(1, points=(VoxelPoint((1, 1, 40)),))], "point 1"),
        ([VolumeObject(1, boxes=(VoxelBox((20, 8, 4), (10, 23, 4)),))], "wrong order"),
        ([VolumeObject(1, masks=(np.zeros((3, 3, 3)),))], "differs from the image"),
        ([VolumeObject(1)], "no prompts"),
    ],
)
def test_bad_prompts(model: Sam2Model, objects: list, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        segment_volume(model, _oblique_volume(), objects)


def test_multicomponent_volume_refused(model: Sam2Model) -> None:
    vol = _oblique_volume()
    rgb = Volume(
        np.repeat(vol.array[..., None], 3, axis=3), vol.spacing, vol.origin, vol.direction, "rgb.nrrd"
    )
    with pytest.raises(InputError, match="rgb.nrrd: has"):
        segment_volume(model, rgb, [VolumeObject(1, points=(VoxelPoint((1, 1, 1)),))])


def test_modality_inference() -> None:
    vol = _oblique_volume()
    assert infer_modality(vol) == "CT"
    mr = Volume(np.abs(vol.array), vol.spacing, vol.origin, vol.direction)
    assert infer_modality(mr) is None
    tagged = Volume(vol.array, vol.spacing, vol.origin, vol.direction, modality="MR")
    assert infer_modality(tagged) == "MR"
