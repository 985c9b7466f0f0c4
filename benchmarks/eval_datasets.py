"""Real labelled data that ships offline, as nnU-Net datasets for ``medsam2 evaluate``.

* ``Dataset951_MNI152``: nilearn's MNI152 2009a T1 template (197x233x189, 1 mm) with labels
  grey matter = 1 (GM probability > 0.5 and >= WM's) and white matter = 2 (WM > 0.5 and > GM).
* ``Dataset952_Nuclei2D``: stardist's ``img2d.tif`` (512x512, 16-bit fluorescence nuclei) cut into
  16 tiles of 128x128 (case ``tile_RC``, row R, column C), label nuclei = 1 (``mask2d.tif`` > 0).
* ``Dataset953_CTPhantoms``: held-out CT phantoms (seeds 9000-9005) for segment-batch runs.

pydicom-data's ``liver.dcm`` SEG is not usable: the 3 CT instances it references are shipped by
no installed package (only the SEG files carry its study UID), so there is no image to prompt.

    python benchmarks/eval_datasets.py OUT_DIR
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def _package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed (make test installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def _dataset_json(root: Path, channel: str, labels: dict[str, int], n: int, ending: str) -> None:
    meta = {"channel_names": {"0": channel}, "labels": labels, "numTraining": n, "file_ending": ending}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))


def mni152(out: Path) -> Path:
    base = _package("nilearn") / "datasets" / "data"
    root = out / "Dataset951_MNI152"
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    t1 = sitk.ReadImage(str(base / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))
    gm = sitk.GetArrayFromImage(
        sitk.ReadImage(str(base / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"))
    )
    wm = sitk.GetArrayFromImage(
        sitk.ReadImage(str(base / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"))
    )
    values = np.where((wm > 0.5) & (wm > gm), 2, np.where((gm > 0.5) & (gm >= wm), 1, 0))
    label = sitk.GetImageFromArray(values.astype(np.uint8))
    label.CopyInformation(t1)
    sitk.WriteImage(t1, str(root / "imagesTr" / "mni152_0000.nii.gz"))
    sitk.WriteImage(label, str(root / "labelsTr" / "mni152.nii.gz"))
    _dataset_json(root, "MRI", {"background": 0, "grey_matter": 1, "white_matter": 2}, 1, ".nii.gz")
    return root


def nuclei(out: Path, tiles: int = 4) -> Path:
    import tifffile

    base = _package("stardist") / "data" / "images"
    image, mask = tifffile.imread(base / "img2d.tif"), tifffile.imread(base / "mask2d.tif")
    root = out / "Dataset952_Nuclei2D"
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    size = image.shape[0] // tiles
    for r in range(tiles):
        for c in range(tiles):
            win = (slice(r * size, (r + 1) * size), slice(c * size, (c + 1) * size))
            name = f"tile_{r}{c}"
            sitk.WriteImage(
                sitk.GetImageFromArray(image[win].astype(np.uint16)),
                str(root / "imagesTr" / f"{name}_0000.png"),
            )
            sitk.WriteImage(
                sitk.GetImageFromArray((mask[win] > 0).astype(np.uint8)),
                str(root / "labelsTr" / f"{name}.png"),
            )
    _dataset_json(root, "fluorescence", {"background": 0, "nuclei": 1}, tiles * tiles, ".png")
    return root


def phantoms(out: Path, seeds: range = range(9000, 9006)) -> Path:
    from medsam2.data.phantoms import ct_phantom
    from medsam2.data.phantoms_io import write_nnunet_dataset

    cases = {f"ct_{s}": ct_phantom(seed=s) for s in seeds}
    return write_nnunet_dataset(out, cases, name="CTPhantoms", dataset_id=953, overwrite=True)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "out/eval_data")
    for make in (mni152, nuclei, phantoms):
        print(make(target))
