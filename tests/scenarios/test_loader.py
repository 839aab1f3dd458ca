"""Scenario files are checked like hardware profiles: every problem, with key path and line,
before anything runs (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adc.scenario import ScenarioError, load_scenario
from tests.scenarios.conftest import SCENARIOS, WARD_STOCK

BAD = """spec = "1.0"
name = "bad"
days = -1

[[cabinets]]
id = "W1"
profile = "no-such-profile"

[[cabinets]]
id = "W2"
profile = "tcp-6drawer"
stock = [
  { pocket = "D9-P9", item = "00304094755038", par = 10, critical_low = 2, max = 20 },
  { pocket = "D1-P1", item = "12345678", par = 10, critical_low = 2, max = 20 },
]

[technicians]
refill_times = ["25:00"]

[[faults.scripted]]
day = 0
time = "10:00"
cabinet = "W9"
kind = "lock_jammed"
target = "dio1:coil.0"
"""


def test_every_shipped_scenario_loads() -> None:
    names = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    assert names == [
        "cs-miscounts",
        "diversion-30day",
        "fault-storm",
        "hospital-30day",
        "restock-delayed",
        "station-incidents",
        "ward-7day",
    ]
    for path in SCENARIOS.glob("*.toml"):
        assert load_scenario(path).scenario.name == path.stem


def test_malformed_values_are_all_listed_with_key_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issues = {(str(i).split(": ", 1)[1]) for i in caught.value.issues}
    lines = {i.line for i in caught.value.issues}
    assert any(s.startswith("days: Input should be greater than 0") for s in issues), issues
    assert any(s.startswith("technicians.refill_times[0]:") for s in issues), issues
    assert 3 in lines and 18 in lines
    assert caught.value.exit_code == 2


def test_unknown_profile_pocket_item_and_cabinet_are_all_listed(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD.replace("days = -1", "days = 1").replace('["25:00"]', '["04:45"]'))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = "\n".join(str(i) for i in caught.value.issues)
    assert len(caught.value.issues) == 4, text
    assert f"{path}:7: cabinets[0].profile: profile 'no-such-profile'" in text
    assert (
        f"{path}:13: cabinets[1].stock[0].pocket: profile tcp-6drawer has no pocket 'D9-P9'" in text
    )
    assert f"{path}:14: cabinets[1].stock[1].item: no item '12345678'" in text
    assert f"{path}:23: faults.scripted[0].cabinet: no cabinet 'W9'" in text


def test_a_fault_target_the_cabinet_lacks_is_refused(write_scenario) -> None:  # type: ignore[no-untyped-def]
    path = write_scenario(
        WARD_STOCK
        + '[[faults.scripted]]\nday = 0\ntime = "10:00"\ncabinet = "W1"\n'
        + 'kind = "loadcell_stuck"\ntarget = "dio1:coil.0"\n'
    )
    with pytest.raises(ScenarioError, match="problem") as caught:
        load_scenario(path)
    assert "needs a channel point" in str(caught.value.issues[0])


def test_cli_exits_2_with_every_problem_before_running(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    done = subprocess.run(
        [sys.executable, "-m", "adc", "sim", "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "problem(s) in scenario" in done.stderr
    assert "days: Input should be greater than 0" in done.stderr
    assert "technicians.refill_times[0]: '25:00' is not a time of day" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_a_scenario_error_names_a_scenario_wherever_it_is_shown(tmp_path: Path) -> None:
    """str(err) is what a sweep's failed row and a SimPy re-raise show: it must not say "profile"."""
    from adc.scenario.loader import ScenarioError, load_scenario

    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\nbogus = 1\n')
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    assert str(caught.value) == caught.value.message
    assert "problem(s) in scenario" in str(caught.value)
    assert "hardware profile" not in str(caught.value)
    assert any("bogus" in d or "unknown key" in d for d in caught.value.details)
