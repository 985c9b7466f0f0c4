"""Memory policies (fifo = SAM 2, self-sorting = MedSAM-2) on hand-built entries; no model."""

from __future__ import annotations

import itertools
import math
import random
import types
from unittest import mock

import pytest
import torch

from medsam2.config import ModelConfig
from medsam2.engine.memory import FifoPolicy, MemoryEntry, MemorySelection, SelfSortingPolicy, make_policy
from medsam2.engine.memory.base import pointer_tdiff_max
from medsam2.errors import ConfigError


def entry(frame: int, prompted: bool = False, feat=(1.0, 0.0), iou=0.9, score=1.0, embed=None) -> MemoryEntry:
    f = torch.tensor(feat, dtype=torch.float32).view(-1, 1, 1)
    e = None if embed is None else torch.tensor(embed, dtype=torch.float32)
    return MemoryEntry(frame, prompted, f, torch.zeros_like(f), torch.full((4,), float(frame)), iou, score, e)


def angle(deg: float) -> tuple[float, float]:
    return (math.cos(math.radians(deg)), math.sin(math.radians(deg)))


def mems(sel: MemorySelection) -> str:
    """The selected memories as 'frame:tpos ...' ('-' for no temporal encoding)."""
    return " ".join(f"{m.entry.frame_idx}:{'-' if m.tpos is None else m.tpos}" for m in sel.memories)


def ptrs(sel: MemorySelection) -> str:
    """The selected pointers as 'frame:tdiff ...'."""
    return " ".join(f"{p.entry.frame_idx}:{p.tdiff}" for p in sel.pointers)


def fifo_with(cond, non_cond, **kw) -> FifoPolicy:
    policy = FifoPolicy(**kw)
    for t, prompted in [(t, False) for t in non_cond] + [(t, True) for t in cond]:
        policy.add(entry(t, prompted=prompted))
    return policy


def frames(text: str) -> list[int]:
    """'1-3 20' -> [1, 2, 3, 20]."""
    spans = [(p.partition("-")[0], p.partition("-")[2] or p) for p in text.split()]
    return [t for lo, hi in spans for t in range(int(lo), int(hi) + 1)]


FWD_PTRS = " ".join(f"{10 - d}:{d}" for d in range(1, 10))  # 9:1 8:2 ... 1:9
REV_PTRS = " ".join(f"{10 + d}:{d}" for d in range(1, 10))  # 11:1 12:2 ... 19:9
S2_REV_PTRS = " ".join(f"{11 + d}:{d}" for d in range(1, 16))  # 12:1 ... 26:15
PAST, UNSIGNED = {"only_obj_ptrs_in_the_past": False}, {"use_signed_tpos": False}
S2, LIMIT2 = {"stride": 2}, {"max_cond_frames": 2}
FIFO_TABLE = [
    # (kwargs, cond, non_cond, frame, reverse, num_frames, memories (frame:tpos), pointers (frame:tdiff))
    ({}, "0", "1-9", 10, False, 30, "0:0 4:1 5:2 6:3 7:4 8:5 9:6", "0:10 " + FWD_PTRS),
    ({}, "20", "11-19", 10, True, 30, "20:0 16:1 15:2 14:3 13:4 12:5 11:6", "20:10 " + REV_PTRS),
    (PAST, "0 20", "9", 10, False, 30, "0:0 20:0 9:6", "0:10 20:-10 9:1"),
    ({**PAST, **UNSIGNED}, "0 20", "9", 10, False, 30, "0:0 20:0 9:6", "0:10 20:10 9:1"),
    (PAST, "0 20", "11", 10, True, 30, "0:0 20:0 11:6", "0:-10 20:10 11:1"),
    ({}, "0 20", "11", 10, True, 30, "0:0 20:0 11:6", "20:10 11:1"),
    (S2, "30", "0-9", 10, False, 40, "30:0 0:1 2:2 4:3 6:4 8:5 9:6", FWD_PTRS + " 0:10"),
    (S2, "0", "12-29", 11, True, 40, "0:0 22:1 20:2 18:3 16:4 14:5 12:6", S2_REV_PTRS),
    # max_cond_frames=2: the closest before (9) and after (30); 0 and 5 fill in as non-cond frames
    (LIMIT2, "0 5 9 30", "6-8", 10, False, 40, "9:0 30:0 5:2 6:3 7:4 8:5", "9:1 8:2 7:3 6:4 5:5 0:10"),
    # the pointer window shrinks with the sequence: min(num_frames, 16) - 1 steps
    ({}, "0", "1-3", 4, False, 5, "0:0 1:4 2:5 3:6", "0:4 3:1 2:2 1:3"),
    ({"num_maskmem": 3}, "0", "1-9", 10, False, None, "0:0 8:1 9:2", "0:10 " + FWD_PTRS),
    ({"num_maskmem": 0}, "0", "1-9", 10, False, None, "", ""),
]


