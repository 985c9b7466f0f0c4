"""`TrainConfig`: every training option in one frozen dataclass, with a JSON round-trip.

Precedence when a run starts: the defaults below < a config file (``--config FILE``) < command
line flags. The resolved config is written to the run folder as ``config.json``; ``--resume``
reads it back. Invalid values raise :class:`~medsam2.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsam2.errors import ConfigError

__all__ = ["TrainConfig", "MODULE_GROUPS", "RECIPES", "AXES", "MODEL_OPTIONS"]

# ModelConfig flags a run may set on the model it starts from (saved with its checkpoints): they
# change how prompts reach the decoder, never a parameter's shape.
MODEL_OPTIONS = ("box_mask_prompt", "click_mask_prompt", "dynamic_multimask_via_stability")

RECIPES = ("3d", "2d-one-prompt")
AXES = ("axial", "coronal", "sagittal", "random")
MODULE_GROUPS = ("image_encoder", "prompt_encoder", "decoder", "memory")
MEMORIES = ("fifo", "self-sorting")
DEVICES = ("auto", "cpu", "cuda", "mps")
VAL_PROMPTS = ("box", "click", "mask")
MASK_LOSSES = ("focal", "bce")
TRACKERS = ("memory", "box-chain")


@dataclass(frozen=True)
class TrainConfig:
    """Training options (see ``docs/training.md`` for each one's meaning and the recipes' defaults)."""

    # run
    data: str = ""
    out: str = ""
    init: str | None = None  # checkpoint accepted by load_model
    preset: str | None = None  # or a preset trained from scratch
    image_size: int | None = None  # None: the checkpoint's / preset's
    model_options: dict[str, Any] = field(default_factory=dict)  # MODEL_OPTIONS set on init/preset
    recipe: str = "3d"
    steps: int = 1000
    batch_size: int = 1  # episodes per optimiser step, over all processes
    seed: int = 0
    device: str = "auto"
    progress: bool = False
    # data
    axis: str = "axial"
    window: str = "auto"
    cache_cases: int = 8
    val_split: float = 0.0  # fraction of cases held out; 0: validate on (some) training cases
    # 3d recipe
    clip_length: int = 8
    clip_overhang: float = 0.25  # probability that a clip may reach past the object's ends
    clip_reverse: float = 0.0  # probability that a clip runs towards lower slice indices
    single_frame: float = 0.0  # probability that a 3d episode is one prompted slice (no propagation)
    max_objects: int = 3
    # 2d one-prompt recipe
    stream_length: int = 8
    # prompts
    prompt_freq: int | None = None  # prompt every n-th frame; None: the recipe's (3d 2, 2d 5 as the paper)
    prompt_click: float = 0.5  # probabilities of the prompt kinds (normalised)
    prompt_box: float = 0.5
    prompt_mask: float = 0.0
    max_clicks: int = 1  # positive clicks per prompted frame: 1..max_clicks
    max_negative_clicks: int = 0  # negative clicks: 0..max_negative_clicks
    box_jitter: float = 0.1  # each box side moves outwards by up to this fraction of the box size
    # corrective clicks: with probability correction_prob an episode's prompted frames get
    # 1..correction_clicks clicks, one at a time, each on an error of the answer before it (0: off)
    correction_clicks: int = 0
    correction_prob: float = 0.5
    # how unprompted frames are segmented, and corrections decoded: as inference does with it
    tracker: str = "memory"
    # memory
    memory: str = "self-sorting"
    memory_size: int = 16  # self-sorting bank capacity
    memory_options: dict[str, Any] = field(default_factory=dict)
    # losses (SAM 2 / MedSAM2: 20 / 1 / 1 / 1)
    mask_loss: str = "focal"
    loss_mask: float = 20.0
    loss_dice: float = 1.0
    loss_iou: float = 1.0
    loss_object: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    bce_pos_weight: float = 1.0
    iou_loss_all_candidates: bool = True
    # optimisation
    lr: float = 1e-4
    lr_image_encoder: float | None = None  # None: lr
    lr_prompt_encoder: float | None = None
    lr_decoder: float | None = None
    lr_memory: float | None = None
    freeze: tuple[str, ...] = ()
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # 0: off
    amp: bool = True  # bf16 autocast on CUDA (ignored elsewhere)
    grad_checkpointing: bool = False
    # bookkeeping
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    val_every: int = 500  # 0: only at the end
    val_cases: int = 4  # at most this many validation cases
    val_prompt: str = "box"

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}")
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown fields raise ``ConfigError``."""
        if not isinstance(data, dict):
            raise ConfigError(f"training config: expected a JSON object, got {type(data).__name__}")
        return TrainConfig().replace(**data)

    @staticmethod
    def from_json(path: str | Path) -> TrainConfig:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config file: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}: not valid JSON: {exc}") from None
        try:
            return TrainConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None

    @property
    def frame_prompt_freq(self) -> int:
        """``prompt_freq``, or the recipe's default (3d: every 2nd slice, 2d: every 5th image)."""
        if self.prompt_freq is not None:
            return self.prompt_freq
        return 2 if self.recipe == "3d" else 5

    def group_lr(self, group: str) -> float:
        """Learning rate of a module group (its own, else ``lr``)."""
        value = getattr(self, f"lr_{group}")
        return self.lr if value is None else float(value)


_TUPLES = {"freeze", "betas"}


