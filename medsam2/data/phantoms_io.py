"""Write phantoms and 2D image sets to disk: image/label NIfTI pairs and nnU-Net v2 raw datasets.

nnU-Net v2 raw layout written here::

    root/Dataset{id:03d}_{name}/
        imagesTr/{case}_0000.nii.gz   (or .png; one file per case, RGB PNGs hold all 3 channels)
        labelsTr/{case}.nii.gz        (or .png; uint8)
        dataset.json                  channel_names, labels (background 0 + names), numTraining,
                                      file_ending, plus a "medsam2" provenance entry

A dataset folder is built under a hidden temporary name next to its final place and renamed only
when complete, so an interrupted run never leaves a half-written dataset under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import SimpleITK as sitk
from PIL import Image

if TYPE_CHECKING:
    from medsam2.data.phantoms import Phantom
    from medsam2.data.phantoms_2d import Sample2D

__all__ = ["write_nnunet_dataset", "write_nnunet_dataset_2d", "write_phantom"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
T = TypeVar("T")


def _to_sitk(
    array: np.ndarray, spacing: Sequence[float], origin: Sequence[float], direction: np.ndarray
) -> sitk.Image:
    """A SimpleITK image from an index-order (i, j, k) array and its geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(tuple(range(array.ndim))[::-1])))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(v) for v in np.asarray(direction, np.float64).reshape(-1)))
    return image


def write_phantom(
    phantom: Phantom, image_path: str | os.PathLike[str], label_path: str | os.PathLike[str]
) -> None:
    """Write the phantom's image and uint8 label with identical geometry (any SimpleITK format,
    chosen by suffix, e.g. ``.nii.gz``, ``.nrrd``, ``.mha``; compressed where the format allows)."""
    vol = phantom.volume
    if phantom.label.shape != vol.array.shape:
        raise ValueError(f"label shape {phantom.label.shape} differs from image shape {vol.array.shape}")
    for array, path in ((vol.array, image_path), (phantom.label.astype(np.uint8, copy=False), label_path)):
        sitk.WriteImage(_to_sitk(array, vol.spacing, vol.origin, vol.direction), os.fspath(path), True)


