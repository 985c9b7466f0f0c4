"""Training episodes: what one sample of each recipe is, drawn only from (seed, step, index).

* ``3d``: a clip of ``clip_length`` consecutive slices along an axis, placed where an object
  is present (some clips reach past its ends), with up to ``max_objects`` objects (label
  classes) tracked independently; every ``prompt_freq``-th slice gets a simulated prompt
  per object (an empty mask where the object is absent). With probability ``clip_reverse`` the
  clip runs from its last slice to its first, so the first (prompted) frame is its top end.
  With probability ``single_frame`` the episode is one prompted slice instead: the box (or
  click) skill alone, mixed into propagation episodes so that learning it does not unlearn them.
* ``2d-one-prompt``: a stream of ``stream_length`` images of one class drawn from the dataset;
  every ``prompt_freq``-th image is prompted (paper: every 5th); the self-sorting bank spans
  the stream without temporal encodings (unrelated images).

Episodes hold numpy frames and :class:`FramePrompt` objects; running them goes through the
engine's propagation (:mod:`medsam2.training.episode`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from medsam2.config import ModelConfig
from medsam2.data.datasets import CaseFrames
from medsam2.data.prompts import PromptSampler
from medsam2.data.union import CaseSource
from medsam2.engine.frames import ArrayFrames, FrameSource
from medsam2.engine.memory import make_policy
from medsam2.engine.session import FramePrompt
from medsam2.errors import ConfigError, InputError
from medsam2.preprocessing import PLANES
from medsam2.training.config import TrainConfig

__all__ = [
    "Episode",
    "ImageStack",
    "EpisodeSampler",
    "episode_rng",
    "episode_seed",
    "policy_options",
    "prompt_sampler",
]


def episode_rng(seed: int, step: int, index: int) -> np.random.Generator:
    """The generator of episode ``index`` (0..batch_size-1) of optimiser step ``step``."""
    return np.random.default_rng([seed, step, index])


def episode_seed(seed: int, step: int, index: int) -> int:
    """A 31-bit seed for torch (dropout) and the memory policy of one episode."""
    return int(np.random.default_rng([seed, step, index, 1]).integers(0, 2**31 - 1))


class ImageStack:
    """A frame source over images of any sizes: (H, W) or (H, W, 3) float32 in [0, 1] each."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._frames = [ArrayFrames(img[None], name=f"image {i}") for i, img in enumerate(images)]

    def __len__(self) -> int:
        return len(self._frames)

    def frame_size(self, index: int) -> tuple[int, int]:
        return self._frames[index].frame_size(0)

    def load(self, index: int, image_size: int) -> Tensor:
        """(3, S, S) float32, ImageNet-normalised."""
        return self._frames[index].load(0, image_size)


@dataclass
class Episode:
    """One training sample: frames, per-object targets and prompts, and the memory policy.

    targets[obj_id] is a list of (H_t, W_t) bool masks, one per frame; prompts[obj_id] maps
    prompted frame indices to prompts. obj_id is the label value of the object's class.
    """

    source: FrameSource
    targets: dict[int, list[np.ndarray]]
    prompts: dict[int, dict[int, FramePrompt]]
    memory: str
    memory_options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    corrections: int = 0  # corrective clicks per prompted frame (`medsam2.training.corrections`)
    tracker: str = "memory"  # "memory" or "box-chain": how the session segments and corrects

    @property
    def num_frames(self) -> int:
        return len(self.source)


def prompt_sampler(cfg: TrainConfig) -> PromptSampler:
    return PromptSampler(
        cfg.prompt_click,
        cfg.prompt_box,
        cfg.prompt_mask,
        cfg.max_clicks,
        cfg.max_negative_clicks,
        cfg.box_jitter,
    )


def policy_options(model_cfg: ModelConfig, cfg: TrainConfig, seed: int) -> dict[str, Any]:
    """Memory-policy arguments: the model's SAM 2 flags, the bank size and seed, the user's options."""
    opts: dict[str, Any] = {
        "num_maskmem": model_cfg.num_maskmem,
        "max_obj_ptrs": model_cfg.max_obj_ptrs_in_encoder,
        "only_obj_ptrs_in_the_past": model_cfg.only_obj_ptrs_in_the_past_for_eval,
        "use_signed_tpos": model_cfg.use_signed_tpos_enc_to_obj_ptrs,
    }
    if cfg.memory == "self-sorting":
        opts.update(capacity=cfg.memory_size, seed=seed)
        if cfg.recipe == "2d-one-prompt":
            opts["temporal"] = "none"
    opts.update(cfg.memory_options)
    return opts


