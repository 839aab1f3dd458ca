"""How a diagnostics command waits: drivers never sleep, so the command owns waiting.

Against the in-process virtual cabinet, waiting means letting SimPy time pass (`driver.advance`),
which is instant and keeps a run deterministic. Against anything on a wire (real hardware, or the
emulators of `adc sim serve`, which run in real time) it means sleeping in wall time. The choice is
made once, from what the driver can do (`waiter_for`), so the procedures never ask which backend
they are talking to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Waiter(Protocol):
    """A clock the procedures measure with, and a way to let time pass on it."""

    def now(self) -> float:
        """Seconds on this waiter's clock (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass."""
        ...


class SteppedTime:
    """Time that passes only when asked to: a SimPy environment advanced by `advance`."""

    def __init__(self, advance: Callable[[float], None], clock: Callable[[], float]) -> None:
        self._advance = advance
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._advance(max(seconds, 1e-6))  # a step too small to move a float clock moves 1 µs


class WallTime:
    """The wall clock (monotonic); `sleep` really sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def waiter_for(driver: object) -> Waiter:
    """Stepped time when the driver can advance its own time (the in-process backend), else the
    wall clock. The one place that looks at the driver to decide how to wait."""
    advance = getattr(driver, "advance", None)
    if callable(advance) and hasattr(driver, "now"):
        return SteppedTime(advance, lambda: float(driver.now))  # type: ignore[attr-defined]
    return WallTime()


def poll_until(
    waiter: Waiter,
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout_s: float,
    step_s: float,
) -> tuple[T, float, bool]:
    """Read until `done(value)` or `timeout_s` passed: (last value, seconds taken, done?).

    Reads at least once; the time taken is measured on the waiter's clock from the first read.
    """
    start = waiter.now()
    while True:
        value = read()
        elapsed = waiter.now() - start
        if done(value):
            return value, elapsed, True
        if elapsed >= timeout_s:
            return value, elapsed, False
        waiter.sleep(min(step_s, timeout_s - elapsed))
