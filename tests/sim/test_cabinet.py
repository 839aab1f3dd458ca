"""The physical model: nested doors, the simulated person, timing, faults and their targets."""

from __future__ import annotations

import pytest

from adc.sim.cabinet import VirtualCabinet
from adc.sim.errors import SimInputError
from adc.sim.faults import FaultKind


def _unlock(cabinet: VirtualCabinet, coil: int) -> None:
    cabinet.device("dio1").write_coil(coil, True)  # type: ignore[union-attr]
    cabinet.run(0.1)


def test_latch_releases_only_after_actuation(tcp: VirtualCabinet) -> None:
    tcp.device("dio1").write_coil(0, True)  # type: ignore[union-attr]
    assert not tcp.sim_open("D1"), "opened before the bolt retracted"
    tcp.run(0.039)
    assert not tcp.sim_open("D1")
    tcp.run(0.002)
    assert tcp.sim_open("D1")


def test_lid_needs_its_drawer_open_and_its_own_unlock(tcp: VirtualCabinet) -> None:
    _unlock(tcp, 6)  # D3-P1's lid lock, drawer still shut
    assert not tcp.sim_open("D3-P1")
    tcp.run(3)
    _unlock(tcp, 2)  # drawer D3
    assert tcp.sim_open("D3")
    assert not tcp.sim_open("D3-P1"), "a lid opened without its own unlock"
    with pytest.raises(SimInputError, match="lid D3-P1 is closed"):
        tcp.sim_take("D3-P1")
    _unlock(tcp, 6)
    assert tcp.sim_open("D3-P1")
    assert tcp.sim_take("D3-P1", 2) == [2.0, 2.0]
    tcp.sim_close("D3")  # shuts the open lid first
    assert not tcp.is_open("D3-P1") and not tcp.is_open("D3")
    assert not tcp.lock_holding("dio1:coil.6"), "still inside the lid lock's pulse"
    tcp.run(0.5)
    assert tcp.lock_holding("dio1:coil.6") and tcp.lock_holding("dio1:coil.2")


def test_matrix_pocket_is_reached_through_its_drawer(tcp: VirtualCabinet) -> None:
    with pytest.raises(SimInputError, match="drawer D1 is closed"):
        tcp.sim_take("D1-P1")
    with pytest.raises(SimInputError, match="no door of its own"):
        tcp.sim_open("D1-P1")
    _unlock(tcp, 0)
    tcp.sim_open("D1")
    tcp.sim_add("D1-P2", 2, unit_weight_g=7.25)
    assert tcp.units("D1-P2")[-2:] == [7.25, 7.25]
    with pytest.raises(SimInputError, match="holds 12"):
        tcp.sim_take("D1-P2", 13)
    with pytest.raises(SimInputError, match="of 50"):
        tcp.sim_add("D1-P2", 39)
    with pytest.raises(SimInputError, match="more than 0 g"):
        tcp.sim_add("D1-P2", 1, unit_weight_g=0)
    with pytest.raises(SimInputError, match="no pocket"):
        tcp.sim_take("D9-P9")


def test_return_bin_flap_opens_from_outside(cs: VirtualCabinet) -> None:
    _unlock(cs, 12)  # the return-bin flap, drawer R still locked
    assert cs.sim_open("RB")
    cs.sim_add("RB", 1)
    assert not cs.is_open("R")


def test_scheduled_close_and_leave_open(tcp: VirtualCabinet) -> None:
    _unlock(tcp, 0)
    assert tcp.sim_open("D1", close_after_s=5)
    tcp.run(4.9)
    assert tcp.is_open("D1")
    tcp.run(0.2)
    assert not tcp.is_open("D1") and tcp.lock_holding("dio1:coil.0")

    _unlock(tcp, 1)
    assert tcp.sim_open("D2", close_after_s=5)
    assert tcp.sim_leave_open("D2")
    tcp.run(60)
    assert tcp.is_open("D2"), "a person who walked away still closed the drawer"