class EpisodeSampler:
    """Draws the episodes of a recipe from a dataset; episode (step, index) is always the same."""

    def __init__(self, dataset: CaseSource, cfg: TrainConfig, model_cfg: ModelConfig) -> None:
        self.dataset = dataset
        self.cfg = cfg
        self.model_cfg = model_cfg
        self.prompts = prompt_sampler(cfg)
        self._class_index: dict[int, list[int]] | None = None
        try:  # bad policy options fail now, not in the first step
            make_policy(cfg.memory, **policy_options(model_cfg, cfg, cfg.seed))
        except ConfigError as exc:
            raise ConfigError(f"training option 'memory_options': {exc}") from None

    def _case_order(self, g: int) -> list[int]:
        """Cases to try for global episode number g: its slot in an epoch's permutation, then the next ones."""
        n = len(self.dataset)
        epoch, slot = divmod(g, n)
        perm = np.random.default_rng([self.cfg.seed, epoch, 7]).permutation(n)
        return [int(perm[(slot + k) % n]) for k in range(n)]

    def sample(self, step: int, index: int) -> Episode:
        """Episode ``index`` (0..batch_size-1) of optimiser step ``step``."""
        rng = episode_rng(self.cfg.seed, step, index)
        g = step * self.cfg.batch_size + index
        seed = episode_seed(self.cfg.seed, step, index)
        if self.cfg.recipe == "3d":
            ep = self._sample_3d(rng, g)
        else:
            ep = self._sample_2d(rng, g)
        ep.memory_options = policy_options(self.model_cfg, self.cfg, seed)
        ep.tracker = self.cfg.tracker
        # drawn only when enabled, so older configs keep their episodes; a box that does not say
        # its object (generated parts) always gets clicks: it is scored only after them
        if self.cfg.correction_clicks > 0 and (
            rng.random() < self.cfg.correction_prob or ep.info.get("box_ambiguous")
        ):
            ep.corrections = int(rng.integers(1, self.cfg.correction_clicks + 1))
        ep.info.update(step=step, index=index, seed=seed)
        return ep

    # ---------------------------------------------------------------- 3d
    def _axis(self, rng: np.random.Generator) -> str:
        return str(rng.choice(PLANES)) if self.cfg.axis == "random" else self.cfg.axis

    def _clip_start(self, cf: CaseFrames, anchor: int, length: int, rng: np.random.Generator) -> int:
        present = np.flatnonzero(cf.presence[anchor])
        lo, hi = int(present[0]), int(present[-1])
        if rng.random() < self.cfg.clip_overhang or hi - lo + 1 < length:
            c = int(rng.choice(present))
            start = c - int(rng.integers(0, length))  # the clip contains slice c, anywhere in it
        else:
            start = int(rng.integers(lo, hi - length + 2))  # entirely inside the object's extent
        return int(np.clip(start, 0, cf.num_frames - length))

    def _sample_3d(self, rng: np.random.Generator, g: int) -> Episode:
        axis = self._axis(rng)
        for case in self._case_order(g):
            cf = self.dataset.frames(case, axis)
            if cf.classes:
                break
        else:
            raise InputError(f"{self.dataset.where}: no case contains any labelled object")
        anchor = int(rng.choice(cf.classes))
        length = min(self.cfg.clip_length, cf.num_frames)
        # drawn only when enabled, so older configs keep their episodes
        if self.cfg.single_frame > 0 and rng.random() < self.cfg.single_frame:
            length = 1
        start = self._clip_start(cf, anchor, length, rng)
        clip = slice(start, start + length)
        others = [c for c in cf.classes if c != anchor and cf.presence[c][clip].any()]
        rng.shuffle(others)
        objects = [anchor, *others][: self.cfg.max_objects]
        image, labels = cf.image[clip], cf.labels[clip]
        # Inference propagates both ways from the prompted slice; a reversed clip trains the
        # backward direction (drawn only when enabled, so older configs keep their episodes).
        reverse = self.cfg.clip_reverse > 0 and bool(rng.random() < self.cfg.clip_reverse)
        if reverse:
            image, labels = image[::-1], labels[::-1]
        prompted = range(0, length, self.cfg.frame_prompt_freq)
        targets = {v: list(labels == v) for v in objects}
        prompts = {v: {f: self.prompts(targets[v][f], rng) for f in prompted} for v in objects}
        info = {"case": cf.name, "axis": axis, "start": start, "objects": objects, "reversed": reverse}
        ambiguous = [v for v in objects if v in cf.box_ambiguous]
        if ambiguous:  # only generated "part" targets; other episodes keep their info as before
            info["box_ambiguous"] = ambiguous
        return Episode(
            ArrayFrames(np.ascontiguousarray(image), name=cf.name),
            targets,
            prompts,
            self.cfg.memory,
            info=info,
        )

    # ---------------------------------------------------------------- 2d one-prompt
    def class_index(self) -> dict[int, list[int]]:
        """Class value -> cases containing it (one pass over the dataset, on first use)."""
        if self._class_index is None:
            index: dict[int, list[int]] = {}
            known = getattr(self.dataset, "class_cases", None)  # generated sets know it without loading
            if known is not None:
                index = known()
            else:
                for i in range(len(self.dataset)):
                    for c in self.dataset.frames(i).classes:
                        index.setdefault(c, []).append(i)
            if not index:
                raise InputError(f"{self.dataset.where}: no case contains any labelled object")
            self._class_index = index
        return self._class_index

    def _sample_2d(self, rng: np.random.Generator, g: int) -> Episode:
        index = self.class_index()
        first = next(c for c in self._case_order(g) if self.dataset.frames(c).classes)
        cls = int(rng.choice(self.dataset.frames(first).classes))
        pool = [c for c in index[cls] if c != first] or [first]
        n = self.cfg.stream_length - 1
        rest = [int(c) for c in rng.choice(pool, size=n, replace=len(pool) < n)] if n else []
        members = [self.dataset.frames(c) for c in [first, *rest]]
        images = [m.image[0] for m in members]
        masks = [m.labels[0] == cls for m in members]
        prompted = range(0, len(members), self.cfg.frame_prompt_freq)
        prompts = {cls: {f: self.prompts(masks[f], rng) for f in prompted}}
        info = {"cases": [m.name for m in members], "class": cls}
        return Episode(ImageStack(images), {cls: masks}, prompts, self.cfg.memory, info=info)
