"""Video propagation parity with the reference SAM2VideoPredictor (sam2==1.1.0), fifo memory.

Both sides read the same JPEG frames with the same loader numerics; random perturbed weights
are shared through a `{"model": state_dict}` file loaded by `load_model`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _reference import reference_model, require_reference
from PIL import Image

from medsam2 import VideoPredictor, load_model

require_reference()


@pytest.fixture(autouse=True)
def _inference_only():
    """Parity runs need no autograd; scoped to these tests (a global switch would leak)."""
    with torch.no_grad():
        yield


def _write_frames(folder: Path, n: int, h: int = 240, w: int = 320, seed: int = 0) -> Path:
    """A moving bright ellipse over smooth texture, as SAM 2-style numbered JPEGs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (60 + 40 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype(np.float64)
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        cy, cx = h * 0.5 + 10 * np.sin(t / 2), w * 0.3 + t * 12
        inside = ((yy - cy) / 40) ** 2 + ((xx - cx) / 55) ** 2 <= 1
        img = base + 120 * inside + rng.normal(0, 6, (h, w))
        rgb = np.clip(np.stack([img, img * 0.9, img * 0.8], -1), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def _reference_run(ref, folder: Path, prompts: list[tuple], reverse: bool, start: int | None):
    state = ref.init_state(video_path=str(folder))
    for frame, obj, kw in prompts:
        ref.add_new_points_or_box(state, frame_idx=frame, obj_id=obj, **kw)
    out = {}
    for f, obj_ids, masks in ref.propagate_in_video(state, start_frame_idx=start, reverse=reverse):
        scores = []
        for oid in obj_ids:
            d = state["output_dict_per_obj"][state["obj_id_to_idx"][oid]]
            o = d["cond_frame_outputs"].get(f) or d["non_cond_frame_outputs"][f]
            scores.append(float(o["object_score_logits"].reshape(())))
        out[f] = (list(obj_ids), masks[:, 0].float(), torch.tensor(scores))
    return out


def _ours_run(model, folder: Path, prompts: list[tuple], direction: str):
    vp = VideoPredictor(model, memory="fifo")
    vp.start(folder)
    for frame, obj, kw in prompts:
        vp.add_prompt(frame, obj, **kw)
    return {o.frame_idx: o for o in vp.propagate(direction=direction)}


def _compare(ours: dict, theirs: dict) -> dict[str, float]:
    assert sorted(ours) == sorted(theirs)
    worst = {"logits": 0.0, "scores": 0.0, "mask_agreement": 1.0}
    for f, (ids, logits, scores) in theirs.items():
        o = ours[f]
        assert list(o.obj_ids) == ids
        worst["logits"] = max(worst["logits"], float((o.logits - logits).abs().max()))
        worst["scores"] = max(worst["scores"], float((o.object_scores - scores).abs().max()))
        agree = float(((o.logits > 0) == (logits > 0)).float().mean())
        worst["mask_agreement"] = min(worst["mask_agreement"], agree)
    assert worst["logits"] <= 1e-2, worst
    assert worst["mask_agreement"] >= 0.999, worst
    assert worst["scores"] <= 1e-3, worst
    return worst


BOX = {"box": [70.0, 70.0, 170.0, 170.0]}
CLICKS = {"points": [[150.0, 120.0], [40.0, 30.0]], "labels": [1, 0]}

CASES = {
    # name: (prompts, reference reverse flag, reference start, our direction)
    "forward": ([(0, 1, BOX), (3, 1, CLICKS)], False, None, "forward"),
    "reverse": ([(7, 1, BOX), (4, 1, CLICKS)], True, 7, "backward"),
    "two_objects": (
        [(0, 1, BOX), (0, 2, {"points": [[260.0, 60.0]], "labels": [1]}), (2, 2, CLICKS)],
        False,
        None,
        "forward",
    ),
}


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_frames(tmp_path_factory.mktemp("video") / "frames", 8)


@pytest.mark.parametrize("name", ["sam2_hiera_t", "sam2.1_hiera_t"])
@pytest.mark.parametrize("case", list(CASES))
def test_video_parity_512(name: str, case: str, frames: Path, tmp_path: Path) -> None:
    if case == "two_objects" and name == "sam2_hiera_t":
        pytest.skip("two-object case runs on sam2.1 only, to keep the suite fast")
    prompts, reverse, start, direction = CASES[case]
    ref = reference_model(name, 512, video=True)
    torch.save({"model": ref.state_dict()}, tmp_path / "w.pt")
    model = load_model(tmp_path / "w.pt", image_size=512)
    theirs = _reference_run(ref, frames, prompts, reverse, start)
    ours = _ours_run(model, frames, prompts, direction)
    _compare(ours, theirs)


def test_video_parity_1024(tmp_path: Path) -> None:
    folder = _write_frames(tmp_path / "frames", 4, seed=1)
    ref = reference_model("sam2.1_hiera_t", 1024, video=True)
    torch.save({"model": ref.state_dict()}, tmp_path / "w.pt")
    model = load_model(tmp_path / "w.pt", image_size=1024)
    prompts = [(0, 1, BOX), (2, 1, CLICKS)]
    _compare(_ours_run(model, folder, prompts, "forward"), _reference_run(ref, folder, prompts, False, None))
