"""Per-cabinet and cold-chain KPIs (issue 20 item 10)."""

from __future__ import annotations

import pytest

from adc.scenario import load_scenario, run_scenario
from tests.scenarios.conftest import SCENARIOS


@pytest.fixture(scope="module")
def kpis() -> dict:  # type: ignore[type-arg]
    return run_scenario(load_scenario(SCENARIOS / "cs-miscounts.toml"), days=8).kpis


def test_each_cabinet_has_its_share_of_the_site_kpis(kpis: dict) -> None:  # type: ignore[type-arg]
    cabinets = kpis["by_cabinet"]
    assert sorted(cabinets) == ["CS1", "W2"] and len(cabinets) == kpis["cabinets"]
    assert sum(c["removals"] for c in cabinets.values()) == kpis["removals"]["recorded"]
    assert sum(c["removals_refused"] for c in cabinets.values()) == kpis["removals"]["refused"]
    assert sum(c["stock_outs"] for c in cabinets.values()) == kpis["stock_outs"]["total"]
    assert sum(c["pockets"] for c in cabinets.values()) == kpis["pockets"]
    opened = kpis["discrepancies"]["total_opened"]
    assert sum(c["discrepancies_opened"] for c in cabinets.values()) == opened


def test_the_fridge_leaves_its_range_as_the_profile_drifts_it(kpis: dict) -> None:  # type: ignore[type-arg]
    # cs-small: 4.5 °C at the start of the run, +0.02 °C/h: above 8 °C after 175 h
    fridge = kpis["cold_chain"]["CS1/F-1"]
    assert 4.5 < fridge["min_c"] < 4.6 and 8.0 < fridge["max_c"] < 8.5
    start_h = (fridge["min_c"] - 4.5) / 0.02  # day 0 begins after the go-live
    end_h = start_h + 8 * 24
    assert fridge["hours_outside_2_8_c"] == pytest.approx(end_h - 175, abs=0.3)