@pytest.mark.parametrize("kw,cond,non_cond,frame,reverse,nf,want_mems,want_ptrs", FIFO_TABLE)
def test_fifo_table(kw, cond, non_cond, frame, reverse, nf, want_mems, want_ptrs):
    sel = fifo_with(frames(cond), frames(non_cond), **kw).select(frame, reverse, num_frames=nf)
    assert (mems(sel), ptrs(sel)) == (want_mems, want_ptrs)


def test_fifo_pointer_cap():
    policy = fifo_with([0], range(1, 40))
    sel = policy.select(40, num_frames=41)
    assert ptrs(sel) == " ".join(["0:40"] + [f"{40 - d}:{d}" for d in range(1, 16)])  # 1 + (16 - 1)
    # like the reference, the cap applies to the non-conditioning pointers only
    many = fifo_with(range(20), range(20, 25)).select(25, num_frames=26)
    assert len(many.pointers) == 20 + 5
    assert pointer_tdiff_max(16, 41) == 15 and pointer_tdiff_max(16, 5) == 4 and pointer_tdiff_max(16, 1) == 1


def test_fifo_add_replace_remove_reset():
    policy = fifo_with([5], [3, 4])
    policy.add(entry(4, prompted=True))  # a frame becomes conditioning: no longer a non-cond memory
    assert [(e.frame_idx, e.prompted) for e in policy.entries()] == [(3, False), (4, True), (5, True)]
    # conditioning entries in the order they became conditioning, as the reference's dict
    assert mems(policy.select(6)) == "5:0 4:0 3:4"
    policy.add(entry(5, prompted=True))  # same kind: keeps its place
    assert mems(policy.select(6)) == "5:0 4:0 3:4"
    policy.remove(4)
    policy.remove(99)  # absent: no-op
    assert [e.frame_idx for e in policy.entries()] == [3, 5] and 3 in policy and len(policy) == 2
    policy.reset()
    assert policy.entries() == [] and policy.select(6).is_empty


C = 4  # channel width of the stand-in reference model


def _stand_in(kw: dict, captured: dict) -> types.SimpleNamespace:
    """The attributes `_prepare_memory_conditioned_features` reads, with a capturing attention."""

    def attention(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens):
        captured.update(memory=memory[:, 0, 0], pos=memory_pos[:, 0, 0], n_ptr=num_obj_ptr_tokens)
        return torch.zeros(1, 1, C)

    n_mem = kw.get("num_maskmem", 7)
    tpos_table = torch.arange(n_mem, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 1, C)
    ns = types.SimpleNamespace(
        num_maskmem=n_mem, hidden_dim=C, mem_dim=C, training=False, maskmem_tpos_enc=tpos_table
    )
    ns.max_cond_frames_in_attn = kw.get("max_cond_frames", -1)
    ns.memory_temporal_stride_for_eval = kw.get("stride", 1)
    ns.max_obj_ptrs_in_encoder = kw.get("max_obj_ptrs", 16)
    ns.only_obj_ptrs_in_the_past_for_eval = kw.get("only_obj_ptrs_in_the_past", True)
    ns.use_signed_tpos_enc_to_obj_ptrs = kw.get("use_signed_tpos", True)
    ns.use_obj_ptrs_in_encoder = ns.add_tpos_enc_to_obj_ptrs = True
    ns.proj_tpos_enc_in_obj_ptrs = False
    ns.obj_ptr_tpos_proj, ns.memory_attention = torch.nn.Identity(), attention
    return ns


