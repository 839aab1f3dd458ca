"""sensors finds and names each load-cell fault, and compares implied counts with on-hand."""

from __future__ import annotations

import pytest

from adc.diag.results import Verdict
from adc.diag.sensors import sensors, targets
from adc.profiles import load_profile, resolve_profile_path
from tests.diag.conftest import Open, bench

UNIT_G = 2.0  # the shipped profiles' simulated item weight


def run(rig, pockets, **kw):  # type: ignore[no-untyped-def]
    chosen = targets(rig.profile, pockets)
    for target in chosen:
        target.unit_weight_g = UNIT_G
    return {
        c.subject.removeprefix("sensor of "): c for c in sensors(bench(rig), chosen, **kw).checks
    }


def test_each_load_cell_fault_is_found_and_named(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        cabinet = rig.cabinet
        cabinet.sim_inject_fault("loadcell_drift", "lc1:ch.0")  # 10 g/h: too slow to measure
        cabinet.sim_inject_fault("loadcell_drift", "lc1:ch.1", rate_g_per_h=3600)
        cabinet.sim_inject_fault("loadcell_noisy", "lc1:ch.2")
        cabinet.sim_inject_fault("loadcell_stuck", "lc1:ch.3")
        cabinet.sim_inject_fault("loadcell_offline", "lc1:ch.4")
        got = run(rig, ["D1-P1", "D1-P2", "D1-P3", "D1-P4", "D2-P1", "D2-P2"])
    assert got["D1-P1"].flags == ["drifting"] and "unstable in every read" in got["D1-P1"].reason
    assert got["D1-P2"].flags == ["drifting"] and "creeps +" in got["D1-P2"].reason
    assert 2000 < got["D1-P2"].data["drift_g_per_h"] < 5000  # 3600 g/h, through noise
    assert "noisy" in got["D1-P3"].flags
    assert got["D1-P4"].flags == ["stuck"] and got["D1-P4"].data["spread_g"] == 0.0
    assert got["D2-P1"].flags == ["offline"] and "disconnected" in got["D2-P1"].reason
    healthy = got["D2-P2"]
    assert healthy.verdict is Verdict.PASS, healthy.reason
    assert healthy.data["sigma_g"] < 1.0


def test_an_offline_module_is_reported_and_the_others_still_read(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        rig.cabinet.sim_inject_fault("device_offline", "lc2")
        got = run(rig, ["D1-P1", "D3-P1"], samples=3)
    assert got["D3-P1"].flags == ["offline"] and "lc2" in got["D3-P1"].reason
    assert got["D1-P1"].verdict is Verdict.PASS


def test_implied_count_is_compared_with_on_hand(tier: Open) -> None:
    from adc.diag.service import LoadcellCommand

    with tier("tcp-6drawer") as rig:
        b, cabinet = bench(rig), rig.cabinet
        chosen = targets(rig.profile, ["D1-P1", "D1-P2"])
        for target in chosen:  # the database's view: what the pocket held at its last count
            target.unit_weight_g, target.on_hand = UNIT_G, len(cabinet.units(target.pocket))
        # an implied count needs a cell tared empty: open D1, empty, tare, put the items back
        rig.driver.pulse("dio1:coil.0")
        rig.advance(0.05)
        assert cabinet.sim_open("D1")
        for target in chosen:
            taken = cabinet.sim_take(target.pocket, len(cabinet.units(target.pocket)))
            rig.advance(0.5)
            b.service.loadcell_command(target.point, LoadcellCommand.TARE)
            cabinet.sim_add(target.pocket, len(taken))
        cabinet.sim_take("D1-P2", 1)  # one went missing since the count
        cabinet.sim_close("D1")
        rig.advance(1.0)
        got = {c.subject: c for c in sensors(b, chosen, samples=5).checks}
    good, short = got["sensor of D1-P1"], got["sensor of D1-P2"]
    assert good.verdict is Verdict.PASS, good.reason
    assert good.data["implied_count"] == good.data["on_hand"] == 10
    assert short.flags == ["count"]
    assert short.data["implied_count"] == short.data["on_hand"] - 1
    assert "implies 9 units, the database holds 10" in short.reason


def test_presence_sensors_are_sampled(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        chosen = targets(rig.profile, ["D5-P1", "D5-P2"])
        chosen[0].on_hand, chosen[1].on_hand = 1, 0  # the cubies hold one each in the sim
        got = {c.subject: c for c in sensors(bench(rig), chosen, samples=3).checks}
    assert got["sensor of D5-P1"].verdict is Verdict.PASS
    assert got["sensor of D5-P2"].flags == ["count"]


def test_unknown_pocket_is_bad_input(tier: Open) -> None:
    from adc.errors import BadInput

    with tier("tcp-6drawer") as rig, pytest.raises(BadInput, match="no sensed pocket D9"):
        targets(rig.profile, ["D9"])


def test_healthy_cells_are_not_called_drifting() -> None:
    """The drift test must not cry wolf: every healthy cell of a cabinet, in several windows."""
    from tests.contract.rigs import sim_rig

    with sim_rig(load_profile(resolve_profile_path("rs485-2bus")), 11) as rig:
        chosen = targets(rig.profile)
        flagged = []
        for _ in range(5):
            flagged += [c.subject for c in sensors(bench(rig), chosen).checks if c.flags]
            rig.advance(60)
    assert len(chosen) == 16 and flagged == []
