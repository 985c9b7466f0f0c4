"""Held-out 2D One-Prompt studies and the DICOM SEG liver check of benchmarks/quality.py.

One-Prompt 2D: a set of images and one semantic target per image. The first k images (k = 1, 2,
4) are prompted; Dice is scored on the SAME images for every k (those after the largest k), next
to ``prompt-copy`` (a prompted image's true mask copied onto each scored image; with k prompted
images, the mean over the k copies).

* stardist nuclei (real fluorescence, ``img2d.tif`` + ``mask2d.tif``, read with tifffile): the
  512 x 512 image cut into 16 tiles of 128 x 128, target = all nuclei of a tile (a semantic class,
  so the prompt is the prompted tile's true mask; a second study gives the tile's box, which
  says little about scattered nuclei but is what users give);
  intensities as medsam2 normalises a non-CT image (0.5-99.5 percentiles, over the whole image).
* fundus: the synthetic fundus set (``medsam2.data.phantoms_2d.fundus_set``, seeds 9000+), target
  = the optic disc, prompt = its tight box. scikit-image's real ``retina`` image ships without
  any annotation, so it cannot be scored.
* generated twins for choosing checkpoints (``oneprompt-gen`` in benchmarks/quality.py): the fundus
  set and the fluorescent-cell set (``cells_set``, 16 images of 128 px, the stand-in for the
  nuclei) at another seed than the report's, so a One-Prompt regression shows before the
  held-out sets are looked at.

Liver: pydicom-data's ``liver.dcm`` is a DICOM SEG whose frames reference CT images by SOP
Instance UID; :func:`liver_seg_check` looks for those CT files in every DICOM file that pydicom
and pydicom-data ship and reports what it found.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from quality_cases import package_dir

from medsam2.evaluation.baselines import prompt_copy_dice
from medsam2.evaluation.metrics import dice_np
from medsam2.model.sam2_model import Sam2Model

COUNTS = (1, 2, 4)


def nuclei_set(tile: int = 128) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """stardist's nuclei as (N, tile, tile) float frames in [0, 1] and their semantic masks."""
    import tifffile

    from medsam2.preprocessing.intensity import normalize_intensity

    base = package_dir("stardist")
    folder = base / "data" / "images" if base else None
    if folder is None or not (folder / "mask2d.tif").is_file():
        return None
    image = normalize_intensity(tifffile.imread(folder / "img2d.tif").astype(np.float32), None, None)
    mask = tifffile.imread(folder / "mask2d.tif") > 0
    h, w = mask.shape
    corners = [(y, x) for y in range(0, h - tile + 1, tile) for x in range(0, w - tile + 1, tile)]
    images = np.stack([image[y : y + tile, x : x + tile] for y, x in corners]).astype(np.float32)
    return np.clip(images, 0.0, 1.0), [mask[y : y + tile, x : x + tile] for y, x in corners]


def fundus_images(n: int = 12, seed: int = 9000) -> tuple[np.ndarray, list[np.ndarray]]:
    """The synthetic fundus set: RGB uint8 images and their optic-disc masks."""
    from medsam2.data.phantoms import fundus_set

    samples = fundus_set(n, seed=seed)
    return np.stack([s.image for s in samples]), [s.label >= 1 for s in samples]


def cells_images(n: int = 16, seed: int = 8000, size: int = 128) -> tuple[np.ndarray, list[np.ndarray]]:
    """The synthetic fluorescent-cell set: grey uint8 (n, size, size) images and their cell masks."""
    from medsam2.data.phantoms import cells_set

    samples = cells_set(n, size=(size, size), seed=seed)
    return np.stack([s.image for s in samples]), [s.label >= 1 for s in samples]


def _prompt(mask: np.ndarray, kind: str) -> dict[str, Any]:
    if kind == "mask":
        return {"mask": mask}
    ys, xs = np.nonzero(mask)
    return {"box": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]}


def _model_scores(
    model: Sam2Model, images: np.ndarray, truths: Sequence[np.ndarray], k: int, kind: str
) -> list[float]:
    from medsam2 import ImageSetPredictor

    ip = ImageSetPredictor(model)
    ip.start(images)
    for i in range(k):
        ip.add_prompt(i, 1, **_prompt(truths[i], kind))
    res = ip.segment()
    return [dice_np(res[i].masks[0].numpy() > 0, truths[i]) for i in range(max(COUNTS), len(truths))]


def one_prompt_study(
    models: dict[str, Sam2Model], images: np.ndarray, truths: Sequence[np.ndarray], kind: str
) -> dict[str, Any]:
    """Per-image Dice on the scored images for every model and ``prompt-copy``, per prompted count."""
    scored = list(range(max(COUNTS), len(truths)))
    methods: dict[str, dict[int, list[float]]] = {}
    for label, model in models.items():
        methods[label] = {k: _model_scores(model, images, truths, k, kind) for k in COUNTS}
    methods["prompt-copy"] = {k: [prompt_copy_dice(truths[:k], truths[i]) for i in scored] for k in COUNTS}
    return {"images": len(truths), "scored": scored, "prompt": kind, "dice": methods}


def _pydicom_folders() -> list[Path]:
    folders = []
    for package, parts in (("data_store", ("data",)), ("pydicom", ("data", "test_files"))):
        base = package_dir(package)
        if base is not None and base.joinpath(*parts).is_dir():
            folders.append(base.joinpath(*parts))
    return folders


def liver_seg_check() -> dict[str, Any]:
    """What liver.dcm (pydicom-data) references, and whether any shipped DICOM file is that CT."""
    import pydicom

    base = package_dir("data_store")
    seg_path = base / "data" / "liver.dcm" if base else None
    if seg_path is None or not seg_path.is_file():
        return {"available": False, "note": "pydicom-data (liver.dcm) is not installed"}
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    refs = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    scanned, found = 0, []
    for folder in _pydicom_folders():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".py"):
            try:
                with warnings.catch_warnings():  # pydicom's deliberately malformed test files
                    warnings.simplefilter("ignore")
                    head = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            except Exception:  # noqa: BLE001 - not DICOM: skip
                continue
            scanned += 1
            if str(head.get("SOPInstanceUID", "")) in refs:
                found.append(str(path))
    out = {
        "seg": str(seg_path),
        "segments": [str(s.SegmentLabel) for s in seg.SegmentSequence],
        "frames": int(seg.NumberOfFrames),
        "size": [int(seg.Rows), int(seg.Columns)],
        "referenced_series": [str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence],
        "referenced_ct_images": len(refs),
        "dicom_files_searched": scanned,
        "found": found,
        "available": False,
    }
    if found:
        out["note"] = f"{len(found)} of the referenced CT images now ship ({found[0]}...): wire the study in"
    else:
        out["note"] = (
            f"liver.dcm ({out['frames']} frames of {seg.Rows}x{seg.Columns}, segment "
            f"{out['segments']}) references {len(refs)} CT images of series {out['referenced_series'][0]}; "
            f"none of the {scanned} DICOM files in pydicom and pydicom-data is one of them, so there is "
            "no image to segment: the liver study is not run"
        )
    return out
