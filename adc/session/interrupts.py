"""Ctrl-C that cannot cut a record in half.

A restock line is recorded in one database transaction, but the session's own bookkeeping (the
line is finished, the guide light goes off) happens just after the commit. A Ctrl-C landing in
between would leave a recorded line looking unrecorded, and the clean-up would record it twice.
`deferred_sigint` holds the interrupt until the block is done, then raises it; the runner wraps
every record in it (the CLI passes it in: the runner itself knows nothing about signals).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Run the block to its end; a Ctrl-C pressed meanwhile is raised afterwards."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored or threading.current_thread() is not threading.main_thread():
        yield  # ignored already (a clean-up), or not the thread signals are delivered to
        return
    pressed: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        pressed.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


@contextmanager
def ignored_sigint() -> Iterator[None]:
    """Ignore Ctrl-C entirely (the clean-up after one: relock check, records)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
