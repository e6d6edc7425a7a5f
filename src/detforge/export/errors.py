"""The export's own error, light to import (the CLI catches it for every command)."""

from __future__ import annotations

__all__ = ["ExportError"]


class ExportError(RuntimeError):
    """An exported model failed its parity check (the message is one line)."""
