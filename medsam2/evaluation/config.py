"""The options of an evaluation run, validated once (exact meanings in docs/evaluate.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from medsam2.errors import ConfigError
from medsam2.evaluation.prompting import PROMPT_TYPES, SLICE_RULES

__all__ = ["EvalConfig", "PROTOCOLS", "AXES", "NOT_COMPARABLE"]

PROTOCOLS = ("single-slice", "every-k", "iterative", "legacy-medsam2", "one-prompt-2d")
AXES = ("axial", "coronal", "sagittal")
NOT_COMPARABLE = ("legacy-medsam2",)


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: a protocol, its prompt simulation and what to score.

    every_k: ``every-k`` prompts slices f0, f0+k, ... of the object's range; stream_every:
    ``one-prompt-2d`` prompts images 0, N, 2N, ... of each class's stream (0: the first only);
    clicks: corrective clicks of ``iterative``; noc_cap: clicks allowed for NoC@85/90 (0: off);
    tolerances: NSD tolerance in mm per class value (others: ``tolerance_mm``).
    """

    protocol: str = "single-slice"
    slice_rule: str = "largest"
    prompt: str = "box"
    box_jitter: float = 0.0
    every_k: int = 5
    clicks: int = 5
    noc_cap: int = 20
    stream_every: int = 0
    axes: tuple[str, ...] = ("axial",)
    tolerance_mm: float = 2.0
    tolerances: dict[int, float] = field(default_factory=dict)
    classes: tuple[int, ...] | None = None
    cases: tuple[str, ...] | None = None
    seed: int = 0
    save_predictions: bool = False

    def __post_init__(self) -> None:
        _choice("--protocol", self.protocol, PROTOCOLS)
        _choice("--slice", self.slice_rule, SLICE_RULES)
        _choice("--prompt", self.prompt, PROMPT_TYPES)
        for a in self.axes:
            _choice("--axis", a, AXES)
        if not self.axes or len(set(self.axes)) != len(self.axes):
            raise ConfigError(f"--axis: give distinct axes, got {list(self.axes)}")
        if self.box_jitter < 0 or self.tolerance_mm < 0 or any(v < 0 for v in self.tolerances.values()):
            raise ConfigError("--box-jitter and NSD tolerances must be >= 0")
        if self.every_k < 1 or self.clicks < 0 or self.noc_cap < 0 or self.stream_every < 0:
            raise ConfigError("--every-k must be >= 1; --clicks, --noc-cap and --stream-every >= 0")
        if self.protocol == "legacy-medsam2" and self.prompt == "mask":
            raise ConfigError("--protocol legacy-medsam2 prompts with a box or a point, not a mask")

    def tolerance(self, value: int) -> float:
        return self.tolerances.get(value, self.tolerance_mm)

    @property
    def comparable(self) -> bool:
        return self.protocol not in NOT_COMPARABLE

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tolerances"] = {str(k): v for k, v in self.tolerances.items()}
        return out

    def key(self) -> str:
        """A hash of everything that changes a case's results (cached case files must match it)."""
        data = {k: v for k, v in self.to_json().items() if k not in ("cases", "save_predictions")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag} {value}: choose one of {', '.join(allowed)}")
