"""Tables at 80 columns and in pipes (issue 20 item 7): names are never cut, long texts wrap,
a message that is the same for every row is said once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adc.scenario import load_scenario, run_scenario
from adc.scenario.kpis import kpi_rows
from tests.conftest import ROOT

NARROW = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}


def _adc(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adc", *args],
        cwd=ROOT,
        env=NARROW,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def delayed_kpis() -> dict:  # type: ignore[type-arg]
    return run_scenario(load_scenario(ROOT / "scenarios" / "restock-delayed.toml")).kpis


def test_the_kpi_table_at_80_columns_keeps_every_name_whole(delayed_kpis: dict) -> None:  # type: ignore[type-arg]
    result = _adc("sim", "run", "scenarios/restock-delayed.toml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in result.stdout  # nothing cut short: long words fold, texts wrap
    for what, _ in kpi_rows(delayed_kpis):
        if what.strip():
            assert any(f"│ {what} " in line for line in lines), what
    # an item's name stays readable (wrapped at spaces in the figure column, not in the KPI one)
    figures = " ".join(line.split("│")[2].strip() for line in lines if line.count("│") == 3)
    assert "Enoxaparin 40 mg/0.4 mL prefilled syringe:" in figures
    assert "adc.controller.discrepancies:resolve" in figures.replace(" ", "")
