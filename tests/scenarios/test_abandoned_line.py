"""A simulated technician whose line cannot be recorded abandons it, as the session's screen
tells a person to: the drawer is flagged for a blind recount, service is called, and the recount
finds the units the abandoned line put in (before, the line was dropped without any record and
the cabinet's stock disagreed with the database unnoticed)."""

from __future__ import annotations

from pathlib import Path

from adc.scenario import load_scenario, run_scenario

# D2's drawer switch sticks reading open just before the 04:41 refill round: the technician
# refills D2-P1, closes it by hand, and the cabinet never sees it close.
SCENARIO = """\
spec = "1.0"
name = "stuck-drawer-switch"
description = "A drawer switch sticks open just before the morning refill"
seed = 3
days = 0.5
start = 2026-03-02
formulary = "demo"

[[cabinets]]
id = "W1"
profile = "tcp-6drawer"
stock = [
  { pocket = "D1-P1", item = "00304094755038", par = 12, critical_low = 3, max = 20, demand_per_day = 30 },
  { pocket = "D2-P1", item = "00363323047016", par = 10, critical_low = 2, max = 16, demand_per_day = 20 },
]

[technicians]
refill_times = ["04:41"]

[service]
respond_min = 30
repair_min = 20

[faults]
scripted = [
  { day = 0, time = "04:40", cabinet = "W1", kind = "switch_stuck", target = "dio1:di.1", params = { active = false } },
]
"""


def test_an_unrecordable_line_is_abandoned_recovered_and_its_units_found(tmp_path: Path) -> None:
    path = tmp_path / "stuck.toml"
    path.write_text(SCENARIO)
    result = run_scenario(load_scenario(path))
    events = result.world.events
    (abandoned,) = [e for e in events if e["event"] == "line_abandoned"]
    assert abandoned["pocket"] == "D2-P1" and abandoned["n"] > 0
    flagged = [e for e in events if e["event"] == "alarm" and "flagged for recount" in e["detail"]]
    assert flagged and flagged[0]["where"] == ["drawer:D2", "pocket:D2-P1"]
    after = [e for e in events if e["t"] >= abandoned["t"]]
    kinds = [e["event"] for e in after]
    assert "fault_repaired" in kinds and "drawer_recovered" in kinds
    (found,) = [e for e in after if e["event"] == "discrepancy_opened"]
    assert found["pocket"] == "D2-P1"  # the recount found what the abandoned line put in
    assert not any(e["event"] == "restock_line" and e["pocket"] == "D2-P1" for e in after)
    assert result.kpis["audit"]["verified"]


def test_the_same_seed_writes_the_same_events_and_records(tmp_path: Path) -> None:
    """A run depends on its seed only: the abandoned line's session id (in the flag's detail and
    the refusals that name it) comes from the seed, not from the host's random source."""
    import json

    from sqlalchemy import select

    from adc.controller.models import Transaction

    path = tmp_path / "stuck.toml"
    path.write_text(SCENARIO)
    runs = [run_scenario(load_scenario(path)) for _ in range(2)]
    texts = [json.dumps(r.world.events, sort_keys=True, default=str) for r in runs]
    assert texts[0] == texts[1]
    ids = []
    for run in runs:
        with run.world.ctl.read() as session:
            found = select(Transaction.session_id).where(
                Transaction.session_id.is_not(None)  # type: ignore[union-attr]
            )
            ids.append(sorted(set(session.execute(found).scalars())))
    assert ids[0] == ids[1] and ids[0]
