"""The scenario watch's shortcuts (issue 17 item 1) give what running the rules gives.

`supervision.gathering` tells a planning watch, without running the rules, that the next slow
tick differs (a scale's window takes one more reading there); `fast_quiet`, that no later fast
tick differs; `slow_quiet`, that no later tick differs at all. Every time one says so during
real scenario runs, the rules themselves (`Supervisor._differs`) must agree; and it must say so
often (else it saves nothing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adc.scenario import load_scenario
from adc.scenario.runner import build_world, close_world, start_processes
from adc.scenario.supervise import Supervisor
from tests.scenarios.conftest import SCENARIOS


def _checked_run(
    name: str,
    days: float,
    monkeypatch: pytest.MonkeyPatch,
    shortcut: str,
    disagreements: Callable[[Supervisor, int], list[tuple[object, ...]]],
) -> tuple[int, list[tuple[object, ...]]]:
    """Run the scenario with `Supervisor.<shortcut>` watched: each time it answers True, the
    rules are asked about the ticks after tick k (`disagreements(watch, k)` lists where they
    differ from what the shortcut claimed). (times it said True, every disagreement)."""
    said, disagreed = [0], []
    original = getattr(Supervisor, shortcut)

    def checked(self: Supervisor) -> bool:
        result = original(self)
        if result:
            said[0] += 1
            disagreed.extend(disagreements(self, self.tick_at_or_after(self.env.now)))
        return result

    monkeypatch.setattr(Supervisor, shortcut, checked)
    world = build_world(load_scenario(SCENARIOS / f"{name}.toml"), days=days)
    start_processes(world, None)
    try:
        world.env.run(until=world.horizon_s)
    finally:
        close_world(world)
    return said[0], disagreed


@pytest.mark.parametrize(("name", "days"), [("hospital-30day", 0.05), ("station-incidents", 0.3)])
def test_gathering_says_differs_only_where_the_rules_do(
    name: str, days: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    def at_next_slow_tick(watch: Supervisor, k: int) -> list[tuple[object, ...]]:
        nxt = (k // watch.slow_every + 1) * watch.slow_every
        return [] if watch._differs(nxt, True) else [(watch.station.id, watch.env.now)]

    said, disagreed = _checked_run(name, days, monkeypatch, "_gathering", at_next_slow_tick)
    assert not disagreed, f"gathering said 'differs' where the rules did not: {disagreed[:5]}"
    assert said > 50, f"gathering answered for only {said} plans"


@pytest.mark.parametrize(("name", "days"), [("hospital-30day", 0.05), ("station-incidents", 0.3)])
def test_fast_quiet_says_no_fast_tick_differs_only_where_the_rules_agree(
    name: str, days: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`supervision.fast_quiet` lets a plan skip the search of the fast ticks: wherever it says
    "quiet", the rules without the slow readings must give no difference at the next tick, a
    second later, past the left-open limit, or a day later."""

    def at_later_fast_ticks(watch: Supervisor, k: int) -> list[tuple[object, ...]]:
        return [
            (watch.station.id, watch.env.now, later)
            for later in (1, 10, 1_300, 864_000)
            if watch._differs(k + later, False)
        ]

    said, disagreed = _checked_run(name, days, monkeypatch, "_fast_quiet", at_later_fast_ticks)
    assert not disagreed, f"fast_quiet said 'quiet' where the rules did not: {disagreed[:5]}"
    assert said > 50, f"fast_quiet answered for only {said} plans"


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

    def at_later_ticks(watch: Supervisor, k: int) -> list[tuple[object, ...]]:
        e = watch.slow_every
        return [
            (watch.station.id, watch.env.now, later, weights)
            for later in (1, e, 2 * e, 40 * e, 1_300 * e, 86_400 * e)
            for weights in (True, False)
            if watch._differs(k + later, weights)
        ]

    said, disagreed = _checked_run(name, days, monkeypatch, "_slow_quiet", at_later_ticks)
    assert not disagreed, f"slow_quiet said 'quiet' where the rules did not: {disagreed[:5]}"
    assert said > 20, f"slow_quiet answered for only {said} plans"
