"""Per-frame steps shared by every way of segmenting a frame: encoding it (through the session's
bounded cache, or several upcoming frames in one batch) and keeping a decoded frame's result
and memory (`medsam2.engine.propagation`, `medsam2.engine.box_chain`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medsam2.engine.memory import MemoryEntry
from medsam2.engine.session import FrameResult, InferenceSession, ObjectState
from medsam2.model.sam2_model import DecoderOutput, FrameFeatures, Sam2Model

__all__ = ["frame_features", "encode_ahead", "store_result"]


def _encode(model: Sam2Model, session: InferenceSession, frames: Sequence[int]) -> list[FrameFeatures]:
    """Encode ``frames`` in one encoder call (a batch of len(frames)); one FrameFeatures each."""
    x = torch.stack([session.source.load(i, session.image_size) for i in frames]).to(session.device)
    speed = session.speed
    if speed.exact:
        f = model.encode_image(x)
    else:
        with speed.autocast("encoder"):
            f = model.encode_image(x)
        hr = None if f.high_res is None else (speed.restore(f.high_res[0]), speed.restore(f.high_res[1]))
        f = FrameFeatures(speed.restore(f.vision), speed.restore(f.pos), hr)
    if len(frames) == 1:
        return [f]

    def one(j: int) -> FrameFeatures:
        hr = None if f.high_res is None else (f.high_res[0][j : j + 1], f.high_res[1][j : j + 1])
        return FrameFeatures(f.vision[j : j + 1], f.pos[j : j + 1], hr)

    return [one(j) for j in range(len(frames))]


def frame_features(model: Sam2Model, session: InferenceSession, index: int) -> FrameFeatures:
    """Encoded features of frame `index` (through the session's bounded cache)."""
    return session.cache.get(index, lambda i: _encode(model, session, [i])[0])


def encode_ahead(model: Sam2Model, session: InferenceSession, upcoming: Sequence[int]) -> None:
    """Encode the next frames of a pass together (``speed.encode_batch`` per encoder call).

    Called with the frames still to come, in order; when the first of them is not cached, it
    and the next uncached ones (up to the batch size, and never more than the cache can keep
    beside the frame being decoded) are encoded in one call and cached. A no-op with batch 1
    (the default on the CPU, where one frame already fills the cores)."""
    batch = min(session.speed.encode_batch, session.cache.capacity - 1)
    if batch < 2 or not upcoming or upcoming[0] in session.cache:
        return
    frames = [f for f in upcoming[:batch] if f not in session.cache]
    for f, feats in zip(frames, _encode(model, session, frames), strict=True):
        session.cache.put(f, feats)


def store_result(
    model: Sam2Model,
    session: InferenceSession,
    obj: ObjectState,
    frame: int,
    feats: FrameFeatures,
    out: DecoderOutput,
    prompted: bool,
    reverse: bool,
    binarize: bool,
) -> FrameResult:
    """Encode the frame's memory, keep the result and hand the memory to the policy.

    A frame that box chaining tracked (``session.box_chain``, not ``prompted``) gets no memory:
    nothing in a box-chaining session reads one (encoding them took a fifth of the time of
    chaining five organs through a CT phantom on the CPU)."""
    iou = out.ious[0].max().detach()  # the kept mask: best of several, or the single one
    score = out.object_score_logits[0, 0].detach()  # both stay on the device: no host read here
    entry = None
    if session.box_chain is None or prompted:
        with session.speed.autocast("memory"):  # its features are stored in bf16 either way
            mem, mem_pos = model.encode_memory(
                feats.vision, out.high_res_masks, out.object_score_logits, binarize
            )
        entry = MemoryEntry(
            frame_idx=frame,
            prompted=prompted,
            features=mem[0].to(session.memory_dtype),
            pos_enc=session.speed.restore(mem_pos)[0],
            obj_ptr=out.obj_ptr[0],
            iou=iou,
            object_score=score,
            image_embed=feats.vision[0] if obj.policy.needs_image_embed else None,
        )
    # only prompted results keep their memory (a new propagation starts from them); the
    # policy holds what it needs of the others, so nothing per frame outlives its memory slot
    result = FrameResult(
        frame,
        out.low_res_masks.float(),
        score,
        iou,
        out.obj_ptr,
        prompted,
        reverse,
        entry if prompted else None,
        out if session.keep_decoder_outputs else None,
    )
    obj.results[frame] = result
    if entry is not None:
        obj.policy.add(entry)
    return result
