"""Where synthetic training cases come from: label maps to be painted, and real images to be cut up.

Label-map sources (intensities are synthesised later, :mod:`.appearance`):

* ``phantom``: the tissue map of a CT/MR phantom anatomy (18 tissues + lesions), seeds 0-199
  (quality figures use seeds >= 8000);
* ``brain``: nilearn's MNI152 tissue maps (grey matter, white matter, CSF = brain - GM - WM) plus
  envelope shells (outer CSF, skull, scalp) of random thickness around the skull-stripped brain;
* ``blobs``: random smooth shapes: the argmax of smooth noise fields, with warped ellipsoids on top.

Real-intensity sources (labels = supervoxels / superpixels of the image itself, as ScribblePrompt
did): ``real3d`` (SLIC supervoxels of small real MR volumes shipped in nibabel's and dipy's test
data) and ``real2d`` (Felzenszwalb superpixels of scikit-image's sample photographs and dipy's T1
slice, made into pseudo-volumes by :func:`~.slab.sample_slab`).

Held out, never used here: pydicom's and pydicom-data's CT/MR, stardist's nuclei, scikit-image's
retina (fundus), and the MNI152 *image* intensities (its label maps are used, painted at random).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from scipy import ndimage

from medsam2.data.synth.slab import Source, smooth_field
from medsam2.errors import InputError
from medsam2.preprocessing.intensity import percentile_normalize

__all__ = [
    "phantom_source",
    "rendered_phantom_source",
    "brain_source",
    "blob_source",
    "real3d_sources",
    "real2d_sources",
    "SHELLS",
]

# MNI label values; shells are painted per case from the distance to the brain
CSF, GM, WM = 1, 2, 3
SHELLS = (4, 5, 6)  # outer CSF, skull, scalp


def _site(package: str) -> Path:
    try:
        mod = __import__(package)
    except ImportError:
        raise InputError(
            f"synthetic training data needs the '{package}' package (pip install 'medical-sam2[dev]')"
        ) from None
    assert mod.__file__ is not None
    return Path(mod.__file__).parent


def phantom_source(seed: int) -> Source:
    """The tissue map of phantom anatomy ``seed`` (128 x 128 x 64 voxels of 0.8 x 0.8 x 2.5 mm)."""
    from medsam2.data.phantoms import generate_anatomy
    from medsam2.data.phantoms_labels import LESION_TISSUE_BASE, Tissue

    spacing = (0.8, 0.8, 2.5)
    anatomy = generate_anatomy((128, 128, 64), spacing, seed, int(seed % 5))
    tissue = anatomy.tissue.astype(np.int16)
    lesions = tuple(int(v) for v in np.unique(tissue) if v >= LESION_TISSUE_BASE)
    groups = {
        "body": tuple(int(v) for v in np.unique(tissue) if v != 0),
        "kidney": (int(Tissue.KIDNEY_CORTEX), int(Tissue.KIDNEY_MEDULLA)),
        "liver": (int(Tissue.LIVER), int(Tissue.LIVER_VESSEL), *lesions),
        "vertebra": (int(Tissue.BONE_CORTICAL), int(Tissue.BONE_CANCELLOUS)),
        "bowel": (int(Tissue.BOWEL_WALL), int(Tissue.BOWEL_FLUID), int(Tissue.BOWEL_GAS)),
    }
    return Source(f"phantom{seed}", tissue, spacing, groups=groups)


def rendered_phantom_source(seed: int, weighting: str) -> Source:
    """A rendered CT (abdomen window) or MR (percentiles) phantom with its organ labels: the
    phantoms' own appearance, so what the earlier embedded models learned is kept."""
    from medsam2.data.phantoms import ct_phantom, mr_phantom
    from medsam2.preprocessing import normalize_intensity

    ph = ct_phantom(seed=seed) if weighting == "CT" else mr_phantom(seed=seed, weighting=weighting)
    modality = "CT" if weighting == "CT" else "MR"
    image = normalize_intensity(ph.volume.array, modality, None).astype(np.float32)
    groups = {"kidneys": (2, 3), "liver": (1, 5, 7)}
    return Source(
        f"{weighting}phantom{seed}", ph.label.astype(np.int16), (0.8, 0.8, 2.5), image=image, groups=groups
    )


