"""The operators' command line (``breakpilot-store``): commands, formatting, the demo."""

from . import lease as _lease  # noqa: F401  (registers the ``lease`` commands)
from .commands import cli, main

__all__ = ["cli", "main"]
