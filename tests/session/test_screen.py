"""The terminal frame with a long refill list, and simulated time that follows the wall clock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.console import Console

from adc.controller.restock import begin_restock
from adc.session.hands import NoHands
from adc.session.runner import BoardRow, Runner
from adc.session.terminal import Screen
from adc.session.timing import FollowWallClock, SessionClock
from adc.waiting import SteppedTime
from tests.contract.rigs import sim_rig
from tests.controller.site import fast_pins
from tests.session.helpers import PROFILE, build_session_site


def test_a_long_refill_list_shows_the_current_and_next_lines_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_pins(monkeypatch)
    site = build_session_site(tmp_path / "adc.db")
    with sim_rig(PROFILE, 1) as rig:
        waiter = SteppedTime(rig.advance, lambda: float(rig.cabinet.env.now))
        session = begin_restock(site.site.ctl, rig.driver, "W1", site.site.tech)
        runner = Runner(session, waiter, NoHands(), lambda event: None, "sim:")
        runner.board = [
            BoardRow(f"P{i:02}", "D1", f"item {i}", 0, 5, 5, True, None) for i in range(40)
        ]
        for row in runner.board[:12]:
            row.status, row.result = "done", "+5 → 5"
        runner.board[12].status = "current"
        console = Console(width=100, height=30, record=True, color_system=None)
        Screen(runner, console, clear=False).draw("Scan a pack")
    text = console.export_text()
    shown = [f"P{i:02}" for i in range(40) if f"P{i:02} " in text]
    assert "P11" in shown and "P12" in shown  # the last finished line and the current one
    assert "P10" not in shown and "P39" not in shown
    assert "11 more finished" in text
    hidden = 40 - 12 - (len(shown) - 1)
    assert f"… {hidden} more to do" in text
    assert len(text.splitlines()) <= 30  # fits the terminal
    assert "12 of 40 lines done" in text
    site.site.ctl.db.close()


def test_follow_wall_clock_advances_the_simulation_by_the_real_time_passed() -> None:
    advanced: list[float] = []
    sim_now = [0.0]

    def advance(seconds: float) -> None:
        advanced.append(seconds)
        sim_now[0] += seconds

    waiter = FollowWallClock(SteppedTime(advance, lambda: sim_now[0]))
    clock = SessionClock(waiter)
    start = clock.now()
    time.sleep(0.05)
    assert advanced == []  # reading the time moves nothing
    assert waiter.now() >= 0.05
    waiter.sleep(0.05)
    assert 0.1 <= sum(advanced) < 1.0 and sim_now[0] == sum(advanced)
    assert (clock.now() - start).total_seconds() == pytest.approx(waiter.now(), abs=0.05)
