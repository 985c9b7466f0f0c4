"""Box chaining (`medsam2.engine.box_chain`): its pieces, and what it does on a real volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsam2.engine.box_chain import (
    BoxChain,
    box_from_logits,
    check_tracker,
    clip_to_box,
    consistent,
    mask_intensity,
)
from medsam2.errors import ConfigError


def _logits(rows: slice, cols: slice, size: int = 16) -> torch.Tensor:
    out = torch.full((1, 1, size, size), -8.0)
    out[0, 0, rows, cols] = 8.0
    return out


def test_box_from_logits_is_the_tight_box_in_model_pixels_widened_and_clipped() -> None:
    # low-res cells 4..7 (rows) x 2..9 (columns) of 16, image 64 px: 4 px per cell
    points = box_from_logits(_logits(slice(4, 8), slice(2, 10)), 64, 0.0)
    assert points is not None
    corners, labels = points
    assert labels.tolist() == [[2, 3]]
    x0, y0, x1, y1 = corners.reshape(-1).tolist()
    # bilinear resampling puts the edge half a cell inside the cells' outer pixels
    assert 6 <= x0 <= 10 and 37 <= x1 <= 41 and 14 <= y0 <= 18 and 29 <= y1 <= 33
    wide = box_from_logits(_logits(slice(4, 8), slice(2, 10)), 64, 0.25)
    assert wide is not None
    wx0, wy0, wx1, wy1 = wide[0].reshape(-1).tolist()
    assert wx0 == pytest.approx(x0 - 0.25 * (x1 - x0 + 1)) and wy1 == pytest.approx(y1 + 0.25 * (y1 - y0 + 1))
    edge = box_from_logits(_logits(slice(0, 16), slice(0, 16)), 64, 0.5)
    assert edge is not None and edge[0].reshape(-1).tolist() == [0.0, 0.0, 63.0, 63.0]
    assert box_from_logits(torch.full((1, 1, 16, 16), -8.0), 64, 0.1) is None


def test_clip_to_box_keeps_the_widened_box_at_any_resolution() -> None:
    """A box x 16..31, y 8..23 in a 64 px model input, widened by a quarter (4 px) each side:
    x 12..35, y 4..27 stays, in model pixels (64 x 64) as in the low-res grid (16 x 16)."""
    from medsam2.engine.box_chain import CLIPPED_LOGIT

    corners = torch.tensor([[[16.0, 8.0], [31.0, 23.0]]])
    full = clip_to_box(torch.ones(1, 1, 64, 64), corners, 0.25, 64)
    kept = torch.nonzero(full[0, 0] > 0)
    assert (
        kept[:, 0].min() == 4 and kept[:, 0].max() == 27 and kept[:, 1].min() == 12 and kept[:, 1].max() == 35
    )
    assert (full[full <= 0] == CLIPPED_LOGIT).all()
    low = clip_to_box(torch.ones(1, 3, 16, 16), corners, 0.25, 64)  # every mask of the batch
    rows, cols = torch.nonzero(low[0, 2] > 0)[:, 0], torch.nonzero(low[0, 2] > 0)[:, 1]
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 6, 3, 8)
    edge = clip_to_box(torch.ones(1, 1, 16, 16), torch.tensor([[[0.0, 0.0], [63.0, 63.0]]]), 0.5, 64)
    assert (edge > 0).all()


def test_mask_intensity_and_the_consistency_rule() -> None:
    frame = torch.zeros(3, 64, 64)
    frame[:, 16:32, 16:32] = 2.0  # an object of intensity 2 in the model's normalised units
    frame[:, 40:56, 40:56] = 1.0  # a darker neighbour
    ref = mask_intensity(frame, _logits(slice(4, 8), slice(4, 8)))
    assert ref is not None and ref[0] == pytest.approx(2.0, abs=0.05) and ref[1] < 0.2
    other = mask_intensity(frame, _logits(slice(10, 14), slice(10, 14)))
    assert other is not None and other[0] == pytest.approx(1.0, abs=0.05)
    assert mask_intensity(frame, torch.full((1, 1, 16, 16), -8.0)) is None
    chain = BoxChain(tolerance=1.5, min_std=0.1)
    assert consistent(chain, ref, ref)
    assert consistent(chain, (2.0, 0.0), (2.14, 0.0))  # within 1.5 x the floor of the spread
    assert not consistent(chain, (2.0, 0.0), (2.16, 0.0))
    assert not consistent(chain, ref, other)  # drifted onto the neighbour
    assert not consistent(chain, ref, None) and not consistent(chain, None, ref)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margin": -0.1}, "margin must be >= 0"),
        ({"margin": 0.2, "clip": 0.1}, r"clip must be >= margin \(0.2\) or None, got 0.1"),
        ({"tolerance": 0.0}, "tolerance must be > 0"),
        ({"min_std": float("nan")}, "min_std must be > 0"),
        ({"bridge": -1}, r"bridge must be an int >= 0, got -1"),
        ({"bridge": 1.5}, r"bridge must be an int >= 0, got 1.5"),
    ],
)
def test_box_chain_settings_are_checked(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BoxChain(**kwargs)


def test_unknown_tracker_is_refused_with_the_choices() -> None:
    assert check_tracker("box-chain") == "box-chain"
    with pytest.raises(ConfigError, match=r"tracker must be one of memory, box-chain, got 'boxes'"):
        check_tracker("boxes")


@pytest.fixture(scope="module")
def track_model():  # noqa: ANN201
    from medsam2 import load_model
    from medsam2.model.embedded import checkpoint_path

    path = checkpoint_path("nano-track")
    assert path is not None
    torch.manual_seed(0)
    return load_model(path)


def _box(truth: np.ndarray) -> tuple[int, tuple[int, int, int], tuple[int, int, int]]:
    k = int(truth.sum((0, 1)).argmax())
    xs, ys = np.nonzero(truth[:, :, k])
    return k, (int(xs.min()), int(ys.min()), k), (int(xs.max()), int(ys.max()), k)


def test_box_chain_follows_a_phantom_organ_and_stops_at_its_ends(track_model) -> None:  # noqa: ANN001
    """The embedded nano-track on a validation CT phantom (seed 8000): one box on the spleen's
    largest slice. Box chaining scores above the copy-mask baseline (the true boxed-slice mask on
    every true slice), where the memory path scores below it, and leaves no voxel more than two
    slices past the organ's ends (the chain stopped)."""
    from medsam2.data.phantoms import ct_phantom
    from medsam2.evaluation.metrics import dice_np
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    ph = ct_phantom(seed=8000)
    truth = ph.label == 4
    k, lo, hi = _box(truth)
    obj = VolumeObject(1, "spleen", boxes=(VoxelBox(lo, hi),))
    chained = segment_volume(track_model, ph.volume, [obj], tracker="box-chain").labels == 1
    memory = segment_volume(track_model, ph.volume, [obj], tracker="memory").labels == 1
    slices = np.flatnonzero(truth.any((0, 1)))
    copy = np.zeros_like(truth)
    copy[:, :, slices] = truth[:, :, k : k + 1]
    assert dice_np(chained, truth) > dice_np(copy, truth) > dice_np(memory, truth)
    found = np.flatnonzero(chained.any((0, 1)))
    assert found.min() >= slices.min() - 2 and found.max() <= slices.max() + 2


