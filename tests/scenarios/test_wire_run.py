"""`adc sim run --wire`: the same scenario through the real Modbus and lock-board drivers against
the emulators (adc/scenario/wire.py) gives the same run as the in-process driver.

Time stays SimPy time and a driver call blocks the simulation until the emulator has answered, so
where every request is answered (no bus noise, no device off the bus) the two tiers make the same
draws in the same order and `kpis.json` is byte-identical. Where answers are lost or corrupted they
differ by design (docs/test-engineer-guide.md, `--wire`); those faults are left out here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adc.drivers.buses import WireDriver
from adc.scenario import load_scenario, run_scenario
from adc.scenario.kpis import kpis_json
from tests.scenarios.conftest import ROOT, SCENARIOS

SOAK = Path(__file__).with_name("wire-soak.toml")  # lock boards on a pty + Modbus TCP, faults


def _frames(driver: WireDriver) -> dict[str, int]:
    """Requests each device of the profile got over the wire."""
    return {
        name: health.requests
        for part in driver.parts
        for client in part.clients.values()  # type: ignore[attr-defined]
        for name, health in client.health.items()
    }


@pytest.mark.parametrize(
    ("scenario", "days"), [(SCENARIOS / "ward-7day.toml", 0.25), (SOAK, None)], ids=["ward", "soak"]
)
def test_a_wire_run_gives_the_in_process_run_kpis(scenario: Path, days: float | None) -> None:
    loaded = load_scenario(scenario)
    wired = run_scenario(loaded, days=days, wire=True)
    in_process = run_scenario(loaded, days=days)
    kpis = wired.kpis
    assert kpis["audit"]["verified"] and kpis["audit"]["entries"] > kpis["transactions_total"]
    assert kpis["transactions"]["load"] == kpis["pockets"]
    assert kpis["transactions"]["remove"] > 0 and kpis["removals"]["recorded"] > 0
    assert kpis_json(kpis) == kpis_json(in_process.kpis)
    assert wired.world.events == in_process.world.events
    for station in wired.world.stations.values():  # it did go over the wire, to every device
        driver = station.watch.driver  # the controller's calls reach it through WatchedDriver
        assert isinstance(driver, WireDriver)
        frames = _frames(driver)
        assert set(frames) == set(station.profile.devices)
        assert all(count > 0 for count in frames.values()), frames


def test_the_soak_scenario_exercises_faults_over_the_wire() -> None:
    kpis = run_scenario(load_scenario(SOAK), wire=True).kpis
    assert kpis["faults"]["total_injected"] == 4
    assert kpis["faults"]["detected"] == kpis["faults"]["injected"]
    assert kpis["faults"]["recoveries"] >= 1  # a drawer failed and was recovered over the wire
    assert kpis["transactions"]["refill"] >= 1


def test_cli_wire_writes_the_same_kpis_as_the_in_process_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "adc", "sim", "run", str(SOAK), "--wire", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}, timeout=120,
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "audit chain" in done.stdout and "verified" in done.stdout
    expected = kpis_json(run_scenario(load_scenario(SOAK)).kpis)
    assert (out / "kpis.json").read_text(encoding="utf-8") == expected
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "fault_detected" for e in events) == 4


def test_cli_wire_refuses_a_used_database_before_serving_anything(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'used.db'}"
    base = [sys.executable, "-m", "adc", "sim", "run", str(SOAK), "--days", "0.01", "--db", db]
    first = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([*base, "--wire"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert again.stderr.startswith("error: database") and "not empty" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_wire_run_that_fails_to_start_stops_the_emulators_it_started(tmp_path: Path) -> None:
    """A bad resolver is found after the stations (and their emulators) are up: the failed start
    closes them, so no emulator thread or pty outlives it."""
    import threading

    from adc.errors import BadInput

    path = tmp_path / "bad-resolver.toml"
    path.write_text(SOAK.read_text() + '\n[pharmacists]\nresolver = "no.such.module:resolve"\n')
    loaded = load_scenario(path)
    before = set(threading.enumerate())
    with pytest.raises(BadInput, match=r"pharmacists\.resolver 'no\.such\.module:resolve'"):
        run_scenario(loaded, wire=True)
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in left:
        thread.join(2)
    assert [t.name for t in left if t.is_alive()] == []
