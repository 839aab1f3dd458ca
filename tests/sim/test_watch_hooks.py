"""What a watch on simulated time needs from the virtual cabinet (issue 15 item 6, issue 17 item 1):
a call after every change a reading can show, the next instant a reading changes by itself, and
the incidents a scenario scripts (a forced opening, packs taken unseen, a fridge that fails)."""

from __future__ import annotations

import pytest

from adc.sim.cabinet import VirtualCabinet
from adc.sim.errors import SimInputError


def _counting(cabinet: VirtualCabinet) -> list[float]:
    seen: list[float] = []
    cabinet.on_change = lambda: seen.append(cabinet.now)
    return seen


def test_each_change_a_reading_can_show_is_announced(tcp: VirtualCabinet) -> None:
    seen = _counting(tcp)
    assert tcp.sim_force_open("D1")
    assert len(seen) == 1 and tcp.is_open("D1")
    tcp.sim_take("D1-P1", 2)
    assert len(seen) == 2
    tcp.sim_add("D1-P1", 1)
    tcp.sim_close("D1")
    assert len(seen) == 4
    tcp.sim_close("D1")  # already shut: nothing a reading could show
    assert len(seen) == 4
    tcp.sim_inject_fault("power_loss", duration_s=30)
    assert len(seen) == 5
    tcp.run(31)
    assert len(seen) == 6, "power back is a change (devices answer again)"
    assert seen[-1] == pytest.approx(30.0)


def test_a_forced_drawer_latches_again_once_shut(tcp: VirtualCabinet) -> None:
    assert tcp.lock_holding("dio1:coil.0")
    assert tcp.sim_force_open("D1")
    tcp.sim_close("D1")
    assert not tcp.sim_open("D1"), "the latch must hold again after a forced opening"
    assert not tcp.sim_force_open("D3-P1"), "a lid inside a shut drawer cannot be reached"


def test_packs_taken_unseen_move_only_the_scale(tcp: VirtualCabinet) -> None:
    before = len(tcp.units("D2-P1"))
    assert tcp.sim_take_unseen("D2-P1", 2) == [2.0, 2.0]
    assert len(tcp.units("D2-P1")) == before - 2
    assert not tcp.is_open("D2")
    with pytest.raises(SimInputError, match="cannot take 99"):
        tcp.sim_take_unseen("D2-P1", 99)


def test_next_change_is_the_end_of_settling(tcp: VirtualCabinet) -> None:
    assert tcp.next_change(tcp.now) is None, "nothing moves by itself at rest"
    tcp.run(5)
    tcp.sim_take_unseen("D2-P1", 1)
    settle = tcp.profile.sim.settle_ms / 1000
    at = tcp.next_change(tcp.now)
    assert at == pytest.approx(5 + settle)
    tcp.run(settle / 2)
    assert tcp.next_change(tcp.now) == pytest.approx(5 + settle)
    tcp.run(settle)
    assert tcp.next_change(tcp.now) is None


def test_a_failed_fridge_warms_until_repaired(cs: VirtualCabinet) -> None:
    probe = "dio1:ai.0"
    start = cs.device("dio1").read_registers("input", 0, 1)[0] / 10  # type: ignore[union-attr]
    cs.sim_inject_fault("fridge_failure", probe, rate_c_per_h=6.0)
    first = cs.next_change(cs.now)
    assert first is not None and 0 < first < 120, "the next 0.1 °C step comes within a minute"
    cs.run(3600)
    warm = cs.device("dio1").read_registers("input", 0, 1)[0] / 10  # type: ignore[union-attr]
    assert warm == pytest.approx(start + 6.0, abs=0.2)
    cs.run(5 * 3600)
    room = cs.device("dio1").read_registers("input", 0, 1)[0] / 10  # type: ignore[union-attr]
    assert room == pytest.approx(22.0, abs=0.1), "it stops at the room's temperature"
    assert cs.next_change(cs.now) is None or cs.next_change(cs.now) > cs.now + 3600
    cs.sim_clear_fault("fridge_failure", probe)
    cold = cs.device("dio1").read_registers("input", 0, 1)[0] / 10  # type: ignore[union-attr]
    assert cold < 8.0
    with pytest.raises(SimInputError, match="temperature"):
        cs.sim_inject_fault("fridge_failure", "dio1:di.0")
