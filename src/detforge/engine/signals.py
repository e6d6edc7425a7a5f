"""SIGTERM during training behaves like Ctrl-C: the loop's exception path saves ``last.pt``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "sigterm_raises"]


class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM (exit status 143)."""

    def __str__(self) -> str:
        return "SIGTERM received"


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated`; the previous handler comes back after.

    Only the main thread can install signal handlers; elsewhere (training in a thread) this
    does nothing and SIGTERM keeps its previous meaning.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
