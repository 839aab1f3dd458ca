"""The restock tests' hardware: the virtual cabinet behind the sim backend, and a person at it.

The controller sees only the driver (the CabinetDriver port); the test plays the technician
through the virtual cabinet's `sim_*` inputs, and lets SimPy time pass where a person would take
time. The controller's clock reads the same SimPy time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from adc.controller.restock import RestockSession, State
from adc.drivers.registry import open_backend
from tests.controller.site import START


class SimClock:
    """Controller time = START + SimPy seconds (+ whole days a test skips ahead)."""

    def __init__(self, driver: object, start: datetime = START) -> None:
        self.driver, self.start, self.offset = driver, start, timedelta()

    def now(self) -> datetime:
        return self.start + self.offset + timedelta(seconds=self.driver.now)  # type: ignore[attr-defined]

    def skip_days(self, days: int) -> None:
        self.offset += timedelta(days=days)


def sim_driver(profile: str = "tcp-6drawer", seed: int = 1):  # type: ignore[no-untyped-def]
    return open_backend(f"sim:{profile}?seed={seed}")


class Person:
    """A technician at the virtual cabinet: opens what the session unlocked, moves units, closes."""

    def __init__(self, session: RestockSession) -> None:
        self.session = session
        self.driver = session.driver
        self.cabinet = self.driver.cabinet  # type: ignore[attr-defined]

    def wait(self, seconds: float) -> None:
        self.driver.advance(seconds)  # type: ignore[attr-defined]

    def open(self, drawer: str, pocket_door: str | None = None) -> State:
        self.wait(0.05)  # the latch retracts a few ms after the pulse
        assert self.cabinet.sim_open(drawer), f"drawer {drawer} did not open"
        if pocket_door:
            assert self.cabinet.sim_open(pocket_door), f"{pocket_door} did not open"
        self.wait(0.1)
        return self.session.poll()

    def close(self, drawer: str) -> State:
        self.cabinet.sim_close(drawer)
        self.wait(0.05)
        state = self.session.poll()
        for _ in range(20):  # the scale settles within its settle time
            if state is not State.SETTLING:
                break
            self.wait(0.1)
            state = self.session.poll()
        return state

    def restock(
        self, drawer: str, pocket: str, units: int, unit_weight_g: float, *, door: str | None = None
    ) -> None:
        self.session.unlock()
        assert self.open(drawer, door) is State.OPEN
        if units > 0:
            self.cabinet.sim_add(pocket, units, unit_weight_g)
        elif units < 0:
            self.cabinet.sim_take(pocket, -units)
        assert self.close(drawer) is State.CLOSED
