"""calibrate: tare written to the module's command register, unit weight measured by a known count."""

from __future__ import annotations

import pytest

from adc.diag.calibrate import Settings, calibrate
from adc.diag.person import NoPerson
from adc.diag.results import Verdict
from adc.diag.service import LoadcellCommand
from adc.errors import BadInput, Refused
from tests.diag.conftest import Open, bench


def test_tare_and_unit_weight(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        cabinet = rig.cabinet
        before = len(cabinet.units("D2-P3"))
        report = calibrate(bench(rig), "D2-P3", known_count=4)
        # the module holds the command it was given last (save, after the tare), and kept it
        command = cabinet.device("lc1").read_registers("holding", 6, 1)[0]
        after = len(cabinet.units("D2-P3"))
        empty_after = rig.driver.weight("lc1:ch.6")
    result = report.checks[-1]
    assert result.verdict is Verdict.PASS, result.reason
    assert command == LoadcellCommand.SAVE
    assert after == before  # everything went back in
    assert result.data["unit_weight_g"] == pytest.approx(2.0, abs=0.15)
    assert result.data["final_count"] == before
    # tared with the pocket empty: the cell now weighs only the items
    assert empty_after.grams == pytest.approx(2.0 * before, abs=1.0)
    # the way in was checked like a selftest: drawer D2 and the lid of D2-P3, nothing else
    assert [c.point for c in report.checks[:-1]] == [
        "lb0:lock.1",
        "dio1:di.1",
        "lb0:lock.6",
        "lb0:input.6",
    ]


def test_zero_without_a_known_count(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        report = calibrate(
            bench(rig), "D1-P1", settings=Settings(command=LoadcellCommand.ZERO, save=False)
        )
        command = rig.cabinet.device("lc1").read_registers("holding", 0, 1)[0]
    assert report.ok and command == LoadcellCommand.ZERO
    assert "unit_weight_g" not in report.data


def test_a_disconnected_cell_fails_and_the_stock_goes_back(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        rig.cabinet.sim_inject_fault("loadcell_offline", "lc1:ch.1")
        before = len(rig.cabinet.units("D1-P2"))
        report = calibrate(bench(rig), "D1-P2", known_count=3)
        after = len(rig.cabinet.units("D1-P2"))
    result = report.checks[-1]
    assert result.verdict is Verdict.FAIL and "disconnected or stuck" in result.reason
    assert after == before


def test_refusals_and_bad_input(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        with pytest.raises(BadInput, match="needs someone at the cabinet"):
            calibrate(bench(rig, NoPerson()), "D1-P1")
        with pytest.raises(BadInput, match="no load cell"):
            calibrate(bench(rig), "D6-P1")
        with pytest.raises(BadInput, match="no pocket"):
            calibrate(bench(rig), "Z9")
        with pytest.raises(Refused, match="witness"):
            calibrate(bench(rig), "D1-P1", refuse=lambda lock: "needs a witness")