def reference_select(frame, reverse, cond, non_cond, num_frames, kw):
    """Run SAM2Base._prepare_memory_conditioned_features on a stand-in `self`; decode its choice:
    memories/pointers hold their frame index, slot table entries their index, sine PE = identity."""
    sb = pytest.importorskip("sam2.modeling.sam2_base", reason="reference sam2==1.1.0 not installed")
    captured: dict = {}
    fake = _stand_in(kw, captured)

    full = {t: torch.full((1, C, 1, 1), float(t)) for t in [*cond, *non_cond]}
    out = {
        t: {"maskmem_features": f, "maskmem_pos_enc": [f * 0], "obj_ptr": f.view(1, C)}
        for t, f in full.items()
    }
    outputs = {"cond_frame_outputs": {t: out[t] for t in cond}}
    outputs["non_cond_frame_outputs"] = {t: out[t] for t in non_cond}
    identity_pe = lambda pos, dim: pos.unsqueeze(-1).expand(-1, dim).float()  # noqa: E731
    with mock.patch.object(sb, "get_1d_sine_pe", identity_pe):
        feats = [torch.zeros(1, 1, C)]
        sb.SAM2Base._prepare_memory_conditioned_features(
            fake, frame, False, feats, feats, [(1, 1)], outputs, num_frames, track_in_reverse=reverse
        )
    values, pos = captured["memory"].tolist(), captured["pos"].tolist()
    n = len(values) - captured["n_ptr"]
    tmax = min(num_frames, fake.max_obj_ptrs_in_encoder) - 1
    memories = [f"{int(v)}:{fake.num_maskmem - 1 - int(p)}" for v, p in zip(values[:n], pos[:n], strict=True)]
    pointers = [f"{int(v)}:{round(p * tmax)}" for v, p in zip(values[n:], pos[n:], strict=True)]
    return " ".join(memories), " ".join(pointers)


def random_cases(count: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(count):
        num_frames = rng.randint(2, 45)
        frames = list(range(num_frames))
        rng.shuffle(frames)
        n_cond = rng.randint(1, min(5, num_frames))
        cond, rest = frames[:n_cond], frames[n_cond:]
        non_cond = [t for t in rest if rng.random() < 0.7]
        kw = {"num_maskmem": rng.choice([7, 7, 3, 1]), "max_obj_ptrs": rng.choice([16, 16, 5, 2])}
        kw.update(max_cond_frames=rng.choice([-1, -1, 2, 3]), stride=rng.choice([1, 1, 2, 3]))
        kw.update(only_obj_ptrs_in_the_past=rng.random() < 0.7, use_signed_tpos=rng.random() < 0.5)
        yield rng.randrange(num_frames), rng.random() < 0.5, cond, non_cond, num_frames, kw


def test_fifo_matches_reference_index_logic():
    pytest.importorskip("sam2.modeling.sam2_base", reason="reference sam2==1.1.0 not installed")
    for case in random_cases(400):
        frame, reverse, cond, non_cond, num_frames, kw = case
        policy = fifo_with(cond, non_cond, **kw)  # conditioning entries added in `cond`'s order
        sel = policy.select(frame, reverse, num_frames=num_frames)
        assert (mems(sel), ptrs(sel)) == reference_select(*case), case


def test_fifo_reads_covers_every_unprompted_selection():
    """What one-shot propagation may drop relies on `reads`: every non-prompted entry `select`
    picks (memory or pointer) lies in `reads`, across strides, windows and directions."""
    checked = 0
    for frame, reverse, cond, non_cond, num_frames, kw in random_cases(600, seed=1):
        policy = fifo_with(cond, non_cond, **kw)
        sel = policy.select(frame, reverse, num_frames=num_frames)
        reads = policy.reads(frame, reverse, num_frames)
        picked = {m.entry.frame_idx for m in sel.memories if not m.entry.prompted}
        picked |= {p.entry.frame_idx for p in sel.pointers if not p.entry.prompted}
        assert picked <= reads, (frame, reverse, kw, sorted(picked - reads))
        checked += len(picked)
    assert checked > 1000  # the cases do select unprompted entries


def test_fifo_reads_is_the_window_and_self_sorting_reads_anything():
    policy = FifoPolicy(num_maskmem=3, max_obj_ptrs=4)
    assert policy.reads(10, False, 30) == {8, 9, 7}  # memories 8, 9; pointers 9, 8, 7
    assert policy.reads(10, True, 30) == {11, 12, 13}
    assert policy.reads(1, False, 30) == {0, -1}  # the memory rule's frame before 0 matches nothing
    assert FifoPolicy(num_maskmem=0).reads(5) == frozenset()
    assert SelfSortingPolicy().reads(5, False, 30) is None


def bank_frames(policy: SelfSortingPolicy) -> list[int]:
    return [e.frame_idx for e in policy.bank()]


def filled(capacity, feats, ious=None, **kw) -> SelfSortingPolicy:
    policy = SelfSortingPolicy(capacity=capacity, **kw)
    for i, f in enumerate(feats):
        policy.add(entry(i, feat=f, iou=0.9 if ious is None else ious[i]))
    return policy


E1, E2, E3 = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)

