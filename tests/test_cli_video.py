"""`medsam2 segment-video` / `segment-images` end to end, as a new user runs them.

The tiny preset has random weights, so segmentation quality is not asserted: the tests check
the contracts (files, sizes, label values, summaries, one-line errors, nothing written on error).
The object-score head is biased to "present" so that masks are non-empty and every output path
(labels, overlays, counts) is exercised.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from medsam2.cli import common
from medsam2.cli.main import main
from medsam2.cli.prompts import BoxPrompt, PointPrompt, parse_box, parse_point
from medsam2.errors import PromptError
from medsam2.model.checkpoint import save_model
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import Sam2Model

H, W = 96, 128
NUM_FRAMES = 4


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2


def _frame(t: int, h: int = H, w: int = W) -> np.ndarray:
    img = np.full((h, w, 3), 30, np.uint8)
    img[_disc(h, w, 30 + 12 * t, h / 2, min(h, w) / 6)] = (220, 180, 160)
    return img


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli_data")
    torch.manual_seed(0)
    model = Sam2Model(get_preset("tiny"))
    head = [
        k for k in model.state_dict() if k.startswith("sam_mask_decoder.pred_obj_score_head") and "bias" in k
    ]
    with torch.no_grad():
        model.get_parameter(head[-1]).fill_(10.0)
    save_model(model, d / "tiny.safetensors")
    for folder, ext in (("frames_png", "png"), ("frames_jpg", "jpg")):
        (d / folder).mkdir()
        for t in range(NUM_FRAMES):
            Image.fromarray(_frame(t)).save(d / folder / f"{t:05d}.{ext}")
    (d / "imgs").mkdir()
    (d / "ref").mkdir()
    for name, (h, w) in {"a.png": (96, 128), "b.png": (80, 80), "c.jpg": (64, 100)}.items():
        Image.fromarray(_frame(1, h, w)).save(d / "imgs" / name)
    Image.fromarray(_frame(0, 72, 72)).save(d / "ref" / "ref.png")
    Image.fromarray((_disc(H, W, 30, H / 2, 16) * 255).astype(np.uint8)).save(d / "mask.png")
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(d / "small_mask.png")
    (d / "bad.json").write_text('{"objects": [{"id": 1, "prompts": [}')
    (d / "frames_png" / "notes.txt").write_text("not a frame")  # ignored: not an image
    (d / "garbage.pt").write_bytes(b"not a checkpoint")
    _json(d / "unknown_key.json", [{"id": 1, "prompts": [{"frame": 0, "pont": [1, 1]}]}])
    _json(d / "dup.json", [{"id": 1, "prompts": [{"frame": 0, "point": [1, 1]}]}] * 2)
    _json(d / "small_mask.json", [{"id": 1, "prompts": [{"frame": 0, "mask": "small_mask.png"}]}])
    _json(d / "zero_id.json", [{"id": 0, "prompts": [{"frame": 0, "point": [1, 1]}]}])
    _json(d / "bad_box.json", [{"id": 1, "prompts": [{"frame": 0, "box": [1, 2, 3, 4]}]}])
    return d


def _json(path: Path, objects: list[dict[str, object]]) -> None:
    path.write_text(json.dumps({"objects": objects}))


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _masks(out: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p)) for p in sorted((out / "masks").iterdir())}


# ------------------------------------------------------------------------------------- end to end


def test_segment_video_png_frames_box_and_clicks(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["segment-video", str(data / "frames_png"), "--box", "0:15,30,45,66", "--point", "2:54,48",
            "--point", "2:5,5:0", "--checkpoint", str(data / "tiny.safetensors"), "--device", "cpu",
            "-o", str(out), "--gif"]  # fmt: skip
    rc, stdout, stderr = _run(capsys, argv)
    assert rc == 0, stderr
    assert "segment-video: 4 frames, 1 object(s)" in stdout and f"wrote {out}" in stdout
    masks = _masks(out)
    assert list(masks) == [f"{t:05d}" for t in range(NUM_FRAMES)]
    for m in masks.values():
        assert m.shape == (H, W) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    assert sum(int(m.sum()) for m in masks.values()) > 0
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [f"{t:05d}.png" for t in range(NUM_FRAMES)]
    assert np.asarray(Image.open(out / "overlays" / "00001.png")).shape == (H, W, 3)
    with Image.open(out / "propagation.gif") as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == NUM_FRAMES
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["command"] == "segment-video" and summary["memory"] == "fifo" and summary["num_frames"] == 4
    )
    (obj,) = summary["objects"]
    assert obj["id"] == 1 and obj["prompted_frames"] == ["00000", "00002"]
    assert obj["total_pixels"] == sum(int((m == 1).sum()) for m in masks.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_segment_video_json_objects_16bit_ids_and_mask_prompt(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p" / "prompts.json"
    prompts.parent.mkdir()
    (prompts.parent / "m.png").write_bytes((data / "mask.png").read_bytes())
    _json(prompts, [
        {"id": 2, "name": "disc", "prompts": [{"frame": "00000.jpg", "mask": "m.png"}]},
        {"id": 300, "prompts": [{"frame": 3, "box": [[60, 20], [110, 80]]}, {"frame": 3, "point": [90, 50]}]},
    ])  # fmt: skip
    out = tmp_path / "out"
    argv = ["segment-video", str(data / "frames_jpg"), "--prompts", str(prompts), "--memory", "self-sorting",
            "--memory-size", "3", "--no-overlays", "--checkpoint", str(data / "tiny.safetensors"), "-o", str(out)]  # fmt: skip
    rc, _, stderr = _run(capsys, argv)
    assert rc == 0, stderr
    for m in _masks(out).values():
        assert m.shape == (H, W) and m.dtype == np.uint16 and set(np.unique(m)) <= {0, 2, 300}
    assert sorted(p.name for p in out.iterdir()) == ["masks", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["memory"] == "self-sorting" and summary["memory_options"]["capacity"] == 3
    assert [(o["id"], o["name"], o["prompted_frames"]) for o in summary["objects"]] == [
        (2, "disc", ["00000"]),
        (300, None, ["00003"]),
    ]


def test_segment_video_forward_writes_empty_masks_before_the_prompt(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["segment-video", str(data / "frames_png"), "--box", "2:40,30,80,66", "--direction", "forward",
            "--no-overlays", "--checkpoint", str(data / "tiny.safetensors"), "-o", str(out)]  # fmt: skip
    rc, _, stderr = _run(capsys, argv)
    assert rc == 0, stderr
    masks = _masks(out)
    assert len(masks) == NUM_FRAMES and not masks["00000"].any() and not masks["00001"].any()
    assert json.loads((out / "summary.json").read_text())["direction"] == "forward"


def test_segment_images_prompt_image_outside_the_set(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    imgs = [str(data / "imgs" / n) for n in ("a.png", "b.png", "c.jpg")]
    argv = ["segment-images", *imgs, "--prompt-image", str(data / "ref" / "ref.png"), "--box", "10,20,40,50",
            "--point", "25,36", "--checkpoint", str(data / "tiny.safetensors"), "-o", str(out), "--gif"]  # fmt: skip
    rc, stdout, stderr = _run(capsys, argv)
    assert rc == 0, stderr
    assert "segment-images: 4 images" in stdout
    sizes = {k: v.shape for k, v in _masks(out).items()}
    assert sizes == {"a": (96, 128), "b": (80, 80), "c": (64, 100), "ref": (72, 72)}
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.png", "b.png", "c.png", "ref.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["memory"] == "self-sorting" and summary["frames"] == ["a", "b", "c", "ref"]
    assert summary["objects"][0]["prompted_frames"] == ["ref"]
    with Image.open(out / "propagation.gif") as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 4


def test_segment_images_prompts_name_their_images_and_overwrite(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    imgs = [str(data / "imgs" / n) for n in ("a.png", "b.png", "c.jpg")]
    base = ["segment-images", *imgs, "--box", "b.png:10,10,50,50", "--point", "2:20,30",
            "--checkpoint", str(data / "tiny.safetensors"), "-o", str(out), "--memory", "fifo"]  # fmt: skip
    rc, _, stderr = _run(capsys, base)
    assert rc == 0, stderr
    before = (out / "summary.json").read_bytes()
    assert json.loads(before)["objects"][0]["prompted_frames"] == ["b", "c"]
    rc, _, stderr = _run(capsys, base)  # the folder is not empty any more
    assert rc == 2 and "--overwrite" in stderr and (out / "summary.json").read_bytes() == before
    rc, _, stderr = _run(capsys, [*base, "--overwrite", "--no-overlays"])
    assert rc == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["masks", "summary.json"]  # stale overlays removed


def test_embedded_model_is_used_without_checkpoint(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --checkpoint: the video default (a model whose memory works) for frames, the
    One-Prompt default for a set of unrelated images (docs/embedded_model.md, "Stage 7f")."""
    asked: list[str] = []

    def embedded(name: str | None = None, task: str = "volume") -> Path:
        asked.append(task)
        return data / "tiny.safetensors"

    monkeypatch.setattr(common, "_embedded_checkpoint", embedded)
    argv = ["segment-video", str(data / "frames_png"), "--point", "00001.png:40,48", "--no-overlays", "-o",
            str(tmp_path / "out")]  # fmt: skip
    rc, _, stderr = _run(capsys, argv)
    assert rc == 0 and "using the embedded model" in stderr
    assert asked and set(asked) == {"video"}
    asked.clear()
    imgs = [str(data / "imgs" / n) for n in ("a.png", "b.png", "c.jpg")]
    argv = [
        "segment-images",
        *imgs,
        "--box",
        "a.png:10,20,40,50",
        "--no-overlays",
        "-o",
        str(tmp_path / "set"),
    ]
    rc, _, stderr = _run(capsys, argv)
    assert rc == 0 and "using the embedded model" in stderr, stderr
    assert asked and set(asked) == {"one-prompt"}


