"""A simulated person meeting a re-arming lock waits out what the driver says and tries again."""

from __future__ import annotations

from types import SimpleNamespace

import simpy

from adc.drivers.base import RearmRefused
from adc.scenario.people import _unlock


def test_a_person_waits_out_a_re_arming_solenoid_and_tries_again() -> None:
    env = simpy.Environment()
    tries: list[float] = []

    def unlock() -> None:
        tries.append(env.now)
        if len(tries) == 1:
            raise RearmRefused("dio1:coil.0", remaining_ms=1500)

    env.process(_unlock(SimpleNamespace(env=env), unlock))  # type: ignore[arg-type]
    env.run()
    assert len(tries) == 2 and abs(tries[1] - 1.6) < 1e-9  # the remaining 1.5 s, plus a moment


def test_a_solenoid_that_keeps_refusing_reaches_the_person_after_three_waits() -> None:
    env = simpy.Environment()

    def unlock() -> None:
        raise RearmRefused("dio1:coil.0", remaining_ms=100)

    def visit():  # type: ignore[no-untyped-def]
        try:
            yield from _unlock(SimpleNamespace(env=env), unlock)  # type: ignore[arg-type]
        except RearmRefused:
            outcome.append(env.now)

    outcome: list[float] = []
    env.process(visit())
    env.run()
    assert len(outcome) == 1 and abs(outcome[0] - 3 * 0.2) < 1e-9  # three waits of 0.1 + 0.1 s
