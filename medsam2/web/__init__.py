"""`medsam2 serve`: a browser annotation app, a thin layer over the engine and IO.

* `annotator.Annotator` — one served volume: objects, prompts, undo, propagation, save (no web
  dependencies; usable from Python).
* `coords.WorldMap` — world millimetres (RAS as NiiVue reports them, or LPS) <-> voxel indices,
  through SimpleITK.
* `app.create_app` — the Starlette application (needs the ``web`` extra:
  ``pip install 'medical-sam2[web]'``); `security` holds its guards.

The web framework is imported only by `app`/`security`, so ``import medsam2`` works without it.
"""

from __future__ import annotations

import importlib.util

from medsam2.errors import ConfigError

__all__ = ["require_web"]

WEB_MODULES = ("starlette", "uvicorn")


def require_web() -> None:
    """Raise a one-line ConfigError when the ``web`` extra is not installed."""
    missing = [m for m in WEB_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"medsam2 serve needs {', '.join(missing)}: install the web extra, "
            "pip install 'medical-sam2[web]'"
        )
