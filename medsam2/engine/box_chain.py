"""Box chaining: propagate through a volume by boxing each slice from the previous slice's mask.

An alternative to the memory path for models whose box answer is better than their memory (the
embedded ``nano-track``; docs/embedded_model.md, "Box chaining"). Each tracked slice is decoded
without memory, from a box: the tight box of the previous slice's mask (in pass order), widened by
``margin`` of its size on each side (default 0: a widened box grows from slice to slice). The
answer is cut to that box widened by ``clip`` of its size (default 0.15), so that a mask that
spills into a neighbour cannot carry the spill from slice to slice. A box
is always answered with *something*, so the chain stops where the answer stops looking like the
object: the mean intensity under the new mask must stay within ``tolerance`` standard deviations
of the mean under the mask of the prompted slice the pass started from (both on the frames the
model sees). A failed slice is left empty, and the chain tries the next ``bridge`` slices with the
last good mask's box: it goes on where an answer passes the check and overlaps that mask (a gap
such as the midline between two hemispheres), else it stops, and the pass leaves the object empty
until it reaches another prompted slice, which restarts the chain. With several prompts of an
object (direction "both"), each slice is chained from the nearest one, except that a box keeps
every slice between it and a correction made of clicks alone: a correction re-chains the slices
beyond it, never the ones its box answered.

What a box cannot carry: an object that splits into parts far apart (the box spans them and the
answer is one blob), or one that touches a neighbour of the same intensity (the check cannot see
the drift). The memory path (SAM 2's own) remains the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from medsam2.config import check_tracker
from medsam2.engine.frame_steps import frame_features, store_result
from medsam2.errors import ConfigError

if TYPE_CHECKING:
    from medsam2.engine.session import FramePrompt, FrameResult, InferenceSession, ObjectState
    from medsam2.model.sam2_model import Sam2Model

__all__ = [
    "BoxChain",
    "ChainState",
    "box_from_logits",
    "clip_to_box",
    "correction_points",
    "mask_intensity",
    "consistent",
    "check_tracker",
]


# the logit of a pixel cut off by `clip`: surely outside, on the decoder's own scale, so that the
# mask's edge at the cut resamples as the decoder's edges do (NO_OBJ_SCORE, -1024, would erode it
# by half a low-resolution cell; the validation that chose `clip` used this value)
CLIPPED_LOGIT = -20.0
# a chain bridging failed slices resumes only with a mask at least this like (IoU) its last good one
RESUME_IOU = 0.5


@dataclass(frozen=True)
class BoxChain:
    """Settings of box chaining (defaults chosen on validation volumes; docs/embedded_model.md).

    margin: the box is the previous mask's tight box widened by this fraction of its width and
    height on each side (>= 0). clip: the answer is cut to the box widened by this fraction on each
    side (>= margin; None: not cut). tolerance: the chain stops when the mean intensity under the new
    mask differs from the prompted slice's by more than this many of its standard deviations
    (> 0). min_std: the floor of that standard deviation, in the model's normalised units, so that
    a uniform object does not stop on noise. bridge: after a failed slice the chain tries up to this
    many more with the last good mask's box, and goes on from the first answer that passes the
    check and overlaps that mask (IoU >= RESUME_IOU); the failed slices stay empty (0: stop at once).
    """

    margin: float = 0.0
    clip: float | None = 0.15
    tolerance: float = 2.0
    min_std: float = 0.02
    bridge: int = 3

    def __post_init__(self) -> None:
        if not self.margin >= 0:
            raise ConfigError(f"box chain margin must be >= 0, got {self.margin!r}")
        if self.clip is not None and not self.clip >= self.margin:
            raise ConfigError(
                f"box chain clip must be >= margin ({self.margin!r}) or None, got {self.clip!r}"
            )
        if not self.tolerance > 0:
            raise ConfigError(f"box chain tolerance must be > 0, got {self.tolerance!r}")
        if not self.min_std > 0:
            raise ConfigError(f"box chain min_std must be > 0, got {self.min_std!r}")
        if isinstance(self.bridge, bool) or not isinstance(self.bridge, int) or self.bridge < 0:
            raise ConfigError(f"box chain bridge must be an int >= 0, got {self.bridge!r}")


@dataclass
class ChainState:
    """One object's chain within one propagation pass.

    last: (1, 1, h, w) logits of the previous slice in pass order (None: nothing to chain from);
    reference: (mean, std) of the intensity under the mask of the prompted slice that started it.
    """

    last: Tensor | None = None
    reference: tuple[float, float] | None = None
    misses: int = 0


def box_from_logits(logits: Tensor, image_size: int, margin: float) -> tuple[Tensor, Tensor] | None:
    """The decoder's box prompt for the mask ``logits`` (1, 1, h, w) (> 0: inside): corners
    (1, 2, 2) in model pixels and labels (1, 2) = (2, 3); None when the mask is empty."""
    mask = F.interpolate(logits.float(), size=(image_size, image_size), mode="bilinear", align_corners=False)
    inside = mask[0, 0] > 0
    rows, cols = torch.nonzero(inside.any(dim=1)).flatten(), torch.nonzero(inside.any(dim=0)).flatten()
    if not len(rows):
        return None
    x0, x1, y0, y1 = (float(v) for v in (cols[0], cols[-1], rows[0], rows[-1]))
    dx, dy = margin * (x1 - x0 + 1), margin * (y1 - y0 + 1)
    top = image_size - 1
    corners = torch.tensor([[max(x0 - dx, 0.0), max(y0 - dy, 0.0)], [min(x1 + dx, top), min(y1 + dy, top)]])
    return corners[None].to(logits.device), torch.tensor([[2, 3]], dtype=torch.int32, device=logits.device)


def correction_points(
    logits: Tensor, points: tuple[Tensor, Tensor] | None, image_size: int
) -> tuple[Tensor, Tensor] | None:
    """The decoder's prompt for a correction of a chained frame whose mask is ``logits``
    (1, 1, h, w): the tight box of that mask (the box the chain answered, as near as it can be
    rebuilt) before the user's ``points`` (coords (1, N, 2) in model pixels, labels (1, N)).

    A model that answers boxes better than clicks (what box chaining is for) keeps its answer's
    extent and moves it by the clicks, where the clicks alone, or the memory of a model whose
    memory path does not work, lose the object (docs/embedded_model.md, "Corrections and stage 7h")."""
    box = box_from_logits(logits, image_size, 0.0)
    if box is None:
        return points
    if points is None:
        return box
    return torch.cat([box[0], points[0].to(box[0])], dim=1), torch.cat([box[1], points[1].to(box[1])], dim=1)


def neighbour_logits(obj: ObjectState, frame: int) -> Tensor | None:
    """(1, 1, h, w) logits of ``obj``'s non-empty result nearest ``frame`` (the lower of a tie),
    or None when it has none."""
    for f in sorted((f for f in obj.results if f != frame), key=lambda f: (abs(f - frame), f)):
        logits = obj.results[f].low_res_logits
        if bool((logits > 0).any()):  # nearest first: one host read per empty result passed
            return logits.detach()
    return None


def clip_to_box(logits: Tensor, corners: Tensor, fraction: float, image_size: int) -> Tensor:
    """``logits`` (B, M, r, r) over the model's S x S input (S = ``image_size``), with every pixel
    outside the box ``corners`` (1, 2, 2) (x, y in model pixels) widened by ``fraction`` of its
    width and height on each side set to CLIPPED_LOGIT."""
    res = logits.shape[-1]
    scale = res / image_size
    (x0, y0), (x1, y1) = corners[0].tolist()
    dx, dy = fraction * (x1 - x0 + 1), fraction * (y1 - y0 + 1)
    c0, c1 = max(int((x0 - dx) * scale), 0), min(int((x1 + dx) * scale + 1), res)
    r0, r1 = max(int((y0 - dy) * scale), 0), min(int((y1 + dy) * scale + 1), res)
    out = torch.full_like(logits, CLIPPED_LOGIT)
    out[..., r0:r1, c0:c1] = logits[..., r0:r1, c0:c1]
    return out


def mask_intensity(frame: Tensor, logits: Tensor) -> tuple[float, float] | None:
    """(mean, std) of ``frame`` (C, S, S), averaged over channels, under the mask ``logits``
    (1, 1, h, w) resampled to S x S; None when the mask is empty."""
    image = frame.float().mean(dim=0)
    inside = F.interpolate(logits.float(), size=image.shape, mode="bilinear", align_corners=False)[0, 0] > 0
    values = image[inside.to(image.device)]
    if values.numel() == 0:
        return None
    std = float(values.std()) if values.numel() > 1 else 0.0
    return float(values.mean()), std


def consistent(
    chain: BoxChain, reference: tuple[float, float] | None, found: tuple[float, float] | None
) -> bool:
    """Whether a chained mask with intensity ``found`` still looks like the ``reference`` object."""
    if found is None or reference is None:
        return False
    mean, std = reference
    return abs(found[0] - mean) <= chain.tolerance * max(std, chain.min_std)


def overlap(a: Tensor, b: Tensor) -> float:
    """IoU of the masks of logits ``a`` and ``b`` (1, 1, h, w), 0 when both are empty."""
    x, y = a[0, 0] > 0, b[0, 0].to(a.device) > 0
    union = int((x | y).sum())
    return int((x & y).sum()) / union if union else 0.0


def start_chain(session: InferenceSession, obj: ObjectState, frame: int) -> ChainState:
    """A chain from ``obj``'s prompted ``frame``: its mask, and the intensity the chained masks
    must keep. That is the intensity under the mask, unless the prompt is clicks alone (a
    correction) and the object has a box or mask prompt: then it is the intensity under the
    nearest such prompt's mask, and the chain starts only if the correction's own mask passes
    that check. A correction whose answer is still wrong (a click on an organ's last slice
    answered on the tissue beside it) then stays on its slice, where it would otherwise seed a
    chain over slices the object never reaches."""
    res = obj.results.get(frame)
    if res is None:
        return ChainState()
    logits = res.low_res_logits.detach()
    own = mask_intensity(session.source.load(frame, session.image_size), logits)
    anchors = [f for f, p in obj.prompts.items() if strong(p) and f in obj.results]
    if strong(obj.prompts[frame]) or not anchors or session.box_chain is None:
        return ChainState(logits if own is not None else None, own)
    anchor = min(anchors, key=lambda f: (abs(f - frame), f))
    reference = mask_intensity(
        session.source.load(anchor, session.image_size), obj.results[anchor].low_res_logits.detach()
    )
    if not consistent(session.box_chain, reference, own):
        return ChainState(None, reference)
    return ChainState(logits, reference)


def chain_frame(
    model: Sam2Model,
    session: InferenceSession,
    obj: ObjectState,
    frame: int,
    reverse: bool,
    state: ChainState,
    chain: BoxChain,
) -> FrameResult | None:
    """Segment `obj` on an unprompted `frame` from a box around its mask on the previous frame of
    the pass (the module docstring), without memory. None, and the chain stopped, when
    there is nothing to chain from or the answer no longer looks like the object."""
    if state.last is None:
        return None
    points = box_from_logits(state.last, session.image_size, chain.margin)
    if points is None:
        state.last = None
        return None
    feats = frame_features(model, session, frame)
    pix = model.add_no_memory(feats)
    out = model.decode(pix, feats.high_res, points, model.box_dense_prompt(points), False)
    if chain.clip is not None:
        corners, size = points[0], session.image_size
        out = dataclasses.replace(
            out,
            low_res_masks=clip_to_box(out.low_res_masks, corners, chain.clip, size),
            high_res_masks=clip_to_box(out.high_res_masks, corners, chain.clip, size),
        )
    found = mask_intensity(session.source.load(frame, session.image_size), out.low_res_masks)
    resumed = state.misses == 0 or overlap(out.low_res_masks, state.last) >= RESUME_IOU
    if (
        float(out.object_score_logits[0, 0]) <= 0
        or not consistent(chain, state.reference, found)
        or not resumed
    ):
        state.misses += 1
        if state.misses > chain.bridge:
            state.last = None
        return None
    state.last, state.misses = out.low_res_masks.detach().float(), 0
    return store_result(
        model, session, obj, frame, feats, out, prompted=False, reverse=reverse, binarize=False
    )


def strong(prompt: FramePrompt) -> bool:
    """Whether a prompt gives the object's extent (a box or a mask), not clicks alone."""
    return prompt.box is not None or prompt.mask is not None


