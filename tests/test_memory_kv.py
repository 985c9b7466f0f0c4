"""Memory attention on prepared memory (keys computed once per memory, values unprojected) and
the engine's key cache: same outputs as the exact path, bounded, invalidated."""

from __future__ import annotations

import pytest
import torch
from _reference import perturb_
from test_engine import _frames

from medsam2 import VideoPredictor
from medsam2.engine.key_cache import KeyCache
from medsam2.engine.memory import MemoryEntry
from medsam2.model.memory_kv import MemoryKeys
from medsam2.model.presets import get_preset
from medsam2.model.sam2_model import FrameFeatures, MemoryInput, PointerInput, Sam2Model


def _model(name: str, size: int | None = None, **overrides: object) -> Sam2Model:
    torch.manual_seed(0)
    cfg = get_preset(name, image_size=size).replace(**overrides)
    return perturb_(Sam2Model(cfg), seed=1).eval()


def _inputs(model: Sam2Model, tpos: list[int | None], seed: int = 0) -> tuple:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size // 16
    feats = FrameFeatures(
        torch.randn(1, cfg.d_model, s, s, generator=g), torch.randn(1, cfg.d_model, s, s, generator=g), None
    )
    mems = [
        MemoryInput(
            torch.randn(1, cfg.mem_dim, s, s, generator=g), torch.randn(1, cfg.mem_dim, s, s, generator=g), t
        )
        for t in tpos
    ]
    ptrs = [PointerInput(torch.randn(1, cfg.d_model, generator=g), d) for d in (1, 2, 5)]
    return feats, mems, ptrs


@pytest.mark.parametrize(
    ("name", "size", "overrides"),
    [("sam2.1_hiera_t", 128, {}), ("tiny", None, {"mem_attn_heads": 2}), ("nano", None, {})],
)
def test_prepared_memory_matches_exact_path(name: str, size: int | None, overrides: dict) -> None:
    model = _model(name, size, **overrides)
    feats, mems, ptrs = _inputs(model, [0, 3, 5, 6, None, 6])
    exact = model.condition_on_memory(feats, mems, ptrs, 15)  # autograd on: the exact path
    with torch.no_grad():
        fast = model.condition_on_memory(feats, mems, ptrs, 15)
        keyed = [
            MemoryInput(m.features, m.pos_enc, m.tpos, model.memory_keys(m.features, m.pos_enc)) for m in mems
        ]
        cached = model.condition_on_memory(feats, keyed, ptrs, 15)
    scale = float(exact.detach().abs().max())
    assert float((fast - exact.detach()).abs().max()) <= 1e-6 * max(scale, 1.0)
    assert torch.equal(cached, fast)  # keys given or computed: the very same arithmetic


def _run(
    model: Sam2Model, memory: str, direction: str = "both"
) -> tuple[VideoPredictor, dict[int, torch.Tensor]]:
    vp = VideoPredictor(model, memory=memory)
    vp.start(_frames())
    vp.add_prompt(5, 1, box=[10, 20, 40, 50])
    return vp, {o.frame_idx: o.logits for o in vp.propagate(direction=direction)}


@pytest.fixture(scope="module")
def tiny() -> Sam2Model:
    model = _model("tiny")
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)  # objects present
    return model


@pytest.mark.parametrize("memory", ["fifo", "self-sorting"])
def test_key_cache_gives_identical_masks(
    tiny: Sam2Model, memory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with torch.no_grad():
        _, cached = _run(tiny, memory)
        monkeypatch.setattr(KeyCache, "get", lambda self, entry, compute: compute(entry))
        _, uncached = _run(tiny, memory)
    _, exact = _run(tiny, memory)  # autograd on: no cache, projected values
    for f in cached:
        assert torch.equal(cached[f], uncached[f]), f
        assert float((cached[f] - exact[f].detach()).abs().max()) <= 1e-4, f


def test_key_cache_computes_each_memory_once_and_is_bounded(tiny: Sam2Model) -> None:
    with torch.no_grad():
        vp, _ = _run(tiny, "fifo", direction="forward")
    assert vp.session is not None
    keys = vp.session.object(1).keys
    # frames 6..9 attend to [5], [5, 6], [5, 6, 7], [5, 6, 7, 8]: four memories, each computed once
    assert (keys.misses, keys.hits) == (4, 6)
    with torch.no_grad():
        vp.add_prompt(7, 1, points=[[30, 36]], labels=[1])  # a correction re-propagates
        list(vp.propagate(direction="forward"))
    assert keys.misses > 4
    assert len(keys) <= tiny.config.num_maskmem + keys.spare


def _entry(frame: int) -> MemoryEntry:
    z = torch.zeros(2, 2, 2)
    return MemoryEntry(frame, False, z, z, torch.zeros(4), 1.0, 1.0)


def _keys(entry: MemoryEntry) -> MemoryKeys:
    return MemoryKeys((torch.full((1, 1, 4, 4), float(entry.frame_idx)),), torch.zeros(1, 1, 4, 2))


def test_key_cache_keys_by_entry_and_retains_a_bounded_set() -> None:
    cache = KeyCache(spare=1)
    old, others = _entry(3), [_entry(t) for t in range(3)]
    cache.get(old, _keys)
    assert cache.get(old, _keys) is cache.get(old, _keys) and cache.hits == 2
    new = _entry(3)  # the frame's memory replaced: a different entry, never the old record
    cache.get(new, _keys)
    assert cache.misses == 2 and old in cache and new in cache
    for e in others:
        cache.get(e, _keys)
    cache.retain([new], alive=[new, *others])  # old left the policy: dropped; one spare kept
    assert new in cache and old not in cache and len(cache) == 2 and others[-1] in cache
    assert cache.nbytes == 2 * (16 * 4 + 8 * 4)
    cache.discard(new)
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="spare"):
        KeyCache(spare=-1)


def test_bf16_autocast_propagation_runs(tiny: Sam2Model) -> None:
    """The GPU benchmark's bf16 mode: the encoder's in-place products step aside under autocast."""
    with torch.inference_mode():
        _, fp32 = _run(tiny, "fifo", direction="forward")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, bf16 = _run(tiny, "fifo", direction="forward")
    assert sorted(bf16) == sorted(fp32)
    assert all(bool(torch.isfinite(v).all()) for v in bf16.values())
