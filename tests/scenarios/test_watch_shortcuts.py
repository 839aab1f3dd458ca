"""The scenario watch's shortcuts (issue 17 item 1) give what running the rules gives.

`supervision.gathering` tells a planning watch, without running the rules, that the next slow
tick differs (a scale's window takes one more reading there). Every time it says so during real
scenario runs, the rules themselves (`Supervisor._differs`) must agree; and it must say so often
(else it saves nothing)."""

from __future__ import annotations

import pytest

from adc.scenario import load_scenario
from adc.scenario.runner import build_world, close_world, start_processes
from adc.scenario.supervise import Supervisor
from tests.scenarios.conftest import SCENARIOS


@pytest.mark.parametrize(("name", "days"), [("hospital-30day", 0.05), ("station-incidents", 0.3)])
def test_gathering_says_differs_only_where_the_rules_do(
    name: str, days: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    said, disagreed = [0], []
    gathering = Supervisor._gathering

    def checked(self: Supervisor) -> bool:
        result = gathering(self)
        if result:
            said[0] += 1
            k = self.tick_at_or_after(self.env.now)
            nxt = (k // self.slow_every + 1) * self.slow_every  # the next slow tick
            if not self._differs(nxt, True):
                disagreed.append((self.station.id, self.env.now))
        return result

    monkeypatch.setattr(Supervisor, "_gathering", checked)
    world = build_world(load_scenario(SCENARIOS / f"{name}.toml"), days=days)
    start_processes(world, None)
    try:
        world.env.run(until=world.horizon_s)
    finally:
        close_world(world)
    assert not disagreed, f"gathering said 'differs' where the rules did not: {disagreed[:5]}"
    assert said[0] > 50, f"gathering answered for only {said[0]} plans"


@pytest.mark.parametrize(("name", "days"), [("hospital-30day", 0.05), ("station-incidents", 0.3)])
def test_fast_quiet_says_no_fast_tick_differs_only_where_the_rules_agree(
    name: str, days: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`supervision.fast_quiet` lets a plan skip the search of the fast ticks: wherever it says
    "quiet", the rules without the slow readings must give no difference at the next tick, a
    second later, past the left-open limit, or a day later."""
    said, disagreed = [0], []
    fast_quiet = Supervisor._fast_quiet

    def checked(self: Supervisor) -> bool:
        result = fast_quiet(self)
        if result:
            said[0] += 1
            k = self.tick_at_or_after(self.env.now)
            for later in (1, 10, 1_300, 864_000):
                if self._differs(k + later, False):
                    disagreed.append((self.station.id, self.env.now, later))
        return result

    monkeypatch.setattr(Supervisor, "_fast_quiet", checked)
    world = build_world(load_scenario(SCENARIOS / f"{name}.toml"), days=days)
    start_processes(world, None)
    try:
        world.env.run(until=world.horizon_s)
    finally:
        close_world(world)
    assert not disagreed, f"fast_quiet said 'quiet' where the rules did not: {disagreed[:5]}"
    assert said[0] > 50, f"fast_quiet answered for only {said[0]} plans"


@pytest.mark.parametrize(
    ("name", "days"),
    [("hospital-30day", 0.05), ("station-incidents", 0.3), ("fault-storm", 0.2)],
)
def test_slow_quiet_says_no_tick_differs_only_where_the_rules_agree(
    name: str, days: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`supervision.slow_quiet` lets a plan sleep until a reading changes without running the
    rules: wherever it says "quiet", the rules with and without the slow readings must give no
    difference at the next tick, the next slow ticks, past every timed limit, or a day later."""
    said, disagreed = [0], []
    slow_quiet = Supervisor._slow_quiet

    def checked(self: Supervisor) -> bool:
        result = slow_quiet(self)
        if result:
            said[0] += 1
            k = self.tick_at_or_after(self.env.now)
            e = self.slow_every
            for later in (1, e, 2 * e, 40 * e, 1_300 * e, 86_400 * e):
                for weights in (True, False):
                    if self._differs(k + later, weights):
                        disagreed.append((self.station.id, self.env.now, later, weights))
        return result

    monkeypatch.setattr(Supervisor, "_slow_quiet", checked)
    world = build_world(load_scenario(SCENARIOS / f"{name}.toml"), days=days)
    start_processes(world, None)
    try:
        world.env.run(until=world.horizon_s)
    finally:
        close_world(world)
    assert not disagreed, f"slow_quiet said 'quiet' where the rules did not: {disagreed[:5]}"
    assert said[0] > 20, f"slow_quiet answered for only {said[0]} plans"