def lead_in_end(obj: ObjectState, before: int, prompt: int) -> int:
    """The lowest slice chained backward from ``prompt`` toward the object's previous prompt
    ``before``: the slices nearer ``prompt`` (the middle one of a tie goes forward), unless one
    of the two gives the object's extent and the other is clicks alone (a correction of a chained
    slice). The box then keeps every slice between them: a correction re-chains the slices beyond
    it, never the ones its box answered."""
    if strong(obj.prompts[before]) == strong(obj.prompts[prompt]):
        return (prompt + before) // 2 + 1
    return before + 1 if strong(obj.prompts[prompt]) else prompt


def chain_lead_ins(
    model: Sam2Model, session: InferenceSession, start: int, chain: BoxChain
) -> dict[int, ChainState]:
    """Box chaining with direction "both": every slice is chained from its nearest prompt of the
    object (a box before a correction: `lead_in_end`). Before the passes run, each object is
    chained backward from each prompt ``p`` after its first, down to `lead_in_end` (the forward
    pass from the previous prompt takes the slices before that), and from its first prompt, when
    that lies after the forward pass's ``start``, down to ``start`` (the forward pass reaches
    those slices before the object's prompt). The results stay in ``obj.results`` and the
    forward pass skips them; returns, for each object whose first prompt lies after ``start``,
    its chain as it arrived at ``start``, to continue the backward pass from."""
    states = {}
    for obj in session.objects.values():
        prompted = sorted(obj.prompts)
        for i, first in enumerate(prompted):
            if i == 0 and first <= start:
                continue
            lowest = start if i == 0 else lead_in_end(obj, prompted[i - 1], first)
            state = start_chain(session, obj, first)
            for frame in range(first - 1, lowest - 1, -1):
                chain_frame(model, session, obj, frame, True, state, chain)
                if state.last is None:
                    break
            if i == 0:
                states[obj.obj_id] = state
    return states
