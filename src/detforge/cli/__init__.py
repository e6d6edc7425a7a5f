"""The ``detforge`` command line: one module per command, one argument spec (``spec.py``).

Nothing imports this package; ``main`` is the console script and ``python -m detforge.cli``.
"""

from .main import main

__all__ = ["main"]
