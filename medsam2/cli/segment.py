"""``medsam2 segment INPUT -o OUTPUT``: segment objects through a CT/MR volume or DICOM series.

Writes the label volume (value = object id) with exactly the input's geometry, a JSON summary
(per object: voxels, volume in mL, slices covered, mean scores) and, on request, overlay PNGs
of chosen slices. Every input, prompt and option is checked before anything is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from medsam2.cli.common import (
    CommonOptions,
    add_common_arguments,
    add_tracker_argument,
    load_cli_model,
    memory_options,
    parse_common,
    parse_int,
    parse_tracker,
    resolve_checkpoint,
    resolve_device,
)
from medsam2.cli.volume_prompts import objects_from_flags, objects_from_json
from medsam2.errors import ConfigError, InputError, PromptError
from medsam2.types import Volume

__all__ = ["register_segment_command", "cmd_segment", "add_volume_input_arguments"]

_EPILOG = """\
prompts (object 1; several objects or slices: --prompts):
  --point I,J,K                positive click at voxel (i, j, k), in the file's index order as
                               3D Slicer / ITK-SNAP show it
  --negative-point I,J,K       negative click
  --box I0,J0,K0,I1,J1,K1      two opposite voxel corners: same slice -> a box on that slice;
                               otherwise a 3D box (its middle slice is prompted, and the object
                               is kept within its slice range)
  --mask-prompt FILE           a label volume with the input's geometry: non-zero slices become
                               mask prompts
  --world                      read the numbers above as millimetres (LPS world coordinates);
                               write negative numbers with '=': --point=-12.5,40,-30
  --prompts FILE.json          {"objects": [{"id": 1, "name": "liver", "prompts": [
                                 {"box": [[i0,j0,k0],[i1,j1,k1]]}, {"point": [i,j,k], "label": 1},
                                 {"mask": "path"}]}]}
outputs: OUTPUT (label volume: value = object id, uint8 or uint16), OUTPUT's name + .json
(summary, or --summary), --overlays DIR (PNG overlays of --overlay-slices).
example:
  medsam2 segment ct.nii.gz --box 120,90,40,260,210,40 --window abdomen -o liver.nii.gz
"""


def register_segment_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "segment",
        help="segment objects through a 3D volume (NIfTI, NRRD, MHA, DICOM folder) from prompts on a few slices",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="volume file or DICOM series folder")
    g = p.add_argument_group("prompts")
    g.add_argument("--point", action="append", default=[], metavar="I,J,K")
    g.add_argument("--negative-point", action="append", default=[], metavar="I,J,K")
    g.add_argument("--box", action="append", default=[], metavar="I0,J0,K0,I1,J1,K1")
    g.add_argument("--mask-prompt", metavar="FILE")
    g.add_argument("--world", action="store_true", help="prompt numbers are world millimetres (LPS)")
    g.add_argument("--prompts", metavar="FILE.json")
    r = add_volume_input_arguments(p)
    r.add_argument("--direction", default="both", metavar="DIR", help="both (default), forward or backward")
    add_tracker_argument(r)
    o = p.add_argument_group("extra outputs")
    o.add_argument("--summary", metavar="FILE", help="summary JSON (default: OUTPUT's name with .json)")
    o.add_argument("--overlays", metavar="DIR", help="write overlay PNGs of some slices into DIR")
    o.add_argument(
        "--overlay-slices", metavar="T,T,...", help="slices to overlay (default: prompted + 5 spread)"
    )
    o.add_argument(
        "--format", metavar="FMT", help="mask format: nifti, nrrd, mha, input, dicom-seg (default: by suffix)"
    )
    add_common_arguments(
        p, default_memory="self-sorting", output_help="label volume to write (e.g. mask.nii.gz)"
    )
    p.set_defaults(func=cmd_segment)


def add_volume_input_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--series-uid, --frame, --axis, --window (segment and serve); returns their group."""
    r = p.add_argument_group("input and slicing")
    r.add_argument("--series-uid", metavar="UID", help="DICOM folder with several series: which one")
    r.add_argument("--frame", metavar="N", help="4D input: which volume")
    r.add_argument("--axis", default="auto", metavar="AXIS", help="auto (axial), axial, coronal or sagittal")
    r.add_argument(
        "--window",
        default="auto",
        metavar="W",
        help="intensity: auto (CT: abdomen; others: percentiles), abdomen, lung, bone, brain, percentile or W,L",
    )
    return r


