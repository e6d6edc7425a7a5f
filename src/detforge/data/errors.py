"""Errors raised by the data pipeline.

Both derive from ``ValueError`` so callers that only care about "bad input" can catch one type;
messages always name the file (and key or line) the user has to fix.
"""

from __future__ import annotations

__all__ = ["DataError", "DataConfigError"]


class DataError(ValueError):
    """A problem with the data itself: an unreadable image, a bad label line, an empty split."""


class DataConfigError(DataError):
    """A problem with a dataset description (``data.yaml``): missing file, key, wrong type."""
