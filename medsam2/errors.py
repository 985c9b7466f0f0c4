"""Exceptions users see. Every message names the file or argument and the problem."""

from __future__ import annotations

__all__ = ["MedSam2Error", "InputError", "CheckpointError", "ConfigError", "PromptError"]


class MedSam2Error(Exception):
    """Base class of every error medsam2 raises on purpose."""


class InputError(MedSam2Error, ValueError):
    """An input file, folder or array cannot be used (unreadable, wrong shape, bad geometry...)."""


class PromptError(InputError):
    """A prompt is malformed or does not fit the image it is given for."""


class CheckpointError(MedSam2Error, ValueError):
    """A checkpoint cannot be loaded (unreadable, unsafe, wrong keys or shapes)."""


class ConfigError(MedSam2Error, ValueError):
    """A configuration value is invalid."""