ADMISSION_TABLE = [
    # (bank features (frames 0..), bank ious, newcomer feat, newcomer iou, outcome, evicted, bank after)
    # least similar to the 180 deg newcomer: frame 0 (0 deg); its nearest neighbour 1 (10 deg) is replaced
    ([angle(0), angle(10), angle(90)], None, angle(180), 0.9, "replaced", 1, [0, 2, 9]),
    ([angle(0), angle(10), angle(90)], [0.9, 0.9, 0.9], angle(180), 0.79, "low-iou", None, [0, 1, 2]),
    # soft IoU: a newcomer a little worse than the neighbour still wins
    ([angle(0), angle(10), angle(90)], [0.9, 0.875, 0.9], angle(180), 0.8, "replaced", 1, [0, 2, 9]),
    # a newcomer similar to every entry of a diverse bank adds nothing: dropped
    ([E1, E2, E3], None, (1.0, 1.0, 1.0), 0.99, "redundant", None, [0, 1, 2]),
    # all identical: the identical newcomer is dropped (1 < 1 is false)
    ([E1, E1, E1], None, E1, 0.99, "redundant", None, [0, 1, 2]),
    # identical bank, new direction: least = frame 0 (tie -> lower frame), neighbour = frame 1 (tie)
    ([E1, E1, E1], None, E2, 0.9, "replaced", 1, [0, 2, 9]),
    # ties everywhere: least = frame 0, neighbour = frame 1
    ([E1, E2, E3], None, (-1.0, -1.0, -1.0), 0.9, "replaced", 1, [0, 2, 9]),
    # capacity 1: no neighbour, the bank keeps its first entry
    ([E1], None, E2, 0.9, "full", None, [0]),
]


@pytest.mark.parametrize("feats,ious,new_feat,new_iou,outcome,evicted,after", ADMISSION_TABLE)
def test_self_sorting_admission(feats, ious, new_feat, new_iou, outcome, evicted, after):
    policy = filled(len(feats), feats, ious)
    assert bank_frames(policy) == list(range(len(feats)))
    policy.add(entry(9, feat=new_feat, iou=new_iou))
    assert policy.last_admission is not None
    assert (policy.last_admission.outcome, policy.last_admission.evicted) == (outcome, evicted)
    assert bank_frames(policy) == after


@pytest.mark.parametrize("new_iou,outcome", [(0.75, "low-iou"), (0.7500001, "replaced")])
def test_iou_test_is_strict(new_iou, outcome):
    policy = filled(3, [angle(0), angle(10), angle(90)], [0.9, 0.875, 0.9], margin=0.125)
    policy.add(entry(9, feat=angle(180), iou=new_iou))  # 0.875 - 0.125 == 0.75 exactly
    assert policy.last_admission.outcome == outcome


def test_self_sorting_until_full_and_prompted_apart():
    policy = SelfSortingPolicy(capacity=3, margin=0.1, retrieval="all")
    policy.add(entry(0, prompted=True, feat=E1))
    policy.add(entry(50, prompted=True, feat=E1, score=-3.0))  # prompted: kept even when "absent"
    for i in range(1, 4):
        policy.add(entry(i, feat=E1, iou=0.1))  # identical, poor: appended while there is room
        assert policy.last_admission.outcome == "appended"
    assert bank_frames(policy) == [1, 2, 3] and len(policy) == 5
    for i in range(4, 30):  # the bank churns; the prompted entries stay
        policy.add(entry(i, feat=angle(7 * i) + (0.0,), iou=1.0))
        assert len(policy.bank()) == 3
    assert [e.frame_idx for e in policy.entries() if e.prompted] == [0, 50]