def test_box_chain_reaches_back_from_an_object_prompted_later(track_model) -> None:  # noqa: ANN001
    """Two objects boxed on different slices: the later one is chained backward from its own
    prompt (before the forward pass starts at the earlier one), so each object comes out as it
    does alone, apart from pixels the other object wins."""
    from medsam2.data.phantoms import ct_phantom
    from medsam2.volume import VolumeObject, VoxelBox, segment_volume

    ph = ct_phantom(seed=8000)
    objects = []
    for oid, value in ((1, 3), (2, 4)):  # left kidney, spleen
        k, lo, hi = _box(ph.label == value)
        objects.append(VolumeObject(oid, str(value), boxes=(VoxelBox(lo, hi),)))
    ks = [o.boxes[0].corner0[2] for o in objects]
    assert ks[0] != ks[1]  # prompted on different slices
    both = segment_volume(track_model, ph.volume, objects, tracker="box-chain").labels
    for obj in objects:
        alone = segment_volume(track_model, ph.volume, [obj], tracker="box-chain").labels == obj.obj_id
        mine = both == obj.obj_id
        assert alone.sum() > 500
        assert not (mine & ~alone).any()  # nothing that the object alone does not have
        lost = alone & ~mine
        assert (both[lost] != 0).all()  # what it lost, the other object took
        assert lost.sum() < 0.05 * alone.sum()