@pytest.mark.parametrize("command", ["segment-video", "segment-images"])
def test_help_documents_the_prompt_syntax(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for part in ("--point", "X,Y[:LABEL]", "--box", "--prompts FILE.json", "--checkpoint", "--device",
                 "--memory-size", "masks/<stem>.png"):  # fmt: skip
        assert part in text
    assert ("--prompt-image" in text) == (command == "segment-images")


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("memory", "size", "expected"),
    [
        ("fifo", None, {}),
        ("fifo", 2, {"num_maskmem": 2}),
        ("fifo", 7, {"num_maskmem": 7}),
        ("self-sorting", 3, {"seed": 0, "capacity": 3}),
        ("self-sorting", None, {"seed": 0}),
    ],
)
def test_memory_size_means_slots_for_fifo_and_capacity_for_self_sorting(
    memory: str, size: int | None, expected: dict[str, int]
) -> None:
    """One meaning in every command: evaluate and segment-batch pass fifo's slots as num_maskmem too."""
    from medsam2.cli.common import CommonOptions, memory_options

    opts = CommonOptions(None, None, None, "cpu", memory, size, 0, Path("."), False, False)
    assert memory_options(opts, 7) == expected


def test_fifo_memory_size_reaches_the_policy(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["segment-video", str(data / "frames_jpg"), "--point", "0:60,40", "--memory", "fifo", "--memory-size", "3",
            "--no-overlays", "--checkpoint", str(data / "tiny.safetensors"), "-o", str(out)]  # fmt: skip
    rc, _, stderr = _run(capsys, argv)
    assert rc == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["memory"] == "fifo" and summary["memory_options"] == {"num_maskmem": 3}


C = "--checkpoint {D}/tiny.safetensors -o {O}"
ERRORS = [
    ("missing folder", "segment-video {D}/nope --box 0:1,1,5,5 " + C, "FRAMES_DIR {D}/nope: folder not found"),
    ("bad point syntax", "segment-video {D}/frames_png --point 0:1;2 " + C, "--point 0:1;2: expected F:X,Y[:LABEL]"),
    ("point without frame", "segment-video {D}/frames_png --point 1,2 " + C, "--point 1,2: expected F:X,Y"),
    ("point not a number", "segment-video {D}/frames_png --point 0:a,2 " + C, "--point 0:a,2: X 'a' is not a number"),
    ("bad label", "segment-video {D}/frames_png --point 0:1,2:3 " + C, "LABEL must be 1 (positive) or 0"),
    ("frame out of range", "segment-video {D}/frames_png --point 9:10,10 " + C, "--point 9:10,10: frame 9 does not exist (frames 0..3)"),
    ("point outside", "segment-video {D}/frames_png --point 0:200,10 " + C, "--point 0:200,10: (200, 10) is outside frame 0"),
    ("negative point", "segment-video {D}/frames_png --point 0:-1,10 " + C, "is outside frame 0"),
    ("box x1 < x0", "segment-video {D}/frames_png --box 0:50,10,20,30 " + C, "--box 0:50,10,20,30: box corners in the wrong order"),
    ("box 3 numbers", "segment-video {D}/frames_png --box 0:1,2,3 " + C, "--box 0:1,2,3: expected F:X0,Y0,X1,Y1"),
    ("two boxes", "segment-video {D}/frames_png --box 0:1,2,3,4 --box 0:1,2,5,6 " + C, "only one box per object and frame"),
    ("unknown frame name", "segment-video {D}/frames_png --box 9.png:1,1,5,5 " + C, "no input image is named '9.png'"),
    ("unknown image name", "segment-images {D}/imgs/a.png {D}/imgs/b.png --box zzz.png:1,1,5,5 " + C, "--box zzz.png:1,1,5,5: no input image is named 'zzz.png'"),
    ("malformed json", "segment-video {D}/frames_png --prompts {D}/bad.json " + C, "--prompts {D}/bad.json: not valid JSON (line 1"),
    ("json unknown key", "segment-video {D}/frames_png --prompts {D}/unknown_key.json " + C, "objects[0].prompts[0]: unknown key(s) 'pont'"),
    ("json duplicate id", "segment-video {D}/frames_png --prompts {D}/dup.json " + C, "object id 1 is used twice"),
    ("json id 0", "segment-video {D}/frames_png --prompts {D}/zero_id.json " + C, "objects[0].id: must be an integer 1..65535"),
    ("json flat box", "segment-video {D}/frames_png --prompts {D}/bad_box.json " + C, ".box: expected [[x0, y0], [x1, y1]]"),
    ("json missing", "segment-video {D}/frames_png --prompts {D}/none.json " + C, "--prompts {D}/none.json: file not found"),
    ("mask wrong size", "segment-video {D}/frames_png --prompts {D}/small_mask.json " + C, "is 10x10 pixels, frame 0 is 128x96"),
    ("json and flags", "segment-video {D}/frames_png --prompts {D}/dup.json --point 0:1,1 " + C, "--prompts cannot be combined"),
    ("no prompts", "segment-video {D}/frames_png " + C, "no prompts: give --point, --box or --prompts"),
    ("missing checkpoint", "segment-video {D}/frames_png --point 0:1,1 -o {O}", "no --checkpoint given and no embedded model"),
    ("checkpoint not found", "segment-video {D}/frames_png --point 0:1,1 --checkpoint {D}/x.pt -o {O}", "--checkpoint {D}/x.pt: file not found"),
    ("corrupt checkpoint", "segment-video {D}/frames_png --point 0:1,1 --checkpoint {D}/garbage.pt -o {O}", "error: {D}/garbage.pt: "),
    ("unknown preset", "segment-video {D}/frames_png --point 0:1,1 --preset huge " + C, "--preset huge: unknown preset 'huge'"),
    ("unknown device", "segment-video {D}/frames_png --point 0:1,1 --device tpu " + C, "--device tpu: unknown device"),
    ("unknown memory", "segment-video {D}/frames_png --point 0:1,1 --memory lru " + C, "--memory lru: unknown memory policy"),
    ("memory size text", "segment-video {D}/frames_png --point 0:1,1 --memory-size abc " + C, "--memory-size abc: expected an integer"),
    ("memory size 0", "segment-images {D}/imgs/a.png --point 0:1,1 --memory-size 0 " + C, "--memory-size 0: must be >= 1"),
    ("fifo memory size", "segment-video {D}/frames_png --point 0:1,1 --memory-size 8 " + C, "--memory-size 8: fifo takes 2..7 memory slots"),
    ("bad direction", "segment-video {D}/frames_png --point 0:1,1 --direction up " + C, "--direction up: choose both"),
    ("no output", "segment-video {D}/frames_png --point 0:1,1 --checkpoint {D}/tiny.safetensors", "-o/--output is required"),
    ("image missing", "segment-images {D}/imgs/a.png {D}/imgs/q.png --point 0:1,1 " + C, "IMAGE {D}/imgs/q.png: image file not found"),
    ("image folder", "segment-images {D}/imgs --point 0:1,1 " + C, "IMAGE {D}/imgs: is a folder"),
    ("no prompt image", "segment-images {D}/imgs/a.png {D}/imgs/b.png --point 1,1 " + C, "--point 1,1: name the image (F:...) or give exactly one --prompt-image"),
    ("prompt image unused", "segment-images {D}/imgs/a.png --prompt-image {D}/imgs/b.png --point a.png:1,1 " + C, "--prompt-image {D}/imgs/b.png: no prompt refers to this image"),
    ("same stem", "segment-images {D}/imgs/a.png {D}/frames_png/00000.png {D}/frames_jpg/00000.jpg --point a.png:1,1 " + C, "both would be written as masks/00000.png"),
    ("image twice", "segment-images {D}/imgs/a.png {D}/imgs/a.png --point 0:1,1 " + C, "IMAGE {D}/imgs/a.png: given twice"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_input_one_line_exit_2_nothing_written(
    argv: str,
    message: str,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "EMBEDDED_MODULE", "medsam2.model._no_embedded_model_in_tests")
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    rc, stdout, stderr = _run(capsys, shlex.split(argv.format(D=data, O=out)))
    assert rc == 2
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert message.format(D=data) in stderr
    assert stderr.startswith(f"medsam2 {argv.split()[0]}: error: ")
    assert list(work.iterdir()) == []  # no output folder, no staging folder


def test_unreadable_frame_mid_propagation_leaves_nothing(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        Image.fromarray(_frame(t)).save(frames / f"{t:05d}.png")
    (frames / "00003.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "work" / "out"
    argv = ["segment-video", str(frames), "--point", "0:30,48", "--checkpoint", str(data / "tiny.safetensors"),
            "-o", str(out)]  # fmt: skip
    rc, _, stderr = _run(capsys, argv)
    assert rc == 2 and "00003.png: not a readable image" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "work").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_is_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["segment-video", str(data / "frames_png"), "--point", "0:1,1", "--device", "cuda",
            "--checkpoint", str(data / "tiny.safetensors"), "-o", str(tmp_path / "out")]  # fmt: skip
    rc, _, stderr = _run(capsys, argv)
    assert rc == 2 and "--device cuda: CUDA is not available" in stderr and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- prompt parser

POINTS = [
    ("3:10,20", False, PointPrompt(3, 10.0, 20.0, 1, "--point 3:10,20")),
    ("3:10.5,20:0", False, PointPrompt(3, 10.5, 20.0, 0, "--point 3:10.5,20:0")),
    ("case 1.png:1,2:1", False, PointPrompt("case 1.png", 1.0, 2.0, 1, "--point case 1.png:1,2:1")),
    ("a:b.png:1,2", False, PointPrompt("a:b.png", 1.0, 2.0, 1, "--point a:b.png:1,2")),
    ("1,2", True, PointPrompt(None, 1.0, 2.0, 1, "--point 1,2")),
    ("1,2:0", True, PointPrompt(None, 1.0, 2.0, 0, "--point 1,2:0")),
]


@pytest.mark.parametrize(("value", "optional", "expected"), POINTS)
def test_parse_point(value: str, optional: bool, expected: PointPrompt) -> None:
    assert parse_point(value, optional) == expected


def test_parse_box() -> None:
    assert parse_box("00003.jpg:1,2,3,4") == BoxPrompt("00003.jpg", 1, 2, 3, 4, "--box 00003.jpg:1,2,3,4")
    assert parse_box("1,2,3,4", True).frame is None


@pytest.mark.parametrize(
    "value", ["", "3", "3:", "3:1", "3:1,2,3", ":1,2", "3:1,2:", "3:1,2:yes", "3:nan,1", "3:1,inf", "1,2"]
)
def test_parse_point_rejects(value: str) -> None:
    with pytest.raises(PromptError, match=r"^--point "):
        parse_point(value)


@pytest.mark.parametrize("value", ["", "1,2,3,4", "0:1,2,3", "0:1,2,3,4,5", "0:1,2,x,4", "0:1,2:3,4"])
def test_parse_box_rejects(value: str) -> None:
    with pytest.raises(PromptError, match=r"^--box "):
        parse_box(value)
