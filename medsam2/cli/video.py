"""``medsam2 segment-video FRAMES_DIR`` and ``medsam2 segment-images IMAGE... --prompt-image PATH``.

Both propagate prompts given on a few frames / images to all of them and write, into
``-o OUT``: ``masks/<stem>.png`` (label = object id), ``overlays/<stem>.png``, optionally
``propagation.gif``, and ``summary.json``. Everything (options, frames, prompts, checkpoint) is
checked before anything is written, and the folder appears complete or not at all.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsam2.cli.common import (
    CommonOptions,
    add_common_arguments,
    load_cli_model,
    memory_options,
    parse_common,
    resolve_checkpoint,
    resolve_device,
)
from medsam2.cli.prompts import (
    FrameIndex,
    FramePrompts,
    ObjectPrompts,
    load_prompts_json,
    prompts_from_flags,
    resolve_prompts,
)
from medsam2.cli.render import ResultWriter
from medsam2.errors import ConfigError, InputError, PromptError

__all__ = ["register_video_commands", "cmd_segment_video", "cmd_segment_images"]

MANAGED = ("masks", "overlays", "propagation.gif", "summary.json")
DIRECTIONS = ("both", "forward", "backward")
_LAYOUT = "OUT/masks/<stem>.png (label = object id), OUT/overlays/<stem>.png, OUT/summary.json, OUT/propagation.gif (--gif)"

_VIDEO_EPILOG = f"""\
prompts (object 1; several objects: --prompts):
  --point F:X,Y[:LABEL]    click on frame F at column X, row Y; LABEL 1 positive (default), 0 negative
  --box F:X0,Y0,X1,Y1      box on frame F (X0 <= X1, Y0 <= Y1)
  F is a frame index (0 = first frame in name order) or a frame's file name (00003.jpg).
  --prompts FILE.json      {{"objects": [{{"id": 1, "name": "liver", "prompts": [
                             {{"frame": 0, "box": [[x0, y0], [x1, y1]]}},
                             {{"frame": 3, "point": [x, y], "label": 0}},
                             {{"frame": 5, "mask": "mask.png"}}]}}]}}   (mask paths: relative to the JSON)
outputs: {_LAYOUT}

example:
  medsam2 segment-video frames/ --box 0:40,30,90,80 --point 5:60,55:0 --checkpoint sam2.1_hiera_tiny.pt -o out
"""

_IMAGES_EPILOG = f"""\
One-Prompt 2D: prompt one or a few images of a set; the memory carries what the prompts
show to every other image (default memory: self-sorting). The set is IMAGE... followed by any
--prompt-image not among them; images may have different sizes.

prompts (object 1; several objects: --prompts):
  --point [F:]X,Y[:LABEL]   click at column X, row Y; LABEL 1 positive (default), 0 negative
  --box [F:]X0,Y0,X1,Y1     box (X0 <= X1, Y0 <= Y1)
  F names the image: its file name (case1.png), its path as typed, or its index among IMAGE...
  Without F, a prompt belongs to the --prompt-image, which must then be given exactly once.
  With several --prompt-image, every prompt names its image. Every --prompt-image must be
  prompted. In --prompts FILE.json, "frame" is the image's name or index (optional as above).
outputs: {_LAYOUT}