def test_box_chain_in_an_interactive_session_runs_each_direction(track_model) -> None:  # noqa: ANN001
    """VideoPredictor with tracker="box-chain" (not one-shot): forward-only leaves the slices before
    the prompt empty, backward-only those after it, and "both" is their union."""
    from medsam2 import VideoPredictor
    from medsam2.data.phantoms import ct_phantom
    from medsam2.preprocessing import normalize_volume

    ph = ct_phantom(seed=8000)
    frames = np.moveaxis(normalize_volume(ph.volume, None), 2, 0)[:, ::-1].transpose(
        0, 2, 1
    )  # any order works
    truth = np.moveaxis(ph.label == 4, 2, 0)[:, ::-1].transpose(0, 2, 1)
    k = int(truth.sum((1, 2)).argmax())
    ys, xs = np.nonzero(truth[k])
    vp = VideoPredictor(track_model, tracker="box-chain")
    vp.start(np.ascontiguousarray(frames, dtype=np.float32))
    vp.add_prompt(k, 1, box=[int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())])
    masks = {
        d: {f: o.masks[0].numpy() for f, o in vp.segment(d).items()} for d in ("forward", "backward", "both")
    }
    assert all(not masks["forward"].get(f, np.zeros(1, bool)).any() for f in range(k))
    assert all(not masks["backward"].get(f, np.zeros(1, bool)).any() for f in range(k + 1, len(frames)))
    for f in range(len(frames)):
        ref = masks["forward"][f] if f >= k else masks["backward"][f]
        assert np.array_equal(masks["both"][f], ref)
    assert sum(int(m.any()) for m in masks["both"].values()) > 5


@pytest.fixture(scope="module")
def chain_model():  # noqa: ANN201
    from medsam2 import load_model
    from medsam2.model.embedded import checkpoint_path

    path = checkpoint_path("nano-chain")
    assert path is not None
    return load_model(path)