def _coerce(name: str, value: Any) -> Any:
    if name in _TUPLES and isinstance(value, list):
        return tuple(value)
    if name == "freeze" and isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def _fail(name: str, message: str, value: Any) -> ConfigError:
    return ConfigError(f"training option {name!r}: {message}, got {value!r}")


def _check_types(cfg: TrainConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kind = str(f.type)
        if kind == "bool" and not isinstance(value, bool):
            raise _fail(f.name, "must be true or false", value)
        if kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
            if not (value is None and "None" in kind):
                raise _fail(f.name, "must be an integer", value)
        if kind.startswith("float") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            if not (value is None and "None" in kind):
                raise _fail(f.name, "must be a number", value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f.name, "must be finite", value)
        if kind.startswith("str") and not isinstance(value, str):
            if not (value is None and "None" in kind):
                raise _fail(f.name, "must be a string", value)


def _check_ranges(cfg: TrainConfig) -> None:
    positive: tuple[str, ...] = (
        "steps",
        "batch_size",
        "cache_cases",
        "clip_length",
        "max_objects",
        "stream_length",
    )
    positive += ("max_clicks", "log_every", "checkpoint_every", "keep_checkpoints")
    positive += ("val_cases", "memory_size")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise _fail(name, "must be >= 1", getattr(cfg, name))
    if cfg.prompt_freq is not None and cfg.prompt_freq < 1:
        raise _fail("prompt_freq", "must be >= 1", cfg.prompt_freq)
    for name in ("seed", "warmup_steps", "max_negative_clicks", "val_every", "correction_clicks"):
        if getattr(cfg, name) < 0:
            raise _fail(name, "must be >= 0", getattr(cfg, name))
    for name in (
        "clip_overhang",
        "clip_reverse",
        "single_frame",
        "box_jitter",
        "correction_prob",
        "min_lr_ratio",
        "focal_alpha",
    ):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise _fail(name, "must lie in [0, 1]", getattr(cfg, name))
    if not 0.0 <= cfg.val_split < 1.0:
        raise _fail("val_split", "must lie in [0, 1)", cfg.val_split)
    nonneg: tuple[str, ...] = (
        "prompt_click",
        "prompt_box",
        "prompt_mask",
        "loss_mask",
        "loss_dice",
        "loss_iou",
    )
    nonneg += ("loss_object", "focal_gamma", "weight_decay", "grad_clip")
    for name in nonneg:
        if getattr(cfg, name) < 0:
            raise _fail(name, "must be >= 0", getattr(cfg, name))
    if cfg.prompt_click + cfg.prompt_box + cfg.prompt_mask <= 0:
        raise _fail("prompt_click", "prompt_click + prompt_box + prompt_mask must be > 0", cfg.prompt_click)
    if cfg.bce_pos_weight <= 0:
        raise _fail("bce_pos_weight", "must be > 0", cfg.bce_pos_weight)
    for name in ("lr", "lr_image_encoder", "lr_prompt_encoder", "lr_decoder", "lr_memory"):
        value = getattr(cfg, name)
        if value is not None and value < 0:
            raise _fail(name, "must be >= 0", value)
    numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in cfg.betas)
    if len(cfg.betas) != 2 or not numbers or not all(0.0 <= b < 1.0 for b in cfg.betas):
        raise _fail("betas", "must be two numbers in [0, 1)", cfg.betas)
    if cfg.image_size is not None and (cfg.image_size <= 0 or cfg.image_size % 32):
        raise _fail("image_size", "must be a positive multiple of 32", cfg.image_size)


def _check_choices(cfg: TrainConfig) -> None:
    choices = {
        "recipe": RECIPES,
        "axis": AXES,
        "memory": MEMORIES,
        "device": DEVICES,
        "val_prompt": VAL_PROMPTS,
        "mask_loss": MASK_LOSSES,
        "tracker": TRACKERS,
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise _fail(name, f"must be one of {', '.join(allowed)}", getattr(cfg, name))
    bad = [g for g in cfg.freeze if g not in MODULE_GROUPS]
    if bad:
        raise _fail(
            "freeze", f"unknown module group(s) {bad}; choose from {', '.join(MODULE_GROUPS)}", cfg.freeze
        )
    if not isinstance(cfg.memory_options, dict):
        raise _fail("memory_options", "must be an object of policy options", cfg.memory_options)
    if not isinstance(cfg.model_options, dict):
        raise _fail("model_options", "must be an object of model flags", cfg.model_options)
    for key, value in cfg.model_options.items():
        if key not in MODEL_OPTIONS:
            raise _fail("model_options", f"unknown flag {key!r}; choose from {', '.join(MODEL_OPTIONS)}", key)
        if not isinstance(value, bool):
            raise _fail("model_options", f"{key} must be true or false", value)
    if cfg.init is not None and cfg.preset is not None:
        raise _fail("init", "give either init (a checkpoint) or preset (from scratch), not both", cfg.init)


def _validate(cfg: TrainConfig) -> None:
    if not isinstance(cfg.freeze, tuple) or not all(isinstance(g, str) for g in cfg.freeze):
        raise _fail("freeze", "must be a list of module group names", cfg.freeze)
    if not isinstance(cfg.betas, tuple):
        raise _fail("betas", "must be a list of two numbers", cfg.betas)
    _check_types(cfg)
    _check_ranges(cfg)
    _check_choices(cfg)