def test_timed_power_loss_restores_itself(tcp: VirtualCabinet) -> None:
    tcp.device("dio1").write_coil(20, True)  # type: ignore[union-attr]
    tcp.sim_inject_fault("power_loss", duration_s=3)
    assert [f.kind for f in tcp.active_faults()] == [FaultKind.POWER_LOSS]
    assert not any(d.online for d in tcp.devices.values())
    tcp.run(3.01)
    assert all(d.online for d in tcp.devices.values())
    assert tcp.active_faults() == []
    assert tcp.device("dio1").read_bits("coils", 20, 1) == [False]  # type: ignore[union-attr]


def test_untimed_power_loss_lasts_until_cleared(tcp: VirtualCabinet) -> None:
    tcp.sim_inject_fault("power_loss")
    tcp.run(3600)
    assert not tcp.device("lc1").online
    tcp.sim_clear_fault("power_loss")
    assert tcp.device("lc1").online


def test_a_pulse_cut_by_power_loss_relocks_at_once(tcp: VirtualCabinet) -> None:
    _unlock(tcp, 0)
    assert not tcp.lock_holding("dio1:coil.0")
    tcp.sim_inject_fault("power_loss", duration_s=0.1)
    assert tcp.lock_holding("dio1:coil.0")
    assert not tcp.sim_open("D1")


def test_no_reengage_clears_back_to_normal(tcp: VirtualCabinet) -> None:
    tcp.sim_inject_fault(FaultKind.LOCK_NO_REENGAGE, "dio1:coil.0")
    _unlock(tcp, 0)
    tcp.run(1)
    assert not tcp.lock_holding("dio1:coil.0")
    tcp.sim_clear_fault(FaultKind.LOCK_NO_REENGAGE, "dio1:coil.0")
    assert tcp.lock_holding("dio1:coil.0")


def test_drift_moves_the_reading_at_its_rate(tcp: VirtualCabinet) -> None:
    lc1 = tcp.device("lc1")
    tcp.sim_inject_fault("loadcell_drift", "lc1:ch.1", rate_g_per_h=60.0)
    tcp.run(0.05)
    import struct

    def grams() -> float:
        words = lc1.read_registers("input", 2, 2)  # type: ignore[union-attr]
        return struct.unpack(">f", struct.pack(">HH", *words))[0]

    first = grams()
    tcp.run(1800)
    assert grams() - first == pytest.approx(30.0, abs=2.0)


@pytest.mark.parametrize(
    ("kind", "target", "params", "message"),
    [
        ("melted", None, {}, "unknown fault 'melted'"),
        ("lock_jammed", None, {}, "needs a target: a lock"),
        ("lock_jammed", "dio1:coil.20", {}, "needs a lock point; dio1:coil.20 is not one"),
        ("switch_stuck", "dio1:coil.0", {}, "needs a input point"),
        ("loadcell_stuck", "lc1:ch.99", {}, "needs a channel point"),
        ("device_offline", "lc9", {}, "no device 'lc9'"),
        ("bus_noise", "main", {"probability": 2}, "0..1"),
        ("bus_noise", "main", {"loudness": 2}, "no parameter loudness"),
        ("power_loss", "dio1", {}, "takes no target"),
        ("power_loss", None, {"duration_s": 0}, "must be positive"),
        ("lock_jammed", "garbage", {}, "not a point reference"),
    ],
)
def test_bad_fault_requests_say_what_is_wrong(
    tcp: VirtualCabinet, kind: str, target: str | None, params: dict, message: str
) -> None:
    with pytest.raises(SimInputError, match=message):
        tcp.sim_inject_fault(kind, target, **params)
    assert tcp.active_faults() == []
    assert tcp.devices["dio1"].online


def test_unknown_door_is_named(tcp: VirtualCabinet) -> None:
    with pytest.raises(SimInputError, match="'D9'"):
        tcp.sim_open("D9")


def test_run_refuses_negative_time(tcp: VirtualCabinet) -> None:
    with pytest.raises(ValueError, match="backwards"):
        tcp.run(-1)
    tcp.run(0)
    assert tcp.now == 0
