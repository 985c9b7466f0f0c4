"""Decoding prompted frames and propagating masks through a sequence.

Shared by inference and training: the same `track_frame` / `prompt_frame` steps run in both.
Semantics follow SAM 2's video predictor (DESIGN.md §4-5), with every prompted frame treated
as a conditioning frame (a correction click is never overwritten by propagation).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medsam2.engine.box_chain import (
    ChainState,
    chain_frame,
    chain_lead_ins,
    correction_points,
    neighbour_logits,
    start_chain,
)
from medsam2.engine.frame_steps import encode_ahead, frame_features, store_result
from medsam2.engine.memory import MemoryEntry
from medsam2.engine.retention import expiry_schedule, release
from medsam2.engine.session import FrameOutput, FramePrompt, FrameResult, InferenceSession, ObjectState
from medsam2.errors import PromptError
from medsam2.model.memory_kv import MemoryKeys
from medsam2.model.sam2_model import FrameFeatures, MemoryInput, PointerInput, Sam2Model

__all__ = ["Direction", "frame_features", "prompt_frame", "track_frame", "propagate", "frame_output"]

log = logging.getLogger(__name__)
Direction = Literal["both", "forward", "backward"]


def _model_points(session: InferenceSession, frame: int, prompt: FramePrompt) -> tuple[Tensor, Tensor] | None:
    """Box corners (labels 2, 3) then clicks, scaled from frame pixels to model pixels."""
    coords, labels = [], []
    if prompt.box is not None:
        coords.append(np.asarray(prompt.box, np.float32).reshape(2, 2))
        labels.append(np.array([2, 3], np.int32))
    if len(prompt.points):
        coords.append(prompt.points.astype(np.float32))
        labels.append(prompt.labels.astype(np.int32))
    if not coords:
        return None
    h, w = session.source.frame_size(frame)
    pts = torch.from_numpy(np.concatenate(coords))[None] / torch.tensor([w, h]) * session.image_size
    labs = torch.from_numpy(np.concatenate(labels))[None]
    return pts.to(session.device), labs.to(session.device)


def _mask_input(session: InferenceSession, mask: np.ndarray) -> Tensor:
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None].to(session.device)
    s = session.image_size
    m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
    return (m >= 0.5).float()


def _memory_inputs(
    model: Sam2Model,
    session: InferenceSession,
    obj: ObjectState,
    frame: int,
    reverse: bool,
    feats: FrameFeatures,
) -> Tensor:
    """Memory-conditioned features of `frame` for `obj` (B=1, C, h, w)."""
    sel = obj.policy.select(frame, reverse, query_embed=feats.vision[0], num_frames=session.num_frames)
    selected = session.speed.select(sel.memories)
    dev = session.device
    cached = not model.training and not torch.is_grad_enabled()

    def keys(entry: MemoryEntry) -> MemoryKeys:
        with session.speed.autocast("memory"):
            return model.memory_keys(entry.features[None].to(dev), entry.pos_enc[None].to(dev))

    memories = [
        MemoryInput(
            m.entry.features[None].to(dev).float(),
            m.entry.pos_enc[None].to(dev),
            m.tpos,
            obj.keys.get(m.entry, keys) if cached else None,
        )
        for m in selected
    ]
    if cached:
        obj.keys.retain((m.entry for m in selected), obj.policy.entries())
    pointers = [PointerInput(p.entry.obj_ptr[None].to(dev), p.tdiff) for p in sel.pointers]
    max_tdiff = min(session.num_frames, model.config.max_obj_ptrs_in_encoder) - 1
    with session.speed.autocast("memory"):
        pix = model.condition_on_memory(feats, memories, pointers, max_tdiff)
    return session.speed.restore(pix)


def prompt_frame(model: Sam2Model, session: InferenceSession, obj_id: int, frame: int) -> FrameResult:
    """Decode `obj_id` on `frame` from that frame's prompts (SAM 2's add-points step).

    A frame never tracked before is decoded without memory; a frame already tracked is decoded
    with memory and with its previous mask logits as an extra dense prompt (a correction), except
    that a model trained with ``box_mask_prompt`` gets the frame's box, when the user gave one, as
    its dense prompt instead (SAM 2 checkpoints never set it). In a
    box-chaining session (``session.box_chain``) a correction reads no memory either (the chain
    never did): it is decoded from the previous logits and the box the chain answered, unless
    the prompt brings its own box (`medsam2.engine.box_chain.correction_points`); on a slice
    the chain left empty, from the box of the object's nearest chained mask, as the chain would
    have boxed that slice (`medsam2.engine.box_chain.neighbour_logits`).
    """
    obj = session.object(obj_id)
    prompt = obj.prompts.get(frame)
    if prompt is None:
        raise PromptError(f"object {obj_id}: no prompt on frame {frame}")
    feats = frame_features(model, session, frame)
    is_init = frame not in obj.tracked
    reverse = obj.tracked.get(frame, False)
    if prompt.mask is not None:
        out = model.mask_as_output(feats.vision, feats.high_res, _mask_input(session, prompt.mask))
    else:
        points = _model_points(session, frame, prompt)
        prev = obj.results.get(frame)
        if not is_init:
            obj.policy.remove(frame)
        if is_init or session.box_chain is not None:
            pix = model.add_no_memory(feats)
        else:
            pix = _memory_inputs(model, session, obj, frame, reverse, feats)
        if session.box_chain is not None and not is_init and prompt.box is None:
            base = prev.low_res_logits if prev is not None else neighbour_logits(obj, frame)
            if base is not None:
                points = correction_points(base, points, session.image_size)
        if prev is None or (prompt.box is not None and model.config.box_mask_prompt):
            # a first answer, or a model trained with the dense box on a frame with the user's
            # box: the box densely (on every answer for the frame; with the previous logits
            # instead, a click after a box moved the mask off the object: docs/embedded_model.md,
            # "Clicks after a box"); None for SAM 2 checkpoints
            prev_logits = model.box_dense_prompt(points)
        else:
            prev_logits = torch.clamp(prev.low_res_logits.detach().to(session.device), -32.0, 32.0)
        # the points the decoder sees (an implied correction box counts, as a user's box does)
        multimask = model.use_multimask(is_init, 0 if points is None else int(points[1].shape[1]))
        out = model.decode(pix, feats.high_res, points, prev_logits, multimask)
    return store_result(model, session, obj, frame, feats, out, prompted=True, reverse=reverse, binarize=True)


def track_frame(
    model: Sam2Model, session: InferenceSession, obj: ObjectState, frame: int, reverse: bool
) -> FrameResult:
    """Segment `obj` on an unprompted `frame` from its memories."""
    feats = frame_features(model, session, frame)
    pix = _memory_inputs(model, session, obj, frame, reverse, feats)
    out = model.decode(pix, feats.high_res, None, None, model.use_multimask(False, 0))
    return store_result(
        model, session, obj, frame, feats, out, prompted=False, reverse=reverse, binarize=False
    )


def frame_output(session: InferenceSession, frame: int, obj_ids: list[int] | None = None) -> FrameOutput:
    """Masks of the given objects (default: all) on `frame`, resampled to the frame's size.

    Objects without a result on that frame come out empty (logits -1024)."""
    ids = sorted(session.objects) if obj_ids is None else obj_ids
    h, w = session.source.frame_size(frame)
    dev = session.device
    logits, scores, ious = [], [], []
    for oid in ids:
        res = session.objects[oid].results.get(frame)
        if res is None:
            logits.append(torch.full((1, 1, h, w), -1024.0, device=dev))
            scores.append(torch.full((), -1024.0, device=dev))
            ious.append(torch.zeros((), device=dev))
            continue
        up = F.interpolate(res.low_res_logits, size=(h, w), mode="bilinear", align_corners=False)
        logits.append(up.to(dev))
        scores.append(res.score_logit.to(dev, torch.float32).reshape(()))
        ious.append(res.iou_pred.to(dev, torch.float32).reshape(()))
    # one device-to-host transfer per frame for the masks and scores of every object
    n = len(ids)
    packed = torch.cat([torch.cat(logits).flatten(), torch.stack(scores), torch.stack(ious)]).cpu()
    masks, score_t, iou_t = packed.split([n * h * w, n, n])
    return FrameOutput(frame, tuple(ids), masks.view(n, h, w), score_t, iou_t)


def _passes(session: InferenceSession, direction: Direction, start: int | None) -> list[tuple[bool, range]]:
    prompted = session.prompted_frames()
    if not prompted:
        raise PromptError("no prompts: add a point, box or mask on at least one frame before propagating")
    last = session.num_frames - 1
    if direction == "forward":
        s = prompted[0] if start is None else start
        return [(False, range(s, last + 1))]
    if direction == "backward":
        s = prompted[-1] if start is None else start
        return [(True, range(s, -1, -1))]
    if direction != "both":
        raise ValueError(f"direction must be 'both', 'forward' or 'backward', got {direction!r}")
    s = prompted[0] if start is None else start
    return [(False, range(s, last + 1)), (True, range(s - 1, -1, -1))]


def _begin(model: Sam2Model, session: InferenceSession) -> None:
    """Fresh memory for a new propagation: only the prompted frames' results are kept."""
    for obj in session.objects.values():
        obj.policy.reset()
        obj.keys.clear()
        kept = {f: r for f, r in obj.results.items() if f in obj.prompts and r.prompted}
        obj.results = kept
        for f in obj.prompted_frames():
            memory = kept[f].memory if f in kept else None
            if memory is not None:
                obj.policy.add(memory)
            else:
                prompt_frame(model, session, obj.obj_id, f)


