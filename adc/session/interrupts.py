"""Ctrl-C that cannot cut a record in half.

A restock line is recorded in one database transaction, but the session's own bookkeeping (the
line is finished, the guide light goes off) happens just after the commit. A Ctrl-C landing in
between would leave a recorded line looking unrecorded, and the clean-up would record it twice.
`deferred_sigint` holds the interrupt until the block is done, then raises it; the runner wraps
every record in it (the CLI passes it in: the runner itself knows nothing about signals).

A `kill PID` (SIGTERM) or a closed terminal (SIGHUP) must leave the cabinet as safe as a Ctrl-C:
`terminate_as_interrupt` (installed by the CLI for every command) turns both into the same
KeyboardInterrupt, and the two blocks here hold or ignore all three alike. A SIGKILL cannot be
caught: for that the access is on the database before its pulse (controller/access_log.py).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# What a person or the system does to stop a command: Ctrl-C, `kill PID`, the terminal closed.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def terminate_as_interrupt() -> None:
    """SIGTERM and SIGHUP stop a command the way Ctrl-C does (its clean-up runs)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        if sig != signal.SIGINT and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _raise_interrupt)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Run the block to its end; a Ctrl-C (or SIGTERM, SIGHUP) meanwhile is raised afterwards.

    Each stop signal is judged on its own: one ignored stays ignored (a clean-up ignores all
    three; a background job starts with SIGINT ignored, and a `kill PID` must still wait)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # not the thread signals are delivered to
        return
    live = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]
    if not live:
        yield  # all ignored already: a clean-up
        return
    pressed: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        pressed.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in live}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pressed:  # the interrupt wins over an error the block raised: the clean-up runs
            raise KeyboardInterrupt


@contextmanager
def ignored_sigint() -> Iterator[None]:
    """Ignore Ctrl-C (and SIGTERM, SIGHUP) entirely: the clean-up after one (relock, records)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
