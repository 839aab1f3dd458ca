"""The controller's only source of time: an injected clock.

The controller never reads the wall clock. A CLI session injects a system clock, a SimPy scenario a
clock that reads the environment's virtual time, a test a `ManualClock` it advances by hand. So the
same restock state machine runs in real time, in simulated months, and in a deterministic test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class ManualClock:
    """A clock that moves only when told to: tests and scripted sessions."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, *, days: float = 0) -> datetime:
        self._now += timedelta(seconds=seconds, days=days)
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs timezone-aware times")
        self._now = when


def utc(moment: datetime) -> datetime:
    """A clock reading as UTC; a naive time is a programming error, not something to guess at."""
    if moment.tzinfo is None:
        raise ValueError("the clock returned a naive datetime; clocks must be timezone-aware")
    return moment.astimezone(UTC)
