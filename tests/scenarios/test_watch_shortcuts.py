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