def _summary_path(output: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    name = output.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm", ".png"):
        if name.lower().endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def _check_outputs(paths: list[Path], overwrite: bool) -> None:
    for p in paths:
        if p.exists() and not overwrite:
            raise InputError(f"{p}: already exists; pass --overwrite to replace it")
        if not p.parent.is_dir():
            raise InputError(f"{p}: folder {p.parent} does not exist")


def _mask_reader(volume: Volume) -> Any:
    from medsam2.io import read_image

    def read(path: Path, where: str) -> np.ndarray:
        try:
            mask = read_image(path)
        except InputError as exc:
            raise PromptError(f"{where}: {exc}") from None
        if mask.shape != volume.shape:
            raise PromptError(f"{where} {path}: shape {mask.shape} differs from the input's {volume.shape}")
        same = np.allclose(mask.spacing, volume.spacing, atol=1e-4) and np.allclose(
            mask.origin, volume.origin, atol=1e-3
        )
        if not same or not np.allclose(mask.direction, volume.direction, atol=1e-4):
            raise PromptError(f"{where} {path}: geometry (spacing/origin/direction) differs from the input's")
        return np.asarray(mask.array)

    return read


def _objects(args: argparse.Namespace, volume: Volume) -> list[Any]:
    reader = _mask_reader(volume)
    flags = objects_from_flags(
        args.point, args.negative_point, args.box, args.mask_prompt, args.world, reader
    )
    if args.prompts and flags:
        raise PromptError(
            "give prompts either as flags (--point/--box/--mask-prompt) or with --prompts, not both"
        )
    objects = objects_from_json(args.prompts, args.world, reader) if args.prompts else flags
    if not objects:
        raise PromptError("no prompts: give --point, --box, --mask-prompt or --prompts FILE.json")
    return objects


def _overlay_slices(spec: str | None, prompted: list[int], num_frames: int) -> list[int]:
    if spec:
        slices = [parse_int(s, "--overlay-slices", 0) for s in spec.split(",")]
        bad = [s for s in slices if s is None or s >= num_frames]
        if bad:
            raise ConfigError(f"--overlay-slices {spec}: slices must be 0..{num_frames - 1}")
        return sorted({int(s) for s in slices if s is not None})
    spread = np.linspace(0, num_frames - 1, 5).round().astype(int).tolist()
    return sorted(set(prompted) | set(spread))


def cmd_segment(args: argparse.Namespace) -> int:
    from medsam2.io import read_image
    from medsam2.io.writers import write_mask
    from medsam2.volume import segment_volume

    opts = parse_common(args)
    if args.direction not in ("both", "forward", "backward"):
        raise ConfigError(f"--direction {args.direction}: choose both, forward or backward")
    tracker = parse_tracker(args.tracker)
    summary_path = _summary_path(opts.output, args.summary)
    _check_outputs([opts.output, summary_path], opts.overwrite)
    resolve_checkpoint(opts)
    device = resolve_device(opts.device)
    frame = parse_int(args.frame, "--frame", 0)
    volume = read_image(args.input, series_uid=args.series_uid, frame=frame)
    objects = _objects(args, volume)
    model, checkpoint = load_cli_model(opts, device)
    window = None if str(args.window).lower() == "auto" else args.window
    result = segment_volume(
        model,
        volume,
        objects,
        axis=args.axis,
        window=window,
        memory=opts.memory,
        memory_options=memory_options(opts, model.config.num_maskmem),
        direction=args.direction,
        progress=opts.progress,
        speed=opts.speed,
        tracker=tracker,
    )
    written = write_mask(result.labels, volume, opts.output, format=args.format)
    summary = _summary(args, opts, volume, result, checkpoint, written)
    _write_json(summary_path, summary)
    if args.overlays:
        _write_overlays(Path(args.overlays), volume, result, args.overlay_slices, window)
    _report(result, written, summary_path)
    return 0


def _summary(
    args: argparse.Namespace, opts: CommonOptions, volume: Volume, result: Any, ckpt: Path, out: Path
) -> dict:
    return {
        "input": str(args.input),
        "output": str(out),
        "checkpoint": str(ckpt),
        "memory": opts.memory,
        "tracker": result.tracker,
        "speed": opts.speed,
        "slicing": result.geometry.describe(),
        "intensity": result.window,
        "shape": list(volume.shape),
        "spacing_mm": list(volume.spacing),
        "objects": [o.to_json() for o in result.objects],
    }


def _write_json(path: Path, data: dict) -> None:
    from medsam2.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


def _write_overlays(folder: Path, volume: Volume, result: Any, spec: str | None, window: str | None) -> None:
    from medsam2.outputs.overlay import write_overlay_png
    from medsam2.preprocessing import normalize_volume, volume_to_frames
    from medsam2.volume import infer_modality

    geom = result.geometry
    prompted = sorted({t for o in result.objects for t in o.prompted_slices})
    slices = _overlay_slices(spec, prompted, geom.num_frames)
    folder.mkdir(parents=True, exist_ok=True)
    grey = volume_to_frames(
        normalize_volume(Volume(**{**volume.__dict__, "modality": infer_modality(volume)}), window), geom
    )
    labels = volume_to_frames(result.labels, geom)
    for t in slices:
        write_overlay_png(folder / f"slice_{t:04d}.png", grey[t], labels[t])


def _report(result: Any, written: Path, summary_path: Path) -> None:
    for o in result.objects:
        name = f" ({o.name})" if o.name else ""
        rng = f"slices {min(o.slices)}-{max(o.slices)}" if o.slices else "not found"
        print(f"object {o.obj_id}{name}: {o.voxels} voxels, {o.volume_ml:.2f} mL, {rng}")
    print(f"wrote {written} and {summary_path}")
