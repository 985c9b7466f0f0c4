"""``medsam2 demo``: the main job, offline, on a bundled sample and the embedded model.

Samples (``--sample``; ``--sample list`` lists them):

* ``mni152`` (default): a real MRI, nilearn's MNI152 T1 template at 2 mm shipped in the package
  with its tissue labels (licence in ``medsam2/assets/MNI152_LICENSE.txt``); never used in
  training. Runs the default embedded model.
* ``phantom``: a held-out CT-like phantom (generated, deterministic; not used in training). Runs
  the default embedded model too.

One box on the largest axial slice of a structure, propagation both ways with the self-sorting
bank, the mask written in the input's geometry with overlays and a GIF, Dice against the truth.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsam2.cli.common import (
    add_common_arguments,
    load_cli_model,
    memory_options,
    parse_common,
    resolve_device,
)
from medsam2.errors import ConfigError
from medsam2.types import Volume

__all__ = ["register_demo_command", "cmd_demo", "DEMO_SEED"]

DEMO_SEED = 9001  # held out: the embedded model's training uses seeds < 1000


def register_demo_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="segment a bundled sample volume from one box (offline, embedded model)")
    p.add_argument("--sample", default="mni152", help="mni152 (default), phantom, or 'list' to list them")
    p.add_argument(
        "--structure",
        default=None,
        help="mni152: brain (default), grey_matter, white_matter; phantom: liver (default), spleen, "
        "kidney_right, kidney_left, aorta (docs/embedded_model.md has each one's measured Dice)",
    )
    p.add_argument("--sample-seed", default=str(DEMO_SEED), metavar="N", help="which phantom to generate")
    p.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    add_common_arguments(p, default_memory="self-sorting", output_help="output folder (default out/demo)")
    p.set_defaults(func=cmd_demo, output="out/demo")


@dataclass(frozen=True)
class Sample:
    """A demo input: the image, its truth label array (same grid) and structure -> label values."""

    name: str
    volume: Volume
    label: np.ndarray
    structures: dict[str, tuple[int, ...]]
    default: str
    source: str


SAMPLES = {
    "mni152": "real T1 MRI: MNI152 ICBM 2009a template at 2 mm, shipped (held out from training)",
    "phantom": "CT-like abdomen phantom, generated (held out: seed 9001 by default)",
}


def load_sample(name: str, seed: int = DEMO_SEED) -> Sample:
    """The demo sample ``name`` (see ``SAMPLES``)."""
    if name == "phantom":
        from medsam2.data.phantoms import PHANTOM_LABELS, ct_phantom

        ph = ct_phantom(seed=seed)
        structures: dict[str, tuple[int, ...]] = {label: (value,) for value, label in PHANTOM_LABELS.items()}
        return Sample(name, ph.volume, ph.label, structures, "liver", f"ct_phantom(seed={seed})")
    if name == "mni152":
        from medsam2.io import read_image

        assets = Path(__file__).resolve().parent.parent / "assets"
        image = read_image(assets / "mni152_t1_2mm.nii.gz")
        label = read_image(assets / "mni152_tissues_2mm.nii.gz").array
        structures = {
            "brain": (1, 2, 3),
            "grey_matter": (2,),
            "white_matter": (3,),
        }  # scripts/make_demo_samples.py
        return Sample(name, image, label, structures, "brain", "MNI152 ICBM 2009a T1, 2 mm")
    raise ConfigError(f"--sample {name}: choose one of {', '.join(SAMPLES)} (or 'list')")


def _middle_box(mask: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Tight box of ``mask`` on its largest axial slice, as two voxel corners on that slice."""
    areas = mask.sum(axis=(0, 1))
    k = int(np.argmax(areas))
    ii, jj = np.nonzero(mask[:, :, k])
    return (int(ii.min()), int(jj.min()), k), (int(ii.max()), int(jj.max()), k)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    inter = float(np.logical_and(a, b).sum())
    total = float(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * inter / total


def cmd_demo(args: argparse.Namespace) -> int:
    if args.sample == "list":
        for name, text in SAMPLES.items():
            print(f"{name:10} {text}")
        return 0
    from medsam2.io.writers import write_mask
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    opts = parse_common(args)
    sample = load_sample(args.sample, int(args.sample_seed))
    structure = args.structure or sample.default
    if structure not in sample.structures:
        raise ConfigError(
            f"--structure {structure}: for --sample {sample.name} choose one of {', '.join(sample.structures)}"
        )
    device = resolve_device(opts.device)
    model, ckpt = load_cli_model(opts, device)
    out = opts.output
    out.mkdir(parents=True, exist_ok=True)
    truth = np.isin(sample.label, sample.structures[structure])
    _write_image(sample.volume, out / "image.nii.gz")
    write_mask(truth.astype(np.uint8), sample.volume, out / "truth.nii.gz")
    c0, c1 = _middle_box(truth)
    t0 = time.perf_counter()
    result = segment_volume(
        model,
        sample.volume,
        [VolumeObject(1, structure, boxes=(VoxelBox(c0, c1),))],
        memory=opts.memory,
        memory_options=memory_options(opts, model.config.num_maskmem),
        progress=opts.progress,
        speed=opts.speed,
    )
    seconds = time.perf_counter() - t0
    mask_path = write_mask(result.labels, sample.volume, out / f"{structure}.nii.gz")
    score = dice(result.labels == 1, truth)
    _extras(out, sample.volume, result, c0[2], not args.no_gif)
    report = {
        "sample": sample.name,
        "source": sample.source,
        "structure": structure,
        "dice": score,
        "box": [list(c0), list(c1)],
        "seconds": seconds,
        "checkpoint": str(ckpt),
        "memory": opts.memory,
        "tracker": result.tracker,
        "speed": opts.speed,
        "objects": [o.to_json() for o in result.objects],
    }
    (out / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{sample.name} {structure}: Dice {score:.3f} against the ground truth (box on slice {c0[2]}, "
        f"{sample.volume.shape[2]} slices in {seconds:.1f} s)"
    )
    print(f"wrote {mask_path}, overlays and {'a GIF ' if not args.no_gif else ''}in {out}")
    return 0


def _write_image(volume: Volume, path: Path) -> None:
    """The sample image itself, beside the masks (atomic, the volume's exact geometry)."""
    import SimpleITK as sitk

    from medsam2.io.atomic import atomic_output
    from medsam2.io.convert import array_to_image

    with atomic_output(path) as tmp:
        image = array_to_image(volume.array, volume.spacing, volume.origin, volume.direction)
        sitk.WriteImage(image, str(tmp), True)


def _extras(out: Path, volume: Volume, result: object, prompt_slice: int, gif: bool) -> None:
    from medsam2.outputs.gif import GifRecorder
    from medsam2.outputs.overlay import render_overlay, write_overlay_png
    from medsam2.preprocessing import normalize_volume, volume_to_frames

    geom = result.geometry  # type: ignore[attr-defined]
    grey = volume_to_frames(normalize_volume(volume), geom)
    labels = volume_to_frames(result.labels, geom)  # type: ignore[attr-defined]
    (out / "overlays").mkdir(exist_ok=True)
    n = geom.num_frames
    for t in sorted({prompt_slice, n // 4, n // 2, (3 * n) // 4}):
        write_overlay_png(out / "overlays" / f"slice_{t:04d}.png", grey[t], labels[t])
    if gif:
        rec = GifRecorder()
        for t in range(n):
            rec.add(t, render_overlay(grey[t], labels[t]))
        rec.write(out / "propagation.gif")
