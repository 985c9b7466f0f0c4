"""The shipped models: both load, and `--checkpoint embedded:NAME` chooses between them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from medsam2.cli.common import CommonOptions, load_cli_model, resolve_checkpoint
from medsam2.errors import InputError
from medsam2.model.embedded import EMBEDDED_MODELS, checkpoint_path

BASE = CommonOptions(None, None, None, "cpu", "self-sorting", None, 0, Path("."), False, False)


@pytest.mark.parametrize("name", list(EMBEDDED_MODELS))
def test_every_embedded_model_ships_and_loads(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = checkpoint_path(name)
    assert path is not None and path.name == EMBEDDED_MODELS[name]
    opts = dataclasses.replace(BASE, checkpoint=Path(f"embedded:{name}"))
    assert resolve_checkpoint(opts) == (path, True)
    model, loaded = load_cli_model(opts, "cpu")
    assert loaded == path and model.config.name == "nano" and model.image_size == 256
    assert f"using the embedded model embedded:{name} ({path.name})" in capsys.readouterr().err


def test_the_default_is_nano_synth_and_unknown_names_are_refused() -> None:
    assert resolve_checkpoint(BASE) == (checkpoint_path("nano-synth"), True)
    assert checkpoint_path("nano-xl") is None
    opts = dataclasses.replace(BASE, checkpoint=Path("embedded:nano-xl"))
    with pytest.raises(
        InputError,
        match=r"embedded:nano-xl: no such embedded model \(installed: embedded:nano, embedded:nano-synth\)",
    ):
        resolve_checkpoint(opts)
