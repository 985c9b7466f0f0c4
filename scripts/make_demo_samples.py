"""Write the real demo sample shipped in medsam2/assets: nilearn's MNI152 T1 template at 2 mm with
its tissue labels (1 CSF = brain - GM - WM, 2 grey matter, 3 white matter).

    python scripts/make_demo_samples.py          # needs nilearn (a dev extra)

The template is the ICBM 2009a nonlinear symmetric average (Fonov et al., NeuroImage 2009/2011);
its licence (copyright notice kept in medsam2/assets/MNI152_LICENSE.txt) allows redistribution.
The labels follow ``medsam2.data.synth.sources.mni_tissue_labels`` (the rule training uses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medsam2.data.synth.sources import mni_tissue_labels

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "medsam2" / "assets"


def _resample(img: sitk.Image, spacing: float, nearest: bool) -> sitk.Image:
    size = [int(round(n * s / spacing)) for n, s in zip(img.GetSize(), img.GetSpacing(), strict=True)]
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(
        img, size, sitk.Transform(), interp, img.GetOrigin(), [spacing] * 3, img.GetDirection()
    )


def main() -> None:
    import nilearn

    base = Path(nilearn.__file__).parent / "datasets" / "data"
    read = {
        k: sitk.ReadImage(str(base / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz"))
        for k in ("t1", "gm", "wm")
    }
    arr = {k: sitk.GetArrayFromImage(v).astype(np.float32) for k, v in read.items()}
    labels = mni_tissue_labels(arr["t1"], arr["gm"], arr["wm"]).astype(np.uint8)  # 1 CSF, 2 GM, 3 WM
    lab = sitk.GetImageFromArray(labels)
    lab.CopyInformation(read["t1"])
    t1 = _resample(sitk.Cast(read["t1"], sitk.sitkFloat32), 2.0, nearest=False)
    sitk.WriteImage(sitk.Cast(sitk.Round(t1), sitk.sitkUInt8), str(ASSETS / "mni152_t1_2mm.nii.gz"), True)
    sitk.WriteImage(_resample(lab, 2.0, nearest=True), str(ASSETS / "mni152_tissues_2mm.nii.gz"), True)


if __name__ == "__main__":
    main()
