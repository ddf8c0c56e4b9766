"""The operators' command line (``breakpilot-store``): commands, formatting, the demo."""

from .commands import cli, main

__all__ = ["cli", "main"]
