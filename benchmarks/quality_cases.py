"""3D studies of benchmarks/quality.py: the cases, the model and the baselines on one box, the scores.

Every structure gets one box: the tight box of its true mask on the slice (along the plane's slice
axis) where it is largest. The model segments the volume from that box with bidirectional
propagation (`segment_volume`, the path `medsam2 segment` takes); the baselines of
`medsam2.evaluation.baselines` get the very same box (`box_to_frame` of the same corners) on the
same frames (Otsu on the intensities the model sees: CT window or percentiles). Scores, all in
frames (T, H, W):

* ``dice``: the 3D Dice of the whole volume;
* ``prompted``: the Dice of the prompted slice alone;
* ``propagated``: the 3D Dice of every other slice together;
* ``by_distance``: per-slice Dice grouped by |slice - prompted slice| (slices where neither the
  truth nor the prediction has the structure are left out, so over-propagation counts as 0).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.evaluation.baselines import baselines_3d
from medsam2.evaluation.metrics import dice_np
from medsam2.model.sam2_model import Sam2Model
from medsam2.preprocessing import normalize_volume, slice_geometry, volume_to_frames
from medsam2.preprocessing.coords import box_to_frame
from medsam2.types import Volume
from medsam2.volume import VolumeObject, VoxelBox, infer_modality, segment_volume

STRUCTURES = {"liver": 1, "kidney_right": 2, "kidney_left": 3, "spleen": 4, "aorta": 6}
BINS = ((0, 0, "0"), (1, 5, "1-5"), (6, 10, "6-10"), (11, 20, "11-20"), (21, 40, "21-40"), (41, 10**6, ">40"))
MNI = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


@dataclass(frozen=True)
class Case3D:
    """One structure of one volume, prompted on ``plane`` ("auto": the volume's axial plane)."""

    study: str
    case: str
    structure: str
    volume: Volume
    truth: np.ndarray
    plane: str = "auto"


def package_dir(package: str) -> Path | None:
    """An installed package's folder, found without importing it (nilearn, stardist import slowly)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def bucket(distance: int) -> str:
    return next(name for lo, hi, name in BINS if lo <= distance <= hi)


def score(pred: np.ndarray, truth: np.ndarray, frame: int) -> dict[str, Any]:
    """The four scores of the module docstring for frame stacks ``pred``, ``truth`` prompted on ``frame``."""
    rest = np.ones(len(truth), bool)
    rest[frame] = False
    by_distance: dict[str, list[float]] = {}
    for t in range(len(truth)):
        if truth[t].any() or pred[t].any():
            by_distance.setdefault(bucket(abs(t - frame)), []).append(dice_np(pred[t], truth[t]))
    return {
        "dice": dice_np(pred, truth),
        "prompted": dice_np(pred[frame], truth[frame]),
        "propagated": dice_np(pred[rest], truth[rest]),
        "by_distance": by_distance,
    }


def prompt_box(truth: np.ndarray, slice_axis: int) -> VoxelBox:
    """The tight box of ``truth`` on its largest slice along ``slice_axis``, as two voxel corners."""
    others = tuple(a for a in range(3) if a != slice_axis)
    k = int(np.argmax(truth.sum(axis=others)))
    nz = np.nonzero(np.take(truth, k, axis=slice_axis))
    lo, hi = [0, 0, 0], [0, 0, 0]
    lo[slice_axis] = hi[slice_axis] = k
    for axis, idx in zip(others, nz, strict=True):
        lo[axis], hi[axis] = int(idx.min()), int(idx.max())
    return VoxelBox(tuple(lo), tuple(hi))


def run_case(case: Case3D, models: dict[str, Sam2Model], memories: list[str]) -> list[dict[str, Any]]:
    """Rows (one per method) for one case: every model x memory, then the three baselines.
    ``memories`` are memory policies, or "box-chain" for box chaining instead of the memory."""
    geom = slice_geometry(case.volume, case.plane)
    assert geom.slice_axis is not None
    box = prompt_box(case.truth, geom.slice_axis)
    fb = box_to_frame(box.corner0, box.corner1, geom)
    truth = volume_to_frames(case.truth, geom)
    head = {"study": case.study, "case": case.case, "structure": case.structure, "plane": geom.plane}
    head.update(frame=fb.t, box=[fb.x0, fb.y0, fb.x1, fb.y1], true_slices=int(truth.any(axis=(1, 2)).sum()))
    rows = []
    for label, model in models.items():
        for memory in memories:
            start = time.perf_counter()
            obj = VolumeObject(1, case.structure, boxes=(box,))
            if memory == "box-chain":  # the other tracker (medsam2.engine.box_chain)
                res = segment_volume(model, case.volume, [obj], axis=case.plane, tracker="box-chain")
            else:
                res = segment_volume(
                    model, case.volume, [obj], axis=case.plane, memory=memory, tracker="memory"
                )
            assert res.geometry == geom
            pred = volume_to_frames(res.labels == 1, geom)
            seconds = time.perf_counter() - start
            rows.append(
                {**head, "method": f"{label}/{memory}", "seconds": seconds, **score(pred, truth, fb.t)}
            )
    seen = Volume(**{**case.volume.__dict__, "modality": infer_modality(case.volume)})
    image = volume_to_frames(normalize_volume(seen, None), geom)  # what the model sees
    for name, pred in baselines_3d(image, truth, fb.t, (fb.x0, fb.y0, fb.x1, fb.y1)).items():
        rows.append({**head, "method": name, **score(pred, truth, fb.t)})
    return rows


def phantom_cases(weighting: str, cases: int, first_seed: int) -> Iterator[Case3D]:
    """Held-out CT or MR (T1/T2) phantoms, seeds ``first_seed`` onwards, the five organs of each."""
    from medsam2.data.phantoms import ct_phantom, mr_phantom

    for seed in range(first_seed, first_seed + cases):
        ph = ct_phantom(seed=seed) if weighting == "CT" else mr_phantom(seed=seed, weighting=weighting)
        for name, value in STRUCTURES.items():
            truth = ph.label == value
            if truth.any():
                yield Case3D(f"{weighting} phantoms", f"{weighting.lower()}-{seed}", name, ph.volume, truth)


def shape_cases(count: int, first_seed: int) -> Iterator[Case3D]:
    """Basic shapes in a box (``medsam2.data.synth.shapes``), cases 0..count-1 of generator
    ``first_seed``, grouped by size and polarity: the sanity check any promptable model must pass."""
    from medsam2.data.synth.shapes import shape_case, size_bin

    for index in range(count):
        c = shape_case(first_seed, index)
        yield Case3D("basic shapes", c.name, f"{size_bin(c.radius)}, {c.polarity}", c.volume, c.truth)


def _generated(
    spec_text: str, count: int, keep: Callable[[np.ndarray, dict[str, Any]], bool], study: str
) -> Iterator[Case3D]:
    """The first ``count`` cases of the generator ``spec_text`` that ``keep(labels, info)``
    accepts, as volumes of 1 x 1 x 2 mm voxels, the truth the target (label 1)."""
    from medsam2.data.synth.cases import generate_case, parse_synth

    spec = parse_synth(spec_text)
    found, index = 0, 0
    while found < count:
        image, labels, info = generate_case(spec, index)
        index += 1
        if not keep(labels, info):
            continue
        found += 1
        array = np.ascontiguousarray(np.transpose(image, (2, 1, 0)))  # (D, S, S) -> (i, j, k)
        truth = np.ascontiguousarray(np.transpose(labels == 1, (2, 1, 0)))
        name = f"{study.split()[-1]}{spec.seed}-{index - 1}"
        volume = Volume(array, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), name, "MR")
        yield Case3D(study, name, f"{info['target']} of {info['kind']}", volume, truth)


def part_cases(count: int, seed: int = 5001) -> Iterator[Case3D]:
    """Generated "part" targets (``synth:...;part=1``, ``medsam2.data.synth.targets.part_labels``):
    a label whose box holds much of other labels, as grey matter's is the brain's; the first
    ``count`` such cases of generator ``seed`` (no training config uses 5001), the middle slice
    of each slab the one the truth is largest on or near. A validation set: its box alone cannot
    say the part, its clicks can."""
    spec = f"synth:seed={seed};cases=100000;size=128;depth=10;min_contrast=0.6;part=1.0"
    yield from _generated(spec, count, lambda _, info: info.get("target") == "part", "generated parts")


def _fills_box(labels: np.ndarray, info: dict[str, Any], fill: float) -> bool:
    from medsam2.data.synth.targets import fill_of_box

    mid = labels[labels.shape[0] // 2] == 1
    return bool(
        info.get("target") in ("group", "foreground") and mid.sum() >= 200 and fill_of_box(mid) >= fill
    )


def whole_cases(count: int, seed: int = 5002, fill: float = 0.6) -> Iterator[Case3D]:
    """Generated compound objects that nearly fill their box (a named group of labels, or the
    whole foreground, of at least 200 pixels filling at least ``fill`` of its box on the middle
    slice), as the whole brain fills its own: the first ``count`` of generator ``seed`` (no
    training config uses 5002; drawn without ``whole=``, as they come). A validation set for the
    boxed slice of such objects, where the object's edge is the box's."""
    spec = f"synth:seed={seed};cases=100000;size=128;depth=10;min_contrast=0.6"
    yield from _generated(
        spec, count, lambda labels, info: _fills_box(labels, info, fill), "generated wholes"
    )


def mni_cases(planes: list[str]) -> Iterator[Case3D]:
    """nilearn's MNI152 2009a T1 template: whole brain, grey and white matter, on each plane.

    Whole brain is nilearn's own definition (``load_mni152_brain_mask``: T1 / max > 0.2, the
    template is skull-stripped); grey and white matter are their probability maps (scaled to
    [0, 1] by their maximum, as nilearn does) at >= 0.5.
    """
    from medsam2.io import read_image

    base = package_dir("nilearn")
    folder = base / "datasets" / "data" if base else None
    if folder is None or not (folder / MNI.format("t1")).is_file():
        return
    t1 = read_image(folder / MNI.format("t1"))
    arr = t1.array.astype(np.float32)
    truths = {"whole brain": arr / arr.max() > 0.2}
    for name, tissue in (("grey matter", "gm"), ("white matter", "wm")):
        p = read_image(folder / MNI.format(tissue)).array.astype(np.float32)
        truths[name] = p / p.max() >= 0.5
    for plane in planes:
        for name, truth in truths.items():
            yield Case3D("MNI152 (real T1 MR)", f"mni152-{plane}", name, t1, truth, plane)
