"""Scenario tests: shipped scenarios (shortened with `days`) and small ones written per test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

WARD_STOCK = """
[[cabinets]]
id = "W1"
profile = "tcp-6drawer"
stock = [
  { pocket = "D1-P1", item = "00304094755038", par = 12, critical_low = 3, max = 20, demand_per_day = DEMAND },
  { pocket = "D2-P1", item = "00363323047016", par = 10, critical_low = 2, max = 16, demand_per_day = DEMAND },
  { pocket = "D3-P1", item = "00304091890015", par = 10, critical_low = 2, max = 15, demand_per_day = DEMAND },
  { pocket = "D5-P1", item = "00304092305174", par = 1, critical_low = 0, max = 1, demand_per_day = DEMAND },
  { pocket = "D6-P1", item = "00300080841815", par = 20, critical_low = 4, max = 30, demand_per_day = DEMAND },
]
"""


@pytest.fixture
def write_scenario(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a scenario file from a header and body; `DEMAND` in the body is replaced."""

    def write(body: str, *, name: str = "t", demand: float = 6.0, days: float = 1) -> Path:
        text = f'spec = "1.0"\nname = "{name}"\nseed = 1\ndays = {days}\n' + body.replace(
            "DEMAND", str(demand)
        )
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