@contextlib.contextmanager
def _staged_folder(final: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``final``; on success rename it to ``final`` (replacing an
    existing one only with ``overwrite``), on any failure delete it."""
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; pass overwrite=True to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    tmp = final.with_name(f".{final.name}.tmp-{token}")
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old-{token}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _case_items(cases: Sequence[T] | Mapping[str, T], name: str) -> list[tuple[str, T]]:
    """(case id, item) pairs: the mapping's keys, or ``{name}_{index:03d}`` for a sequence."""
    items = (
        list(cases.items())
        if isinstance(cases, Mapping)
        else [(f"{name}_{i:03d}", c) for i, c in enumerate(cases)]
    )
    if not items:
        raise ValueError("no cases to write")
    ids = [cid for cid, _ in items]
    bad = [cid for cid in ids if not _NAME.match(cid)]
    if bad or len(set(ids)) != len(ids):
        raise ValueError(f"case ids must be unique and made of letters, digits, '_' or '-': {bad or ids}")
    return items


def _dataset_folder(root: str | os.PathLike[str], name: str, dataset_id: int) -> Path:
    if not _NAME.match(name):
        raise ValueError(f"dataset name {name!r} must be letters, digits, '_' or '-'")
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id must be 1..999, got {dataset_id}")
    return Path(root) / f"Dataset{dataset_id:03d}_{name}"


def _labels_json(labels: Mapping[int, str]) -> dict[str, int]:
    values = sorted(int(v) for v in labels)
    if values != list(range(1, len(values) + 1)):
        raise ValueError(f"nnU-Net needs consecutive label values 1..n, got {values}")
    return {"background": 0, **{labels[v]: v for v in values}}


def _write_json(
    folder: Path,
    channels: dict[str, str],
    labels: Mapping[int, str],
    n: int,
    ending: str,
    extra: dict[str, Any],
) -> None:
    doc = {
        "channel_names": channels,
        "labels": _labels_json(labels),
        "numTraining": n,
        "file_ending": ending,
        "medsam2": extra,
    }
    (folder / "dataset.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write_nnunet_dataset(
    root: str | os.PathLike[str],
    cases: Sequence[Phantom] | Mapping[str, Phantom],
    name: str,
    *,
    dataset_id: int = 900,
    overwrite: bool = False,
) -> Path:
    """Write 3D phantoms as the nnU-Net v2 raw dataset ``root/Dataset{dataset_id:03d}_{name}``.

    ``cases`` is a sequence (case ids ``{name}_000``, ...) or a mapping case id -> phantom; all must
    share one label table and one channel (CT, or MR of one weighting). Channel name "CT" selects
    nnU-Net's CT normalisation; MR phantoms are named by weighting ("T1"/"T2", z-score). Returns the
    dataset folder. Raises FileExistsError if it exists and ``overwrite`` is false.
    """
    final = _dataset_folder(root, name, dataset_id)
    items = _case_items(cases, name)
    first = items[0][1]
    channel = _channel(first)
    for cid, ph in items:
        if ph.labels != first.labels or _channel(ph) != channel:
            raise ValueError(f"case {cid}: label table or channel differs from the first case")
    with _staged_folder(final, overwrite) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for cid, ph in items:
            write_phantom(ph, tmp / "imagesTr" / f"{cid}_0000.nii.gz", tmp / "labelsTr" / f"{cid}.nii.gz")
        extra = {
            "generator": "medsam2.data.phantoms",
            "cases": {cid: dict(ph.volume.metadata) for cid, ph in items},
        }
        _write_json(tmp, {"0": channel}, first.labels, len(items), ".nii.gz", extra)
    return final


def _channel(phantom: Phantom) -> str:
    modality = phantom.volume.modality or "image"
    return "CT" if modality == "CT" else phantom.volume.metadata.get("weighting", modality)


def write_nnunet_dataset_2d(
    root: str | os.PathLike[str],
    samples: Sequence[Sample2D] | Mapping[str, Sample2D],
    name: str,
    labels: Mapping[int, str],
    *,
    dataset_id: int = 901,
    overwrite: bool = False,
) -> Path:
    """Write a 2D image set (e.g. `fundus_set`, `cells_set`) as an nnU-Net v2 raw dataset of PNGs.

    Images must all be RGB (H, W, 3) uint8 (channels "R", "G", "B" in one ``_0000.png``, as nnU-Net's
    natural-image reader expects) or all grey (H, W) uint8 (channel "grey"); labels (H, W) uint8 with
    values in ``labels`` (value -> name, 1..n). Returns the dataset folder.
    """
    final = _dataset_folder(root, name, dataset_id)
    items = _case_items(samples, name)
    rgb = items[0][1].image.ndim == 3
    allowed = np.array([0, *labels], np.int64)
    for cid, (image, label) in items:
        if image.dtype != np.uint8 or (image.ndim == 3) != rgb or (rgb and image.shape[2] != 3):
            raise ValueError(f"case {cid}: images must all be uint8 and all RGB (H, W, 3) or all grey (H, W)")
        if label.shape != image.shape[:2] or not np.isin(np.unique(label), allowed).all():
            raise ValueError(
                f"case {cid}: label must be (H, W) like its image with values in {allowed.tolist()}"
            )
    with _staged_folder(final, overwrite) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for cid, (image, label) in items:
            Image.fromarray(image).save(tmp / "imagesTr" / f"{cid}_0000.png")
            Image.fromarray(label.astype(np.uint8, copy=False)).save(tmp / "labelsTr" / f"{cid}.png")
        channels = {"0": "R", "1": "G", "2": "B"} if rgb else {"0": "grey"}
        _write_json(tmp, channels, labels, len(items), ".png", {"generator": "medsam2.data.phantoms"})
    return final
