"""Running one training episode through the engine's propagation and scoring it.

The episode's prompts go into an :class:`InferenceSession` (float32 memories, full decoder
outputs kept) and :func:`medsam2.engine.propagation.propagate` runs exactly as at inference,
with gradients on. :class:`EpisodeModel` makes "one episode" the forward of an ``nn.Module`` so
that ``DistributedDataParallel`` can wrap it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsam2.engine.box_chain import BoxChain
from medsam2.engine.memory import make_policy
from medsam2.engine.propagation import propagate
from medsam2.engine.session import FeatureCache, InferenceSession
from medsam2.model.sam2_model import Sam2Model
from medsam2.training.corrections import Earlier, correct_episode
from medsam2.training.losses import LOSS_TERMS, MultiMaskLoss
from medsam2.training.recipes import Episode

__all__ = ["EpisodeModel", "run_episode", "run_corrections", "episode_loss", "resize_mask"]


def resize_mask(mask: np.ndarray, size: int, device: torch.device) -> Tensor:
    """(H, W) bool -> (size, size) bool, resampled as the engine resamples mask prompts."""
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None].to(device)
    if tuple(m.shape[-2:]) != (size, size):
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return m[0, 0] >= 0.5


def run_episode(model: Sam2Model, episode: Episode, device: torch.device) -> InferenceSession:
    """Prompt and propagate every object of ``episode`` (gradients as the caller's mode allows),
    with the episode's tracker (box chaining: as `VideoPredictor(tracker="box-chain")`)."""
    session = InferenceSession(
        source=episode.source,
        image_size=model.image_size,
        policy_factory=lambda: make_policy(episode.memory, **episode.memory_options),
        cache=FeatureCache(max(1, episode.num_frames)),
        device=device,
        memory_dtype=torch.float32,
        keep_decoder_outputs=True,
        box_chain=BoxChain() if episode.tracker == "box-chain" else None,
    )
    for obj_id, prompts in episode.prompts.items():
        session.object(obj_id).prompts.update(prompts)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        for _ in propagate(model, session, "both"):
            pass
    return session


def _dice(inter: float, total: float) -> float:
    return 1.0 if total == 0 else 2.0 * inter / total


def run_corrections(model: Sam2Model, session: InferenceSession, episode: Episode) -> list[Earlier]:
    """The episode's corrective clicks (`medsam2.training.corrections`) on a propagated session."""
    if episode.corrections <= 0:
        return []
    size = session.image_size
    targets = {
        obj_id: {f: resize_mask(episode.targets[obj_id][f], size, session.device) for f in prompts}
        for obj_id, prompts in episode.prompts.items()
    }
    return correct_episode(model, session, episode, targets)


def episode_loss(
    session: InferenceSession,
    episode: Episode,
    loss_fn: MultiMaskLoss,
    trainable: list[nn.Parameter],
    earlier: Sequence[Earlier] = (),
) -> tuple[Tensor, dict[str, float]]:
    """Mean loss over (object, frame) pairs whose output the model produced (frames prompted with
    a mask are skipped: their output is the prompt itself) and over the ``earlier`` answers that
    corrective clicks replaced (scored in the loss, not in the statistics), and statistics for the
    log (of the final answers):
    each loss term, "dice" (Dice of the kept masks over the episode's frames, averaged over
    objects), "dice_memory" (the same over the frames without a prompt: what the memory alone
    achieved) and "frames" (pairs scored).

    The statistics stay on the device while the episode is scored and are read back to the host
    once, at the end (one synchronisation per episode instead of several per frame)."""
    size = session.image_size
    total: Tensor | None = None
    count = 0
    terms: list[Tensor] = []  # per scored pair: the loss terms, detached
    overlap: list[Tensor] = []  # per scored pair: (intersection, pred + target)
    owners: list[tuple[int, bool]] = []  # per scored pair: (object, tracked from memory)
    for obj_id, masks in episode.targets.items():
        obj = session.objects[obj_id]
        for f, mask in enumerate(masks):
            prompt = obj.prompts.get(f)
            if prompt is not None and prompt.mask is not None:
                continue
            out = obj.results[f].decoder
            assert out is not None, "sessions for training keep decoder outputs"
            target = resize_mask(mask, size, session.device)
            parts = loss_fn(out.high_res_multimasks[0], out.ious[0], out.object_score_logits[0], target)
            total = parts["total"] if total is None else total + parts["total"]
            terms.append(torch.stack([parts[k].detach().float() for k in LOSS_TERMS]))
            pred = out.high_res_masks[0, 0].detach() > 0
            overlap.append(torch.stack([(pred & target).sum(), pred.sum() + target.sum()]).float())
            owners.append((obj_id, prompt is None))
            count += 1
    for e in earlier:
        out = e.output
        parts = loss_fn(out.high_res_multimasks[0], out.ious[0], out.object_score_logits[0], e.target)
        total = parts["total"] if total is None else total + parts["total"]
        count += 1
    if total is None:  # nothing to score: a zero that still reaches every parameter (DDP needs it)
        total = sum((p.sum() * 0.0 for p in trainable), torch.zeros((), device=session.device))
    else:
        total = total / count
    return total, _episode_stats(episode, terms, overlap, owners)


def _episode_stats(
    episode: Episode, terms: list[Tensor], overlap: list[Tensor], owners: list[tuple[int, bool]]
) -> dict[str, float]:
    """The log statistics of :func:`episode_loss` from its per-pair tensors (one host read)."""
    count = len(owners)
    if count:
        values = torch.cat([torch.stack(terms), torch.stack(overlap)], dim=1).cpu().numpy()
    else:
        values = np.zeros((0, len(LOSS_TERMS) + 2))
    sums = values[:, : len(LOSS_TERMS)].sum(axis=0) if count else np.zeros(len(LOSS_TERMS))
    stats = {k: float(v) / max(count, 1) for k, v in zip(LOSS_TERMS, sums, strict=True)}
    dices, memory_dices = [], []
    for obj_id in episode.targets:
        rows = [i for i, (o, _) in enumerate(owners) if o == obj_id]
        tracked = [i for i in rows if owners[i][1]]
        inter, denom = values[rows, -2].sum(), values[rows, -1].sum()
        dices.append(_dice(float(inter), float(denom)))
        if tracked:
            memory_dices.append(_dice(float(values[tracked, -2].sum()), float(values[tracked, -1].sum())))
    stats.update(dice=float(np.mean(dices)) if dices else 1.0, frames=float(count))
    stats["dice_memory"] = float(np.mean(memory_dices)) if memory_dices else 1.0
    return stats


class EpisodeModel(nn.Module):
    """``forward(episode) -> (loss, stats)``: one episode through the engine, scored.

    Holds the ``Sam2Model`` as ``self.model``; ``DistributedDataParallel`` wraps this module.
    amp: bf16 autocast (CUDA only).
    """

    def __init__(self, model: Sam2Model, loss_fn: MultiMaskLoss, amp: bool = False) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.amp = amp

    def forward(self, episode: Episode) -> tuple[Tensor, dict[str, Any]]:
        torch.manual_seed(int(episode.info.get("seed", 0)))  # dropout depends on the episode only
        device = self.model.device
        use_amp = self.amp and device.type == "cuda"
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()
        with ctx:
            session = run_episode(self.model, episode, device)
            earlier = run_corrections(self.model, session, episode)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        loss, stats = episode_loss(session, episode, self.loss_fn, trainable, earlier)
        stats["corrections"] = float(len(earlier))
        return loss, stats
