"""Time in a restock session: one waiter for the runner, one clock for the controller, both alike.

The controller measures its timeouts (a pocket unlocked but not opened, a scale that does not
settle) on its injected clock, and the runner lets time pass with a `Waiter` (adc/waiting.py,
shared with diagnostics). They must agree, or a scripted session over the virtual cabinet, where
simulated time runs instantly, would never see the controller's 30 s unlock timeout expire.
So the controller's clock is derived from the waiter (`SessionClock`).

An interactive session over the in-process virtual cabinet is the one case where simulated time
must follow the wall clock: the person at the keyboard takes real seconds to type `open`, and the
countdown they see must be real. `FollowWallClock` does that without the driver ever sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from adc.waiting import SteppedTime, Waiter, waiter_for

__all__ = ["FollowWallClock", "SessionClock", "Waiter", "interactive_waiter", "waiter_for"]


class SessionClock:
    """The controller's clock: the wall-clock time the session started plus the waiter's time since.

    Over wire drivers the waiter is the wall clock, so this is wall time; over the in-process
    virtual cabinet it is simulated time anchored at the real start, so records carry plausible
    timestamps and the controller's timeouts run on the same time as the cabinet's mechanics.
    """

    def __init__(self, waiter: Waiter, start: datetime | None = None) -> None:
        self._waiter = waiter
        self._start = start or datetime.now(UTC)
        self._t0 = waiter.now()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._waiter.now() - self._t0)


class FollowWallClock:
    """Simulated time that keeps pace with the wall clock (interactive sessions on a sim backend).

    `now()` reports the simulated time plus the real time not yet caught up, with no side effect;
    `sleep(s)` really sleeps and then advances the simulation to match, so the virtual cabinet's
    mechanics (latch re-arm, scale settling) take the real seconds a person sees.
    """

    def __init__(self, stepped: SteppedTime) -> None:
        self._stepped = stepped
        self._synced = time.monotonic()

    def now(self) -> float:
        return self._stepped.now() + (time.monotonic() - self._synced)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
        self.sync()

    def sync(self) -> None:
        """Advance the simulation by the real time passed since the last sync."""
        now = time.monotonic()
        behind, self._synced = now - self._synced, now
        self._stepped.sleep(behind)


def interactive_waiter(driver: object) -> Waiter:
    """The waiter for a person at a terminal: wall time, with a simulated cabinet kept in step."""
    waiter = waiter_for(driver)
    if isinstance(waiter, SteppedTime):
        return FollowWallClock(waiter)
    return waiter