def mni_tissue_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """MNI152 tissue labels (int16) from its T1 and GM/WM probability maps (0-255, same grid):
    the brain is the filled T1 > 20 region (the template is skull-stripped), CSF = brain - GM - WM,
    GM / WM where their probability is >= 0.5, WM where WM >= GM."""
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 20, iterations=2))
    labels = np.zeros(brain.shape, np.int16)
    labels[brain] = CSF
    labels[brain & (gm >= 127)] = GM
    labels[brain & (wm >= 127) & (wm >= gm)] = WM
    return labels


@functools.lru_cache(maxsize=1)
def brain_source() -> Source:
    """MNI152 tissue maps at 1.5 mm with the distance (mm) outside the brain for the shells."""
    import SimpleITK as sitk

    base = _site("nilearn") / "datasets" / "data"
    maps = {}
    for key in ("t1", "gm", "wm"):
        img = sitk.ReadImage(
            str(base / f"mni_icbm152_{key}_tal_nlin_sym_09a_converted.nii.gz"), sitk.sitkFloat32
        )
        maps[key] = ndimage.zoom(sitk.GetArrayFromImage(img), 1 / 1.5, order=1)
    labels = mni_tissue_labels(maps["t1"], maps["gm"], maps["wm"])
    dist = ndimage.distance_transform_edt(labels == 0, sampling=1.5).astype(np.float32)
    groups = {"brain": (CSF, GM, WM), "parenchyma": (GM, WM), "head": (CSF, GM, WM, *SHELLS)}
    # array order (z, y, x) from SimpleITK; spacing 1.5 mm each way
    return Source("mni152", labels, (1.5, 1.5, 1.5), groups=groups, extra={"outside_mm": dist})


