"""Loading and saving weights: SAM 2 / SAM 2.1 / MedSAM-2 checkpoints and our safetensors files.

Safety: `.pt/.pth` files are read with ``torch.load(weights_only=True)`` only, so a pickle that
carries code is refused before anything runs.  Our own files are safetensors with the
`ModelConfig` saved as JSON beside them (``model.safetensors`` + ``model.json``).
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from medsam2.config import ModelConfig
from medsam2.errors import CheckpointError
from medsam2.model.presets import PRESETS, check_image_size, get_preset
from medsam2.model.sam2_model import Sam2Model

__all__ = ["load_model", "save_model", "read_state_dict", "detect_preset", "Detection", "input_size_for"]

log = logging.getLogger(__name__)
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


@dataclass(frozen=True)
class Detection:
    """What `detect_preset` concluded about a state dict."""

    preset: str
    version: str
    dtype: str
    num_params: int
    reason: str


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint's tensors: `{"model": sd}`, a bare state dict, or safetensors.

    Raises CheckpointError naming the file when it is missing, truncated, not a checkpoint or
    carries pickled objects other than tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    if p.suffix == ".safetensors":
        return _read_safetensors(p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{p}: refused to load: the file contains pickled objects other than tensors "
            f"(only weights are accepted, code never runs): {first}"
        ) from None
    except Exception as exc:  # torch raises many types for damaged files (KeyError, EOFError, ...)
        raise CheckpointError(
            f"{p}: not a readable PyTorch checkpoint (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None
    return _unwrap(obj, p)


def _read_safetensors(p: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(p), device="cpu"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{p}: not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from None


def _unwrap(obj: object, p: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(
            f"{p}: expected a state dict or {{'model': state_dict}}, got {type(obj).__name__}"
        )
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{p}: entries that are not tensors: {bad[:5]}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


@functools.lru_cache(maxsize=16)
def _signature(name: str) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of a preset, computed on the meta device (no memory)."""
    with torch.device("meta"):
        model = Sam2Model(PRESETS[name])
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _differences(expected: dict[str, tuple[int, ...]], sd: dict[str, Tensor]) -> list[str]:
    missing = [f"missing {k}" for k in expected if k not in sd]
    unexpected = [f"unexpected {k}" for k in sd if k not in expected]
    shapes = [
        f"shape of {k}: file {tuple(sd[k].shape)} vs model {expected[k]}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != expected[k]
    ]
    return missing + unexpected + shapes


def detect_preset(sd: dict[str, Tensor]) -> Detection:
    """Find the preset whose parameter names and shapes match `sd` exactly.

    Raises CheckpointError listing the first differences to the closest preset otherwise.
    """
    scored = sorted((len(_differences(_signature(n), sd)), n) for n in PRESETS)
    best_count, best = scored[0]
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in sd.values() if v.is_floating_point()})
    n_params = sum(v.numel() for v in sd.values())
    if best_count:
        diffs = _differences(_signature(best), sd)
        raise CheckpointError(
            f"weights match no known SAM 2 architecture; closest is {best} with {best_count} difference(s), "
            f"first: {'; '.join(diffs[:5])}"
        )
    cfg = PRESETS[best]
    trunk = cfg.trunk
    reason = (
        f"{'has' if cfg.version == 'sam2.1' else 'no'} obj_ptr_tpos_proj/no_obj_embed_spatial -> {cfg.version}; "
        f"Hiera embed {trunk.embed_dim}, {sum(trunk.stages)} blocks -> {best}"
    )
    return Detection(best, cfg.version, ",".join(dtypes), n_params, reason)


# bowang-lab's MedSAM2 releases (MedSAM2_latest.pt, MedSAM2_2411.pt, MedSAM2_US_Heart.pt,
# MedSAM2_MRI_LiverLesion.pt, MedSAM2_CTLesion.pt, ...): SAM 2.1 Hiera-T fine-tuned at 512 px. The
# MedSAM-2 paper's MedSAM2_pretrain.pth (bf16, SAM 2 v1 keys) is a different model, run at 1024.
_MEDSAM2_512 = re.compile(r"^medsam2_.+\.pt$", re.IGNORECASE)
_MEDSAM2_512_PRESET = "sam2.1_hiera_t"