def test_self_sorting_absent_replace_remove_reset():
    policy = SelfSortingPolicy(capacity=2, retrieval="all")
    policy.add(entry(1, score=0.0))
    assert policy.last_admission.outcome == "absent" and policy.entries() == []
    lenient = SelfSortingPolicy(capacity=2, retrieval="all", admit_absent=True)
    lenient.add(entry(1, score=-1.0))
    assert bank_frames(lenient) == [1]
    policy.add(entry(1, feat=E1))
    policy.add(entry(2, feat=E2))
    policy.add(entry(2, feat=E3))  # same frame: replaces, does not compete
    assert bank_frames(policy) == [1, 2] and policy.bank()[1].features[2].item() == 1.0
    policy.add(entry(1, prompted=True))  # becomes prompted: leaves the bank
    assert bank_frames(policy) == [2] and len(policy) == 2
    policy.add(entry(3, feat=E2, iou=0.0))  # a free slot: appended whatever it is
    policy.remove(2)
    policy.remove(77)
    assert bank_frames(policy) == [3] and [e.frame_idx for e in policy.entries()] == [1, 3]
    policy.reset()
    assert policy.entries() == [] and policy.last_admission is None


def test_self_sorting_bank_order_independent_of_insertion():
    feats = {3: E1, 1: E2, 2: E3}
    results = set()
    for order in itertools.permutations(feats):
        policy = SelfSortingPolicy(capacity=3)
        for t in order:
            policy.add(entry(t, feat=feats[t]))
        policy.add(entry(9, feat=(-1.0, -1.0, -1.0)))
        results.add(tuple(bank_frames(policy)))
    assert results == {(1, 3, 9)}  # least = frame 1 (tie), neighbour = frame 2 (tie) replaced


def retrieval_policy(**kw) -> SelfSortingPolicy:
    policy = SelfSortingPolicy(capacity=8, **kw)
    policy.add(entry(20, prompted=True, feat=E1, embed=angle(0)))
    for t, deg in [(12, 0), (14, 40), (17, 80), (18, 120), (25, 160)]:
        policy.add(entry(t, feat=angle(deg * 2) + (0.5,), embed=angle(deg)))
    return policy


ALL, NOT_PAST = {"retrieval": "all"}, {"only_obj_ptrs_in_the_past": False}
RETRIEVAL_TABLE = [
    # (kwargs, frame, reverse, memories (frame:tpos), pointers (frame:tdiff)); None: not checked
    (ALL, 19, False, "20:0 12:1 14:2 17:5 18:6 25:1", "18:1 17:2 14:5 12:7"),
    ({**ALL, **NOT_PAST}, 19, False, None, "20:-1 18:1 17:2 14:5 25:-6 12:7"),
    ({**ALL, "use_signed_tpos": False}, 19, True, None, "20:1 25:6"),
    # the bank's own entry of the decoded frame (18) is skipped; no temporal encoding, tdiff 0
    ({**ALL, "temporal": "none"}, 18, False, "20:- 12:- 14:- 17:- 25:-", "20:0 17:0 14:0 12:0 25:0"),
    ({**ALL, "pointers": "none"}, 19, False, None, ""),
    ({**ALL, **NOT_PAST, "max_obj_ptrs": 2}, 19, False, None, "20:-1 18:1"),
    # top-2 by similarity of the query (30 deg) to the image embeddings: 14 (40) and 12 (0)
    ({"retrieval": "topk", "k": 2}, 16, False, "20:0 12:3 14:5", "14:2 12:4"),
    ({"retrieval": "topk", "k": 99}, 16, False, "20:0 12:3 14:5 17:6 18:5 25:1", None),
    # a cold softmax samples the most similar entry only, k times (with replacement)
    ({"retrieval": "sample", "k": 3, "temperature": 1e-3}, 16, False, "20:0 14:5 14:5 14:5", "14:2"),
]


@pytest.mark.parametrize("kw,frame,reverse,want_mems,want_ptrs", RETRIEVAL_TABLE)
def test_self_sorting_retrieval_table(kw, frame, reverse, want_mems, want_ptrs):
    sel = retrieval_policy(**kw).select(frame, reverse, query_embed=torch.tensor(angle(30)))
    if want_mems is not None:
        assert mems(sel) == want_mems
    if want_ptrs is not None:
        assert ptrs(sel) == want_ptrs


def draws(policy: SelfSortingPolicy, n: int = 5) -> list[tuple[int, ...]]:
    q = torch.tensor(angle(30))
    return [policy.select(16, query_embed=q).memory_frames for _ in range(n)]


