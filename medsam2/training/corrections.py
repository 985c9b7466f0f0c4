"""Corrective clicks in training: SAM 2's interactive rounds, through the inference engine.

After an episode has been prompted and propagated, each prompted frame of an episode with
``corrections`` = n > 0 gets n clicks, one at a time. Each click falls on a pixel drawn uniformly
from the errors of the answer before it (missed object: a positive click; spill: a negative one),
as SAM 2 samples its correction points in training, and the frame is decoded again by
:func:`medsam2.engine.propagation.prompt_frame`, the step ``VideoPredictor.add_prompt`` runs
for a user's correction: the previous answer as a dense prompt, with the memory (the memory
tracker) or with the box of the previous answer and no memory (box chaining). Every answer is
scored, the ones before each click too (:func:`medsam2.training.episode.episode_loss`), except
a box-only answer for an object listed in ``episode.info["box_ambiguous"]``: a part whose box is
also a larger structure's (`medsam2.data.synth.targets.part_labels`), which only clicks can name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medsam2.engine.propagation import prompt_frame
from medsam2.engine.session import FramePrompt, InferenceSession
from medsam2.model.sam2_model import DecoderOutput, Sam2Model
from medsam2.training.recipes import Episode

__all__ = ["Earlier", "correct_episode", "error_click"]


@dataclass(frozen=True)
class Earlier:
    """An answer that a corrective click replaced: object, frame, the decoder's output, and the
    (S, S) bool target it is scored against."""

    obj_id: int
    frame: int
    output: DecoderOutput
    target: torch.Tensor


def error_click(
    pred: torch.Tensor, target: torch.Tensor, rng: np.random.Generator
) -> tuple[int, int, int] | None:
    """A click on a pixel drawn uniformly from where ``pred`` and ``target`` (S, S) bool differ:
    (x, y, label) in their pixels, label 1 where the target is (missed), 0 where it is not
    (spill); None when they agree."""
    errors = torch.nonzero(pred != target)
    if len(errors) == 0:
        return None
    y, x = (int(v) for v in errors[int(rng.integers(len(errors)))])
    return x, y, int(bool(target[y, x]))


def correct_episode(
    model: Sam2Model, session: InferenceSession, episode: Episode, targets: dict[int, dict[int, torch.Tensor]]
) -> list[Earlier]:
    """Run the episode's corrective clicks (the module docstring) on ``session``, which has been
    propagated; ``targets[obj_id][frame]`` is the (S, S) bool target at the model's size.
    Returns the replaced answers, in order; the session's results hold the last ones."""
    rng = np.random.default_rng([int(episode.info.get("seed", 0)), 11])
    size = session.image_size
    earlier: list[Earlier] = []
    ambiguous = set(episode.info.get("box_ambiguous", ()))
    for obj_id, prompts in episode.prompts.items():
        obj = session.objects[obj_id]
        for frame in sorted(prompts):
            if prompts[frame].mask is not None:  # the answer is the prompt itself
                continue
            h, w = session.source.frame_size(frame)
            # the box alone cannot say which structure: its answer is not scored
            unscored = (
                obj_id in ambiguous and prompts[frame].box is not None and len(prompts[frame].points) == 0
            )
            for click_no in range(episode.corrections):
                result = obj.results[frame]
                assert result.decoder is not None, "sessions for training keep decoder outputs"
                pred = result.decoder.high_res_masks[0, 0].detach() > 0
                target = targets[obj_id][frame]
                click = error_click(pred, target, rng)
                if click is None:
                    break
                x, y, label = click
                old = obj.prompts[frame]
                obj.prompts[frame] = FramePrompt(  # a new record: the episode's prompts stay as drawn
                    points=np.concatenate([old.points, np.array([[x * w / size, y * h / size]], np.float32)]),
                    labels=np.concatenate([old.labels, np.array([label], np.int32)]),
                    box=old.box,
                )
                if not (unscored and click_no == 0):
                    earlier.append(Earlier(obj_id, frame, result.decoder, target))
                prompt_frame(model, session, obj_id, frame)
    return earlier