def input_size_for(path: str | Path, preset: str) -> tuple[int, str]:
    """(input size in px, why) for a ``.pt``/``.pth`` checkpoint, which does not store its size.

    A file named like a bowang-lab MedSAM2 release (``MedSAM2_*.pt``) holding SAM 2.1 Hiera-T
    weights runs at 512 px; anything else at the preset's size (1024 for SAM 2 / 2.1 checkpoints).
    """
    name = Path(path).name
    default = PRESETS[preset].image_size if preset in PRESETS else get_preset(preset).image_size
    if _MEDSAM2_512.match(name):
        if preset == _MEDSAM2_512_PRESET:
            return 512, (
                f"the file does not store its input size; its name and architecture ({preset}) match "
                "bowang-lab's MedSAM2 releases, which run at 512 px (--image-size to override)"
            )
        return default, (
            f"named like a bowang-lab MedSAM2 release (512 px) but holds {preset}, not {_MEDSAM2_512_PRESET}; "
            f"using the preset's {default} px (--image-size to override)"
        )
    return default, (
        f"the file does not store its input size; using the preset's {default} px "
        "(--image-size to override; bowang-lab MedSAM2 models run at 512)"
    )


def _config_beside(p: Path) -> ModelConfig | None:
    candidate = p.with_suffix(".json")
    if candidate.is_file():
        try:
            return ModelConfig.from_json(candidate)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{candidate}: invalid model config: {exc}") from None
    return None


def load_model(
    path: str | Path,
    preset: str | None = None,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
) -> Sam2Model:
    """Load a checkpoint strictly into a `Sam2Model` in eval mode, weights upcast to float32.

    path: Meta's sam2/sam2.1 `.pt`, the MedSAM-2 paper's bf16 `MedSAM2_pretrain.pth`, bowang-lab
    MedSAM2 `.pt`, or our `.safetensors` (config read from the `.json` beside it).
    preset: force an architecture instead of detecting it from keys and shapes.
    image_size: input resolution; checkpoints do not store it (default: the config beside the
    file, else the preset's 1024; bowang-lab MedSAM2 models use 512).
    """
    p = Path(path)
    sd = read_state_dict(p)
    cfg = _config_beside(p) if p.suffix == ".safetensors" else None
    if cfg is not None and preset is not None and get_preset(preset).name != cfg.name:
        raise CheckpointError(
            f"{p}: its config {p.with_suffix('.json').name} says {cfg.name}; preset={preset!r} contradicts it"
        )
    if cfg is None:
        if preset is None:
            det = detect_preset(sd)
            log.info("%s: detected %s (%s)", p, det.preset, det.reason)
            preset = det.preset
        cfg = get_preset(preset)
        if image_size is None:
            image_size, why = input_size_for(p, cfg.name)
            (log.warning if image_size != cfg.image_size else log.info)(
                "%s: input size %d px: %s", p, image_size, why
            )
    if image_size is not None:
        # only the input size changes: a config read beside the file keeps its model options
        # (e.g. the embedded nano-box's and nano-track's dense box prompt)
        cfg = cfg.replace(image_size=check_image_size(image_size))
    diffs = _differences(_signature_of(cfg), sd)
    if diffs:
        raise CheckpointError(f"{p}: does not match {cfg.name}: {'; '.join(diffs[:5])}")
    model = Sam2Model(cfg)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
    return model.to(device).eval()


def _signature_of(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    if cfg.name in PRESETS and PRESETS[cfg.name].replace(image_size=cfg.image_size) == cfg:
        return _signature(cfg.name)
    with torch.device("meta"):
        model = Sam2Model(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def save_model(model: Sam2Model, path: str | Path) -> Path:
    """Write `model` as safetensors plus its config JSON beside it, atomically.

    Returns the path of the weights file (suffix forced to `.safetensors`).
    """
    from safetensors.torch import save_file

    p = Path(path).with_suffix(".safetensors")
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic(
        p, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt", "medsam2_config": model.config.name})
    )
    _atomic(p.with_suffix(".json"), lambda tmp: Path(tmp).write_text(model.config.to_json() + "\n"))
    return p


def _atomic(final: Path, write: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; weights are meant to be shared
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