def _schedules(session: InferenceSession, plan: list[tuple[int, bool]]) -> dict[int, dict[int, list[int]]]:
    """Per object, step -> frames whose memory entries expire after it (one-shot sessions only;
    empty when the session keeps everything or the object's policy may read any entry)."""
    if not session.one_shot:
        return {}
    out = {}
    for obj in session.objects.values():
        schedule = expiry_schedule(obj.policy, plan, session.num_frames)
        if schedule is None:
            log.debug("object %d: %s policy keeps its own bound", obj.obj_id, obj.policy.name)
        out[obj.obj_id] = schedule or {}
    return out


def propagate(
    model: Sam2Model,
    session: InferenceSession,
    direction: Direction = "both",
    start: int | None = None,
    progress: bool = False,
) -> Iterator[FrameOutput]:
    """Propagate every object from the prompted frames; yields one `FrameOutput` per frame.

    direction "both" (default): forward from the first prompted frame to the end, then backward
    from it to frame 0; "forward"/"backward" run one pass (backward starts at the last
    prompted frame). Prompted frames keep their prompted result. Every call re-propagates the
    whole range, so corrections added since the last call take effect everywhere.
    Gradients flow when enabled (training reuses this loop); predictors call it under no_grad.
    In a one-shot session (`InferenceSession.one_shot`) per-frame state is dropped as soon as no
    later step can read it (`medsam2.engine.retention`); the masks are the same.
    """
    passes = _passes(session, direction, start)
    _begin(model, session)
    plan = [(frame, reverse) for reverse, order in passes for frame in order]
    schedules = _schedules(session, plan)
    chain = session.box_chain
    lead_ins = chain_lead_ins(model, session, passes[0][1].start, chain) if chain and len(passes) == 2 else {}
    step = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(r) for _, r in passes), desc="propagate", unit="frame")
    for reverse, order in passes:
        chains: dict[int, ChainState] = {}
        if chain is not None and reverse and len(order):  # the backward pass goes on from its frame + 1
            for obj in session.objects.values():
                chains[obj.obj_id] = (
                    start_chain(session, obj, order[0] + 1)
                    if order[0] + 1 in obj.prompts
                    else lead_ins.get(obj.obj_id, ChainState())
                )
        for i, frame in enumerate(order):
            encode_ahead(model, session, order[i:])
            for obj in session.objects.values():
                if chain is None:
                    if frame not in obj.prompts:
                        track_frame(model, session, obj, frame, reverse)
                elif frame in obj.prompts:
                    chains[obj.obj_id] = start_chain(session, obj, frame)
                elif frame not in obj.results:  # not already chained backward from a later prompt
                    state = chains.setdefault(obj.obj_id, ChainState())
                    chain_frame(model, session, obj, frame, reverse, state, chain)
                obj.tracked[frame] = reverse
            if bar is not None:
                bar.update(1)
            out = frame_output(session, frame)
            if session.one_shot:
                for obj in session.objects.values():
                    release(obj, frame, schedules.get(obj.obj_id, {}).get(step, ()))
            step += 1
            yield out
    if bar is not None:
        bar.close()