def paint_shells(labels: np.ndarray, outside_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add outer-CSF / skull / scalp layers of random thickness (mm) around the brain."""
    out = labels.copy()
    edges = np.cumsum([rng.uniform(0.5, 3.0), rng.uniform(3.0, 8.0), rng.uniform(2.0, 7.0)])
    inner = 0.0
    for value, edge in zip(SHELLS, edges, strict=True):
        out[(labels == 0) & (outside_mm > inner) & (outside_mm <= edge)] = value
        inner = float(edge)
    return out


def blob_source(rng: np.random.Generator) -> Source:
    """Random smooth regions (argmax of smooth noise) with 1-4 warped ellipsoids on top, 48 x 48 x 32."""
    shape = (48, 48, 32)
    k = int(rng.integers(2, 7))
    fields = np.stack([smooth_field(rng, shape, (4, 4, 3), 1.0) for _ in range(k)])
    labels = np.argmax(fields, axis=0).astype(np.int16)
    if rng.random() < 0.5:  # a background: the body is a smooth blob inside the box
        body = (
            smooth_field(rng, shape, (3, 3, 3), 0.6)
            + _ellipsoid(shape, np.array(shape) / 2, np.array(shape) * 0.4)
            > 0.5
        )
        labels = np.where(body, labels + 1, 0).astype(np.int16)
    n = int(labels.max())
    for _ in range(int(rng.integers(1, 5))):
        centre = rng.uniform(0.2, 0.8, 3) * np.array(shape)
        radii = rng.uniform(2, 10, 3)
        inside = _ellipsoid(shape, centre, radii) + smooth_field(rng, shape, (4, 4, 3), 0.25) > 1.0
        n += 1
        labels[inside] = n
    return Source("blobs", labels, (1.0, 1.0, 1.0))


def shapes_source(rng: np.random.Generator) -> Source:
    """2-6 separate primitives (ellipsoids, cuboids, lumpy blobs), 2-25 % of the field in radius,
    on an empty or body-like background, 96 x 96 x 48 at 1 mm: small and large objects with clean
    edges, so that "segment what the box holds" is learnable at every size and polarity."""
    shape = (96, 96, 48)
    labels = np.zeros(shape, np.int16)
    if rng.random() < 0.5:  # a body the objects sit in (its own label: painted like tissue)
        labels[_ellipsoid(shape, np.array(shape) / 2, np.array(shape) * rng.uniform(0.35, 0.55)) > 1] = 1
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    for _ in range(int(rng.integers(2, 7))):
        radii = np.exp(rng.uniform(np.log(2.0), np.log(24.0))) * rng.uniform(0.6, 1.6, 3)
        centre = rng.uniform(0.15, 0.85, 3) * np.array(shape)
        kind = rng.integers(3)
        if kind == 0:
            inside = _ellipsoid(shape, centre, radii) > 1.0
        elif kind == 1:
            gx, gy, gz = (np.abs(g - c) <= r for g, c, r in zip(grids, centre, radii, strict=True))
            inside = gx & gy & gz
        else:
            bumps = smooth_field(rng, shape, (6, 6, 4), 0.35)
            inside = _ellipsoid(shape, centre, radii) + bumps > 1.0
        labels[inside] = int(labels.max()) + 1
    return Source("shapes", labels, (1.0, 1.0, 1.0))


def _ellipsoid(shape: tuple[int, ...], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """1 at the surface of the ellipsoid, > 1 inside: 1 + (1 - normalised squared radius)."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))
    return (2.0 - r2).astype(np.float32)


@functools.lru_cache(maxsize=1)
def real3d_sources() -> tuple[Source, ...]:
    """Small real MR volumes (nibabel/dipy test data) with SLIC supervoxels inside the head."""
    import nibabel as nib
    from skimage.segmentation import slic

    files = [
        (_site("nibabel") / "tests" / "data" / "example4d.nii.gz", (2.0, 2.0, 2.2)),
        (_site("dipy") / "data" / "files" / "S0_10slices.nii.gz", (2.0, 2.0, 6.0)),
        (_site("dipy") / "data" / "files" / "aniso_vox.nii.gz", (4.0, 4.0, 5.0)),
    ]
    out = []
    for path, spacing in files:
        data = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float32)  # type: ignore[attr-defined]
        data = data[..., 0] if data.ndim == 4 else data
        image = percentile_normalize(data)
        mask = ndimage.binary_fill_holes(image > 0.1)
        for n in (12, 40):
            sv = slic(image, n_segments=n, compactness=0.1, mask=mask, spacing=spacing, channel_axis=None)
            out.append(Source(f"{path.name}/slic{n}", sv.astype(np.int16), spacing, image=image, axes=(2,)))
    return tuple(out)


REAL2D = (
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "cell",
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
)


@functools.lru_cache(maxsize=1)
def real2d_sources() -> tuple[Source, ...]:
    """Sample photographs (scikit-image) and a real T1 slice (dipy) with Felzenszwalb superpixels."""
    from skimage import color, data
    from skimage.segmentation import felzenszwalb
    from skimage.transform import resize

    images = []
    for name in REAL2D:
        img = np.asarray(getattr(data, name)(), dtype=np.float32)
        images.append((name, color.rgb2gray(img[..., :3]) if img.ndim == 3 else img))
    images.append(("t1_coronal_slice", np.load(_site("dipy") / "data" / "files" / "t1_coronal_slice.npy")))
    out = []
    for name, img in images:
        scale = 256 / max(img.shape)
        small = percentile_normalize(
            resize(img, (round(img.shape[0] * scale), round(img.shape[1] * scale)), anti_aliasing=True)
        )
        for k in (100, 400):
            sp = felzenszwalb(small, scale=k, sigma=0.8, min_size=40)
            out.append(
                Source(
                    f"{name}/fz{k}",
                    (sp + 1).astype(np.int16)[:, :, None],
                    (1.0, 1.0, 1.0),
                    image=small[:, :, None],
                )
            )
    return tuple(out)