def test_sampling_reproducible_per_seed():
    a, b = retrieval_policy(k=8, seed=0), retrieval_policy(k=8, seed=0)
    first = draws(a)
    assert first == draws(b)
    assert len(set(first)) > 1  # successive draws differ
    assert draws(retrieval_policy(k=8, seed=1)) != first
    a.reset()  # restores the seed (and empties the policy)
    a.add(entry(20, prompted=True, feat=E1, embed=angle(0)))
    for t, deg in [(25, 160), (18, 120), (17, 80), (14, 40), (12, 0)]:  # another insertion order
        a.add(entry(t, feat=angle(deg * 2) + (0.5,), embed=angle(deg)))
    assert draws(a) == first


def test_sampling_follows_the_softmax():
    policy = retrieval_policy(k=4000, temperature=0.25)
    frames = policy.select(16, query_embed=torch.tensor(angle(30))).memory_frames[1:]
    degs = {12: 0, 14: 40, 17: 80, 18: 120, 25: 160}
    logits = torch.tensor([math.cos(math.radians(30 - degs[t])) / 0.25 for t in sorted(degs)])
    expected = torch.softmax(logits, 0)
    observed = torch.tensor([frames.count(t) / len(frames) for t in sorted(degs)])
    assert torch.allclose(observed, expected, atol=0.03)


def test_retrieval_needs_embeddings():
    policy = retrieval_policy(retrieval="sample")
    with pytest.raises(ValueError, match="query_embed"):
        policy.select(16)
    policy.add(entry(30, feat=(0.0, 0.0, -1.0)))
    with pytest.raises(ValueError, match="image_embed"):
        policy.select(16, query_embed=torch.tensor(angle(0)))
    only_prompted = SelfSortingPolicy(max_prompted=2)
    for t in (0, 10, 30, 40):
        only_prompted.add(entry(t, prompted=True))
    assert mems(only_prompted.select(25)) == "10:0 30:0"  # closest before/after; no query needed


def test_make_policy():
    assert isinstance(make_policy("fifo", use_signed_tpos=False), FifoPolicy)
    policy = make_policy("Self_Sorting", capacity=4, retrieval="topk", k=2)
    assert isinstance(policy, SelfSortingPolicy) and policy.capacity == 4
    with pytest.raises(ValueError, match="unknown memory policy 'lifo'.*fifo, self-sorting"):
        make_policy("lifo")
    with pytest.raises(ValueError, match="unknown argument.*bank_size"):
        make_policy("self-sorting", bank_size=3)


BAD_ARGS = [("fifo", kw) for kw in ({"max_cond_frames": 1}, {"stride": 0}, {"num_maskmem": -1})]
BAD_ARGS += [("self-sorting", kw) for kw in ({"capacity": 0}, {"retrieval": "best"}, {"temporal": "time"})]
BAD_ARGS += [("self-sorting", kw) for kw in ({"temperature": 0.0}, {"margin": float("nan")}, {"k": 0})]
BAD_ARGS += [("self-sorting", {"max_prompted": 1})]


@pytest.mark.parametrize("name,kw", BAD_ARGS)
def test_bad_arguments(name, kw):
    with pytest.raises(ConfigError, match=f"^{next(iter(kw))} must be"):
        make_policy(name, **kw)
    if "retrieval" in kw:
        with pytest.raises(ValueError, match="retrieval must be one of 'sample', 'topk', 'all'; got 'best'"):
            make_policy(name, **kw)


def test_entry_validation():
    with pytest.raises(ValueError, match="frame_idx"):
        entry(-1)
    with pytest.raises(ValueError, match="same shape"):
        MemoryEntry(0, False, torch.zeros(2, 1, 1), torch.zeros(3, 1, 1), torch.zeros(4), 1.0, 1.0)
    with pytest.raises(ValueError, match="frame_idx"):
        FifoPolicy().select(-2)


def test_from_model_config():
    v1 = ModelConfig(version="sam2", use_signed_tpos_enc_to_obj_ptrs=False)
    policy = FifoPolicy.from_model_config(v1, stride=2)
    assert (policy.use_signed_tpos, policy.stride, policy.num_maskmem) == (False, 2, 7)
    assert policy.max_obj_ptrs == 16 and repr(policy).startswith("FifoPolicy(num_maskmem=7")
