"""Synthetic phantoms: determinism, exact and consistent labels, intensities, geometry, writers, speed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from medsam2.data.phantoms import (
    CELL_LABELS,
    FUNDUS_LABELS,
    LABEL_HU_RANGES,
    PHANTOM_LABELS,
    Phantom,
    cells_set,
    ct_phantom,
    fundus_set,
    mr_phantom,
    write_nnunet_dataset,
    write_nnunet_dataset_2d,
    write_phantom,
)

SHAPE = (48, 40, 16)
SPACING = (1.5, 1.7, 4.0)


@pytest.fixture(scope="module")
def cts() -> dict[int, Phantom]:
    return {seed: ct_phantom(seed=seed) for seed in (0, 1, 2)}


def _interior(mask: np.ndarray) -> np.ndarray:
    """The mask one voxel in from its in-plane edge (the slice axis k is thick)."""
    return ndimage.binary_erosion(mask, np.ones((3, 3, 1), bool))


def _components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, np.ones((3, 3, 3), bool))[1])


def test_same_seed_same_phantom_and_other_seed_differs(cts: dict[int, Phantom]) -> None:
    again = ct_phantom(seed=1)
    assert np.array_equal(again.volume.array, cts[1].volume.array)
    assert np.array_equal(again.label, cts[1].label)
    assert again.lesions == cts[1].lesions
    for other in (0, 2):
        assert not np.array_equal(cts[other].label, cts[1].label)
        liver_a, liver_b = cts[other].mask("liver"), cts[1].mask("liver")
        dice = 2 * (liver_a & liver_b).sum() / (liver_a.sum() + liver_b.sum())
        assert dice < 0.95  # the anatomy itself moves, not only the noise


def test_shapes_dtypes_and_geometry() -> None:
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ph = ct_phantom(SHAPE, SPACING, seed=3, origin=(-10.0, 20.0, 5.5), direction=rot)
    vol = ph.volume
    assert vol.array.shape == ph.label.shape == SHAPE
    assert vol.array.dtype == np.int16 and ph.label.dtype == np.uint8
    assert vol.spacing == SPACING and vol.origin == (-10.0, 20.0, 5.5)
    assert np.array_equal(vol.direction, rot) and vol.modality == "CT"
    assert set(np.unique(ph.label)) <= {0, *PHANTOM_LABELS}
    assert ph.labels == PHANTOM_LABELS and 0 not in ph.labels
    assert vol.array.min() >= -1024 and vol.array.max() <= 3071
    assert ct_phantom(SHAPE, SPACING, dtype="float32").volume.array.dtype == np.float32
    with pytest.raises(dataclasses.FrozenInstanceError):
        ph.seed = 4  # type: ignore[misc]
    with pytest.raises(ValueError, match="orthonormal"):
        ct_phantom(SHAPE, SPACING, direction=np.diag([1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="seed"):
        ct_phantom(SHAPE, SPACING, seed=-1)
    with pytest.raises(KeyError):
        ph.mask("heart")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_present_connected_and_hu_in_range(cts: dict[int, Phantom], seed: int) -> None:
    ph = cts[seed]
    hu = ph.volume.array.astype(np.float64)
    for value, name in PHANTOM_LABELS.items():
        mask = ph.label == value
        assert mask.sum() > 50, name
        if value in LABEL_HU_RANGES:
            lo, hi = LABEL_HU_RANGES[value]
            assert lo <= hu[_interior(mask)].mean() <= hi, name
            assert _components(mask) == 1, name
    air = hu[0, 0, :].mean()
    assert -1030 < air < -970


def test_lesions_contrast_sign_and_size_spread(cts: dict[int, Phantom]) -> None:
    for ph in cts.values():
        comp, n = ndimage.label(ph.mask("lesion"), np.ones((3, 3, 3), bool))
        assert n == len(ph.lesions) == 4
        hu = ph.volume.array.astype(np.float64)
        liver = hu[_interior(ph.mask("liver"))].mean()
        for les in ph.lesions:
            centre = tuple(int(round(c)) for c in les.center)
            assert ph.label[centre] == 5
            mean = hu[comp == comp[centre]].mean()
            assert np.sign(mean - liver) == np.sign(les.contrast_hu), les
            assert abs(mean - liver) > 0.3 * abs(les.contrast_hu), les
        assert {les.kind for les in ph.lesions} == {"hypo", "hyper"}
        radii = [max(les.radii_mm) for les in ph.lesions]
        assert max(radii) > 1.5 * min(radii)


def test_vessels_are_thin_tubes(cts: dict[int, Phantom]) -> None:
    skeletonize = pytest.importorskip("skimage.morphology").skeletonize
    ph = cts[0]
    sp = np.asarray(ph.volume.spacing)
    for name in ("aorta", "liver_vessels"):
        mask = ph.mask(name)
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        radius = ndimage.distance_transform_edt(mask[box], sampling=sp).max()  # mm
        length = skeletonize(mask[box]).sum() * sp.min()  # a lower bound in mm
        assert length > 8 * radius, (name, length, radius)
        assert radius < 8.0, name


def test_mr_shares_anatomy_and_has_mr_contrast(cts: dict[int, Phantom]) -> None:
    t1, t2 = mr_phantom(seed=0), mr_phantom(seed=0, weighting="T2")
    assert np.array_equal(t1.label, cts[0].label) and t1.lesions == cts[0].lesions
    for ph in (t1, t2):
        arr = ph.volume.array
        assert arr.dtype == np.float32 and arr.min() >= 0 and ph.volume.modality == "MR"
        liver = arr[_interior(ph.mask("liver"))].mean()
        comp, _ = ndimage.label(ph.mask("lesion"), np.ones((3, 3, 3), bool))
        sign = 1 if ph.volume.metadata["weighting"] == "T1" else -1
        for les in ph.lesions:
            mean = arr[comp == comp[tuple(int(round(c)) for c in les.center)]].mean()
            assert np.sign(mean - liver) == sign * np.sign(les.contrast_hu)
    fat = t1.volume.array[ph.label == 0]
    assert np.percentile(fat, 90) > t1.volume.array[_interior(t1.mask("liver"))].mean()  # fat is bright on T1
    assert np.array_equal(
        mr_phantom(SHAPE, SPACING, seed=5).volume.array, mr_phantom(SHAPE, SPACING, seed=5).volume.array
    )
    no_bias = mr_phantom(seed=0, bias=0.0, noise=0.0)
    ratio = t1.volume.array[_interior(t1.mask("liver"))] / no_bias.volume.array[_interior(t1.mask("liver"))]
    assert ratio.std() > 0.02  # a smooth bias field modulates the signal


def test_other_shapes_and_lesion_count() -> None:
    ph = ct_phantom(SHAPE, SPACING, seed=7, n_lesions=2)
    assert set(np.unique(ph.label)) >= {1, 6, 8}
    assert len(ph.lesions) <= 2
    none = ct_phantom(SHAPE, SPACING, seed=7, n_lesions=0)
    assert not none.mask("lesion").any()
    same_liver = (none.label == 1) | (none.label == 5)
    assert np.array_equal(same_liver, (ph.label == 1) | (ph.label == 5))  # lesions do not move organs


def test_fundus_set() -> None:
    images = fundus_set(4, size=(128, 160), seed=2)
    assert [s.image.tobytes() for s in fundus_set(2, size=(128, 160), seed=2)] == [
        s.image.tobytes() for s in images[:2]
    ]
    assert not np.array_equal(images[0].image, fundus_set(1, size=(128, 160), seed=3)[0].image)
    centres = []
    for image, label in images:
        assert image.shape == (128, 160, 3) and image.dtype == np.uint8 and label.shape == (128, 160)
        assert set(np.unique(label)) == {0, *FUNDUS_LABELS}
        disc, cup = label >= 1, label == 2
        assert not (cup & ~ndimage.binary_erosion(disc)).any()  # the cup lies strictly inside the disc
        assert _components(disc[..., None]) == 1
        grey = image.astype(np.float64).mean(axis=2)
        retina = grey[(label == 0) & (grey > 20)]
        assert grey[label == 1].mean() > retina.mean() + 30  # bright disc
        assert grey[cup].mean() > grey[label == 1].mean()  # paler cup
        assert image[0, 0].max() < 15  # black outside the circular field
        centres.append(ndimage.center_of_mass(disc))
    assert np.ptp(np.array(centres)[:, 1]) > 10


def test_cells_set() -> None:
    sem = cells_set(3, size=(96, 128), seed=1)
    inst = cells_set(3, size=(96, 128), seed=1, instance=True)
    for (image, label), (image_i, label_i) in zip(sem, inst, strict=True):
        assert image.shape == label.shape == (96, 128) and image.dtype == label.dtype == np.uint8
        assert np.array_equal(image, image_i) and np.array_equal(label, label_i > 0)
        assert set(np.unique(label)) == {0, *CELL_LABELS}
        n = int(label_i.max())
        assert n >= 3 and set(np.unique(label_i)) == set(range(n + 1))
        assert image[label == 1].mean() > image[label == 0].mean() + 40


def _read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def test_write_phantom_and_nnunet_dataset(tmp_path: Path) -> None:
    rot = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    cases = {
        f"case_{s}": ct_phantom(SHAPE, SPACING, seed=s, origin=(1.0, -2.0, 3.0), direction=rot)
        for s in (0, 1)
    }
    folder = write_nnunet_dataset(tmp_path, cases, "Phantoms", dataset_id=42)
    assert folder == tmp_path / "Dataset042_Phantoms"
    meta = json.loads((folder / "dataset.json").read_text())
    assert (
        meta["channel_names"] == {"0": "CT"} and meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
    )
    assert meta["labels"] == {"background": 0, **{n: v for v, n in PHANTOM_LABELS.items()}}
    for cid, ph in cases.items():
        for path, array in (
            (folder / "imagesTr" / f"{cid}_0000.nii.gz", ph.volume.array),
            (folder / "labelsTr" / f"{cid}.nii.gz", ph.label),
        ):
            img = _read(path)
            assert np.array_equal(sitk.GetArrayFromImage(img).T, array)
            assert np.allclose(img.GetSpacing(), ph.volume.spacing) and np.allclose(
                img.GetOrigin(), (1.0, -2.0, 3.0), atol=1e-4
            )
            assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), rot, atol=1e-5)
    with pytest.raises(FileExistsError):
        write_nnunet_dataset(tmp_path, cases, "Phantoms", dataset_id=42)
    write_nnunet_dataset(tmp_path, list(cases.values())[:1], "Phantoms", dataset_id=42, overwrite=True)
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["Phantoms_000.nii.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset042_Phantoms"]
    mr = mr_phantom(SHAPE, SPACING, weighting="T2")
    write_phantom(mr, tmp_path / "t2.nrrd", tmp_path / "t2_label.nrrd")
    assert np.array_equal(sitk.GetArrayFromImage(_read(tmp_path / "t2.nrrd")).T, mr.volume.array)


def test_failed_dataset_write_leaves_nothing(tmp_path: Path) -> None:
    good = ct_phantom(SHAPE, SPACING)
    broken = dataclasses.replace(good, label=good.label[:, :, :-1])
    with pytest.raises(ValueError, match="label shape"):
        write_nnunet_dataset(tmp_path, [good, broken], "Broken", dataset_id=7)
    with pytest.raises(ValueError, match="label table or channel"):
        write_nnunet_dataset(tmp_path, [good, mr_phantom(SHAPE, SPACING)], "Mixed", dataset_id=8)
    assert list(tmp_path.iterdir()) == []


def test_nnunet_2d_datasets(tmp_path: Path) -> None:
    fundus = fundus_set(2, size=(64, 80), seed=0)
    folder = write_nnunet_dataset_2d(tmp_path, fundus, "Fundus", FUNDUS_LABELS, dataset_id=120)
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"} and meta["file_ending"] == ".png"
    assert meta["labels"] == {"background": 0, "optic_disc": 1, "optic_cup": 2} and meta["numTraining"] == 2
    assert np.array_equal(
        np.asarray(Image.open(folder / "imagesTr" / "Fundus_001_0000.png")), fundus[1].image
    )
    assert np.array_equal(
        sitk.GetArrayFromImage(_read(folder / "labelsTr" / "Fundus_001.png")), fundus[1].label
    )
    cells = cells_set(2, size=(64, 64), seed=0)
    folder = write_nnunet_dataset_2d(tmp_path, cells, "Cells", CELL_LABELS, dataset_id=121)
    assert json.loads((folder / "dataset.json").read_text())["channel_names"] == {"0": "grey"}
    assert np.array_equal(np.asarray(Image.open(folder / "imagesTr" / "Cells_000_0000.png")), cells[0].image)
    with pytest.raises(ValueError, match="values"):
        write_nnunet_dataset_2d(tmp_path, fundus, "Bad", CELL_LABELS, dataset_id=122)