examples:
  medsam2 segment-images scans/*.png --prompt-image scans/case1.png --box 40,30,90,80 --checkpoint m.pt -o out
  medsam2 segment-images scans/*.png --box case1.png:40,30,90,80 --point case7.png:60,55 --checkpoint m.pt -o out
"""


@dataclass
class _Job:
    """One segmentation run, fully described before the model is loaded."""

    command: str
    input_desc: str
    paths: list[Path]
    objects: list[ObjectPrompts]
    frames: FrameIndex
    direction: str
    image_set: bool
    overlays: bool
    gif: bool
    prompt_images: list[int]


def _add_prompt_arguments(p: argparse.ArgumentParser, frame_optional: bool) -> None:
    f = "[F:]" if frame_optional else "F:"
    g = p.add_argument_group("prompts")
    g.add_argument(
        "--point", action="append", default=[], metavar=f"{f}X,Y[:LABEL]", help="a click (repeatable)"
    )
    g.add_argument("--box", action="append", default=[], metavar=f"{f}X0,Y0,X1,Y1", help="a box (repeatable)")
    g.add_argument("--prompts", metavar="FILE.json", help="prompts of one or several objects (see below)")


def _add_render_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument(
        "--gif", action="store_true", help="also write OUT/propagation.gif (overlays in frame order)"
    )
    g.add_argument("--no-overlays", action="store_true", help="do not write OUT/overlays/")


def register_video_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``segment-video`` and ``segment-images`` to the ``medsam2`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "segment-video",
        help="segment a folder of frames (SAM 2 style) from prompts on a few of them",
        description="Propagate prompts through a folder of frames (00000.jpg, 00001.jpg, ... in name order).",
        epilog=_VIDEO_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("frames_dir", metavar="FRAMES_DIR", help="folder of .jpg/.png/.bmp/.tif frames")
    _add_prompt_arguments(p, frame_optional=False)
    p.add_argument("--direction", default="both", metavar="DIR", help="both (default), forward or backward")
    add_common_arguments(p, default_memory="fifo", output_help="output folder (new or empty)")
    _add_render_arguments(p)
    p.set_defaults(func=cmd_segment_video)

    p = sub.add_parser(
        "segment-images",
        help="One-Prompt 2D: segment a set of images from prompts on one or a few of them",
        description="Segment every image of a set from prompts on one or a few of them.",
        epilog=_IMAGES_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("images", nargs="*", metavar="IMAGE", help="the images to segment")
    p.add_argument(
        "--prompt-image", action="append", default=[], metavar="PATH", help="a prompted image (repeatable)"
    )
    _add_prompt_arguments(p, frame_optional=True)
    add_common_arguments(p, default_memory="self-sorting", output_help="output folder (new or empty)")
    _add_render_arguments(p)
    p.set_defaults(func=cmd_segment_images)


def _parse_objects(args: argparse.Namespace, frame_optional: bool) -> list[ObjectPrompts]:
    if args.prompts and (args.point or args.box):
        raise PromptError(
            "--prompts cannot be combined with --point/--box: put every prompt in the JSON file"
        )
    if args.prompts:
        return load_prompts_json(args.prompts, frame_optional)
    return prompts_from_flags(args.point, args.box, frame_optional)


def cmd_segment_video(args: argparse.Namespace) -> int:
    """``medsam2 segment-video``."""
    from medsam2.engine.frames import ImageFolderFrames

    opts = parse_common(args)
    direction = str(args.direction).strip().lower()
    if direction not in DIRECTIONS:
        raise ConfigError(f"--direction {args.direction}: choose both, forward or backward")
    folder = Path(args.frames_dir)
    if not folder.exists():
        raise InputError(f"FRAMES_DIR {folder}: folder not found")
    if not folder.is_dir():
        raise InputError(f"FRAMES_DIR {folder}: not a folder (segment-images takes image files)")
    objects = _parse_objects(args, frame_optional=False)
    paths = ImageFolderFrames(folder).paths
    frames = FrameIndex(paths, None, "expected F:... (a frame index or file name)")
    job = _Job(
        "segment-video",
        str(folder),
        paths,
        objects,
        frames,
        direction,
        False,
        not args.no_overlays,
        args.gif,
        [],
    )
    return _run(job, opts)


def _image_set(images: list[str], prompt_images: list[str]) -> tuple[list[Path], list[int]]:
    """IMAGE... then the --prompt-image files not among them; indices of the prompt images."""
    paths: list[Path] = []
    keys: dict[str, int] = {}
    for flag, value in [("IMAGE", v) for v in images] + [("--prompt-image", v) for v in prompt_images]:
        p = Path(value)
        if p.is_dir():
            raise InputError(
                f"{flag} {p}: is a folder; list its images (e.g. {p}/*.png) or use segment-video"
            )
        if not p.is_file():
            raise InputError(f"{flag} {p}: image file not found")
        key = os.path.realpath(p)
        if key in keys and flag == "IMAGE":
            raise InputError(f"IMAGE {p}: given twice")
        if key not in keys:
            keys[key] = len(paths)
            paths.append(p)
    if not paths:
        raise InputError("segment-images: give the images to segment (IMAGE...)")
    return paths, [keys[os.path.realpath(v)] for v in prompt_images]


def cmd_segment_images(args: argparse.Namespace) -> int:
    """``medsam2 segment-images``."""
    opts = parse_common(args)
    paths, prompt_idx = _image_set(list(args.images), list(args.prompt_image))
    if len(set(prompt_idx)) != len(prompt_idx):
        raise InputError("--prompt-image: the same image is given twice")
    objects = _parse_objects(args, frame_optional=True)
    default = prompt_idx[0] if len(prompt_idx) == 1 else None
    hint = "name the image (F:...) or give exactly one --prompt-image"
    frames = FrameIndex(paths, default, hint)
    desc = f"{len(paths)} images"
    job = _Job(
        "segment-images",
        desc,
        paths,
        objects,
        frames,
        "both",
        True,
        not args.no_overlays,
        args.gif,
        prompt_idx,
    )
    return _run(job, opts)


def _stems(paths: list[Path]) -> list[str]:
    """Output names; two inputs with the same stem would overwrite each other's results."""
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise InputError(
                f"{seen[p.stem]} and {p}: both would be written as masks/{p.stem}.png; rename one"
            )
        seen[p.stem] = p
    return [p.stem for p in paths]


def _check_prompt_images(job: _Job, prompts: list[FramePrompts]) -> None:
    prompted = {fp.frame for fp in prompts}
    for idx in job.prompt_images:
        if idx not in prompted:
            raise PromptError(f"--prompt-image {job.paths[idx]}: no prompt refers to this image")


def _run(job: _Job, opts: CommonOptions) -> int:
    """Validate everything, load the model, propagate, write the staged output folder."""
    from medsam2.engine.frames import ImageListFrames
    from medsam2.outputs import check_output_folder, staged_folder

    check_output_folder(opts.output, opts.overwrite)
    task = "one-prompt" if job.image_set else "video"
    resolve_checkpoint(opts, task)  # cheap checks first: fail before reading any image
    device = resolve_device(opts.device)
    stems = _stems(job.paths)
    source = ImageListFrames(job.paths)
    prompts = resolve_prompts(job.objects, job.frames, source.frame_size)
    _check_prompt_images(job, prompts)
    model, checkpoint = load_cli_model(opts, device, task=task)
    options = memory_options(opts, model.config.num_maskmem)
    outputs = _segment_images(job, opts, model, options, prompts) if job.image_set else None
    video = None if job.image_set else _start_video(opts, model, options, source, prompts)
    meta = _meta(job, opts, model, checkpoint, device, options)
    with staged_folder(opts.output, opts.overwrite, MANAGED) as stage:
        names = {o.obj_id: o.name for o in job.objects}
        writer = ResultWriter(stage, job.paths, stems, names, _prompted(prompts), meta, job.overlays, job.gif)
        for out in video.propagate(job.direction) if video is not None else outputs or []:
            writer.add(out)
        summary = writer.finish(source.frame_size)
    _report(job, opts, summary)
    return 0


def _prompted(prompts: list[FramePrompts]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for fp in prompts:
        out.setdefault(fp.obj_id, []).append(fp.frame)
    return out


def _prompt_kwargs(fp: FramePrompts) -> dict[str, Any]:
    return {
        "points": fp.points or None,
        "labels": fp.labels or None,
        "box": fp.box,
        "mask": fp.mask,
    }


def _start_video(
    opts: CommonOptions, model: Any, options: dict[str, Any], source: Any, prompts: list[FramePrompts]
) -> Any:
    """A ``VideoPredictor`` over ``source`` with every prompt added (decoded, not yet propagated)."""
    from medsam2.engine.video_predictor import VideoPredictor

    # one propagation, no corrections afterwards: memory flat in the number of frames, same masks;
    # the memory path always (box chaining was chosen on volumes, not on videos)
    predictor = VideoPredictor(
        model,
        memory=opts.memory,
        progress=opts.progress,
        speed=opts.speed,
        one_shot=True,
        tracker="memory",
        **options,
    )
    predictor.start(source)
    for fp in prompts:
        predictor.add_prompt(fp.frame, fp.obj_id, **_prompt_kwargs(fp))
    return predictor


def _segment_images(
    job: _Job, opts: CommonOptions, model: Any, options: dict[str, Any], prompts: list[FramePrompts]
) -> list[Any]:
    """One-Prompt 2D through ``ImageSetPredictor``: every image's ``FrameOutput``, in input order."""
    from medsam2.engine.image_set import ImageSetPredictor

    predictor = ImageSetPredictor(
        model, memory=opts.memory, progress=opts.progress, speed=opts.speed, **options
    )
    predictor.start(job.paths)
    for fp in prompts:
        predictor.add_prompt(fp.frame, fp.obj_id, **_prompt_kwargs(fp))
    results = predictor.segment()
    return [results[i] for i in sorted(results)]


def _meta(
    job: _Job, opts: CommonOptions, model: Any, checkpoint: Path, device: str, memory_opts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "command": job.command,
        "input": job.input_desc,
        "checkpoint": str(checkpoint),
        "model": model.config.name,
        "image_size": int(model.image_size),
        "device": device,
        "memory": opts.memory,
        "speed": opts.speed,
        "memory_options": {k: v for k, v in memory_opts.items() if isinstance(v, (int, float, str, bool))},
        "seed": opts.seed,
        "direction": job.direction,
    }


def _report(job: _Job, opts: CommonOptions, summary: dict[str, Any]) -> None:
    """A few lines on stdout: what was segmented and where the results are."""
    n = summary["num_frames"]
    unit = "images" if job.image_set else "frames"
    print(
        f"{job.command}: {n} {unit}, {len(summary['objects'])} object(s), memory {opts.memory}, device {summary['device']}"
    )
    for obj in summary["objects"]:
        name = f" ({obj['name']})" if obj["name"] else ""
        iou = "-" if obj["mean_iou"] is None else f"{obj['mean_iou']:.3f}"
        print(
            f"  object {obj['id']}{name}: on {obj['num_frames_present']}/{n} {unit}, "
            f"{obj['total_pixels']} pixels, mean predicted IoU {iou}"
        )
    parts = ["masks/"] + (["overlays/"] if job.overlays else []) + (["propagation.gif"] if job.gif else [])
    print(f"wrote {opts.output} ({', '.join(parts + ['summary.json'])})")