def test_a_correction_in_a_box_chain_session_is_the_chained_box_plus_the_click(
    chain_model,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A click on a chained slice (validation CT phantom 8000, the aorta, the worst chained slice,
    clicked where a user would) is decoded without memory, from the box of that slice's chained
    mask followed by the click. With nano-chain the aorta survives it (through the memory, which
    nano-chain no longer reads, stage 7f's clicks turned such slices' 0.89 into 0.09;
    docs/embedded_model.md, "Corrections and stage 7h"), and a box given with the click replaces
    the chained one."""
    from correction_helpers import tight_box, user_click

    from medsam2 import VideoPredictor
    from medsam2.data.phantoms import ct_phantom
    from medsam2.evaluation.metrics import dice_np
    from medsam2.preprocessing import normalize_volume, slice_geometry, volume_to_frames

    ph = ct_phantom(seed=8000)
    geom = slice_geometry(ph.volume, "auto")
    frames = volume_to_frames(normalize_volume(ph.volume, None), geom)
    truth = volume_to_frames(ph.label == 6, geom)
    k = int(truth.sum((1, 2)).argmax())
    vp = VideoPredictor(chain_model)  # nano-chain's own tracker: box chaining
    assert vp.tracker == "box-chain"
    vp.start(frames)
    vp.add_prompt(k, 1, box=tight_box(truth[k]))
    first = {f: o.masks[0].numpy() for f, o in vp.segment().items()}
    t = min((f for f in first if f != k and truth[f].any()), key=lambda f: dice_np(first[f], truth[f]))
    click = user_click(first[t], truth[t])
    assert click is not None
    chained = vp.session.objects[1].results[t].low_res_logits.clone()  # type: ignore[union-attr]

    seen = []
    decode = chain_model.decode

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(args[2])
        return decode(*args, **kwargs)

    def no_memory(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a box-chain correction must not read the memory")

    monkeypatch.setattr(chain_model, "decode", spy)
    monkeypatch.setattr(chain_model, "condition_on_memory", no_memory)
    out = vp.add_prompt(t, 1, points=[click[0]], labels=[click[1]])
    ((coords, labels),) = seen
    expected = box_from_logits(chained, chain_model.image_size, 0.0)
    assert expected is not None
    assert labels.tolist() == [[2, 3, click[1]]]
    assert torch.allclose(coords[0, :2], expected[0][0])
    h, w = truth[t].shape
    size = chain_model.image_size
    assert coords[0, 2].tolist() == pytest.approx([click[0][0] / w * size, click[0][1] / h * size], abs=1e-3)
    before, after = dice_np(first[t], truth[t]), dice_np(out.masks[0].numpy(), truth[t])
    assert before > 0.8 and after > before - 0.05

    seen.clear()
    user = [10.0, 12.0, 40.0, 44.0]
    vp.add_prompt(t, 1, box=user, points=[click[0]], labels=[click[1]], clear=True)
    ((coords, labels),) = seen
    assert labels.tolist() == [[2, 3, click[1]]]
    assert coords[0, :2].flatten().tolist() == pytest.approx(
        [user[0] / w * size, user[1] / h * size, user[2] / w * size, user[3] / h * size], abs=1e-3
    )


def _liver_slices() -> tuple[np.ndarray, np.ndarray, int, int]:
    """The liver of validation CT phantom 8000 as frames and truth (T, H, W), its largest slice k
    and a slice t at a fifth of its range, at least 8 below k."""
    from medsam2.data.phantoms import ct_phantom
    from medsam2.preprocessing import normalize_volume, slice_geometry, volume_to_frames

    ph = ct_phantom(seed=8000)
    geom = slice_geometry(ph.volume, "auto")
    frames = volume_to_frames(normalize_volume(ph.volume, None), geom)
    truth = volume_to_frames(ph.label == 1, geom)
    k = int(truth.sum((1, 2)).argmax())
    present = np.flatnonzero(truth.any((1, 2)))
    t = int(present[len(present) // 5])
    assert k - t >= 8
    return frames, truth, k, t


def test_each_slice_is_chained_from_the_nearest_prompt_of_its_object(chain_model) -> None:  # noqa: ANN001
    """An object boxed on two slices t < k of a validation CT phantom (the liver): the slices
    between them nearer t come out as a session prompted on t alone gives them (chained forward
    from t), those nearer k as one prompted on k alone (chained backward from k); before, the
    forward chain from t ran on to k."""
    from correction_helpers import tight_box

    from medsam2 import VideoPredictor

    frames, truth, k, t = _liver_slices()

    def run(prompted: list[int]) -> dict[int, np.ndarray]:
        vp = VideoPredictor(chain_model, tracker="box-chain")
        vp.start(frames)
        for f in prompted:
            vp.add_prompt(f, 1, box=tight_box(truth[f]))
        return {f: o.masks[0].numpy() for f, o in vp.segment().items()}

    both, from_t, from_k = run([t, k]), run([t]), run([k])
    mid = (t + k) // 2
    for f in range(t + 1, mid + 1):
        assert np.array_equal(both[f], from_t[f]), f
    for f in range(mid + 1, k):
        assert np.array_equal(both[f], from_k[f]), f
    assert any(not np.array_equal(from_t[f], from_k[f]) for f in range(mid + 1, k))  # the rule matters
    assert sum(int(both[f].any()) for f in range(t, k + 1)) == k - t + 1  # no chain stopped here


def test_a_correction_re_chains_the_slices_beyond_it_and_the_box_keeps_the_rest(
    chain_model,  # noqa: ANN001
) -> None:
    """The liver of a validation CT phantom boxed on its largest slice k, then one click on a
    chained slice t below it (where a user would put it, on that slice's error), for three
    slices t in turn. Propagating again, the slices between t and k stay as the box alone chains
    them (a correction re-chains no slice its box answered: with the nearest prompt, a correction
    that is still poor spread over half of them; docs/embedded_model.md, "Corrections and stage
    7h"). The slices below t are chained from t's corrected answer when that answer passes the
    boxed object's check (`start_chain`) and boxes the next slice differently from the answer it
    replaced (their answers change, in logits at least); otherwise they keep the box's chain, to
    the bit. At least one of the three does both."""
    from correction_helpers import tight_box, user_click

    from medsam2 import VideoPredictor
    from medsam2.engine.box_chain import box_from_logits, start_chain

    frames, truth, k, first_t = _liver_slices()
    seeded = 0
    for t in range(first_t, first_t + 3):
        vp = VideoPredictor(chain_model, tracker="box-chain")
        session = vp.start(frames)
        vp.add_prompt(k, 1, box=tight_box(truth[k]))
        first = {f: o.masks[0].numpy() for f, o in vp.segment().items()}
        obj = session.objects[1]
        logits = {f: r.low_res_logits.clone() for f, r in obj.results.items() if f < t}
        click = user_click(first[t], truth[t])
        assert click is not None and session.box_chain is not None
        margin = session.box_chain.margin
        old_box = box_from_logits(obj.results[t].low_res_logits, session.image_size, margin)
        corrected = vp.add_prompt(t, 1, points=[click[0]], labels=[click[1]]).masks[0].numpy()
        assert not np.array_equal(corrected, first[t])
        new_box = box_from_logits(obj.results[t].low_res_logits, session.image_size, margin)
        assert old_box is not None and new_box is not None
        moved = not torch.equal(old_box[0], new_box[0])
        seeds = start_chain(session, obj, t).last is not None and moved
        again = {f: o.masks[0].numpy() for f, o in vp.segment().items()}
        assert np.array_equal(again[t], corrected)
        for f in range(t + 1, len(frames)):
            assert np.array_equal(again[f], first[f]), (t, f)
        # answers below t that changed (logits: a moved box may still give the same pixels)
        below = [
            f
            for f in range(t)
            if (f in logits) != (f in obj.results)
            or (f in logits and not torch.equal(logits[f], obj.results[f].low_res_logits))
        ]
        if seeds:  # the slice next to the correction follows it
            assert below and below[-1] == t - 1, (t, below)
        else:
            assert not below, (t, below)
        seeded += seeds
    assert seeded >= 1


def _gap_volume() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (28, 64, 64) of a bright disc on slices 0-9 and 13-22 in dark noise, the truth
    (28, 64, 64) and the disc (64, 64)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 30) ** 2 + (xx - 34) ** 2 <= 14**2
    present = np.array([t < 10 or 13 <= t <= 22 for t in range(28)])
    truth = np.stack([disc & p for p in present])
    frames = (0.15 + 0.65 * truth + rng.normal(0, 0.03, truth.shape)).astype(np.float32)
    return frames, truth, disc


def test_the_chain_bridges_a_short_gap_and_still_stops_at_the_object_s_end(chain_model) -> None:  # noqa: ANN001
    """A bright disc on slices 0-9 and 13-22 of a noisy dark volume, nothing on the gap 10-12
    and after 22 (an object that a dark midline cuts in two, like a hemisphere's white matter
    on sagittal slices), boxed on slice 5. Without a bridge the chain stops at the gap; with the
    default one it leaves the gap empty, goes on over the disc's second part, and still stops
    at its end."""
    from medsam2 import VideoPredictor
    from medsam2.evaluation.metrics import dice_np

    frames, truth, disc = _gap_volume()
    masks = {}
    for bridge in (0, BoxChain().bridge):
        vp = VideoPredictor(chain_model, tracker=BoxChain(bridge=bridge))
        vp.start(frames)
        ys, xs = np.nonzero(disc)
        vp.add_prompt(5, 1, box=[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())])
        masks[bridge] = np.stack([o.masks[0].numpy() for _, o in sorted(vp.segment().items())])
    assert BoxChain().bridge == 3
    assert dice_np(masks[0][:10], truth[:10]) > 0.9 and not masks[0][10:].any()
    bridged = masks[3]
    assert dice_np(bridged, truth) > 0.9
    assert not bridged[10:13].any() and not bridged[23:].any()
    assert dice_np(bridged[13:23], truth[13:23]) > 0.9


def test_a_click_on_a_slice_the_chain_left_empty_borrows_the_nearest_chained_box(
    chain_model,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disc cut by a gap, chained without a bridge from slice 5: the chain stops at the gap
    and leaves slices 13-22 empty. A positive click on slice 15 is decoded from the box of the
    nearest chained mask (slice 9) followed by the click, as the chain would have boxed it. With
    the click alone, the validation T1 phantoms' clicked slices scored 0.33 (0.63 so;
    docs/embedded_model.md, "Corrections that stay where they belong, and gaps the chain
    bridges")."""
    from medsam2 import VideoPredictor
    from medsam2.evaluation.metrics import dice_np

    frames, truth, disc = _gap_volume()
    vp = VideoPredictor(chain_model, tracker=BoxChain(bridge=0))
    vp.start(frames)
    ys, xs = np.nonzero(disc)
    vp.add_prompt(5, 1, box=[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())])
    first = vp.segment()
    assert not first[15].masks[0].any()
    nearest = vp.session.objects[1].results[9].low_res_logits.clone()  # type: ignore[union-attr]
    seen = []
    decode = chain_model.decode

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(args[2])
        return decode(*args, **kwargs)

    monkeypatch.setattr(chain_model, "decode", spy)
    out = vp.add_prompt(15, 1, points=[[34.0, 30.0]], labels=[1])
    ((coords, labels),) = seen
    expected = box_from_logits(nearest, chain_model.image_size, 0.0)
    assert expected is not None
    assert labels.tolist() == [[2, 3, 1]]
    assert torch.allclose(coords[0, :2], expected[0][0])
    assert dice_np(out.masks[0].numpy(), truth[15]) > 0.9


def test_a_correction_seeds_a_chain_only_if_it_looks_like_the_boxed_object(chain_model) -> None:  # noqa: ANN001
    """A bright disc on slices 0-9, boxed on slice 5, and a darker disc on slices 12-20 (another
    structure). A click on the dark disc (slice 16) is kept on its slice, but its answer does not
    look like the boxed object, so no chain starts from it: on the validation T1 phantoms such
    wrong corrections of a kidney's end slices were chained over up to 18 slices the kidney never
    reaches. A box of its own on the dark disc chains over it."""
    from medsam2 import VideoPredictor

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 30) ** 2 + (xx - 34) ** 2 <= 14**2
    level = np.array([0.8 if t < 10 else 0.45 if 12 <= t <= 20 else 0.15 for t in range(26)], np.float32)
    frames = np.where(disc, level[:, None, None], 0.15) + rng.normal(0, 0.03, (26, 64, 64))
    frames = frames.astype(np.float32)
    ys, xs = np.nonzero(disc)

    box = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]

    def run(boxed: int, clicked: bool) -> dict[int, np.ndarray]:
        vp = VideoPredictor(chain_model, tracker="box-chain")
        vp.start(frames)
        vp.add_prompt(boxed, 1, box=box)
        vp.segment()
        if clicked:
            vp.add_prompt(16, 1, points=[[34.0, 30.0]], labels=[1])
        return {f: o.masks[0].numpy() for f, o in vp.segment().items()}

    corrected, own = run(5, True), run(16, False)
    assert corrected[16].sum() > 0.8 * disc.sum()
    assert not any(corrected[f].any() for f in (*range(10, 16), *range(17, 26)))
    assert all(own[f].sum() > 0.8 * disc.sum() for f in range(12, 21))  # chained from a box of its own


def test_box_chaining_encodes_memory_for_prompted_slices_only(
    chain_model,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing in a box-chaining session reads a memory, so the chained slices get none (the
    memory encoder took a fifth of a chained volume's time): one encoding for the boxed slice,
    none while 19 slices are chained, and the policy holds the prompted slice's memory only."""
    from medsam2 import VideoPredictor

    frames, truth, disc = _gap_volume()
    calls = []
    encode = chain_model.encode_memory

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(chain_model, "encode_memory", spy)
    vp = VideoPredictor(chain_model, tracker="box-chain")
    vp.start(frames)
    ys, xs = np.nonzero(disc)
    vp.add_prompt(5, 1, box=[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())])
    masks = vp.segment()
    assert sum(int(masks[f].masks[0].any()) for f in range(len(frames))) == 20
    assert len(calls) == 1
    obj = vp.session.objects[1]
    assert [e.frame_idx for e in obj.policy.entries()] == [5]
    assert all(r.memory is None for f, r in obj.results.items() if f != 5)
