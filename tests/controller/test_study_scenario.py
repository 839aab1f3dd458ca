"""A study pocket with enrolled subjects in a scenario run (adc/scenario/study.py): the doses go
through the controller's withdrawal with subject ids, held doses go back to the pharmacy, and at
the end the accountability record's balance equals on-hand for every lot."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from adc.controller.models import AuditEntry
from adc.controller.study_tables import StudyDispense
from adc.errors import BadInput
from adc.scenario import load_scenario, run_scenario
from adc.scenario.runner import build_world, close_world, start_processes
from adc.scenario.study import StudySpec, start, study_kpis

ROOT = Path(__file__).resolve().parents[2]


def test_a_study_pocket_reconciles_at_the_end_of_a_run(tmp_path: Path) -> None:
    loaded = load_scenario(ROOT / "scenarios" / "ward-7day.toml")
    world = build_world(loaded, days=2, db_url=f"sqlite:///{tmp_path / 'run.db'}")
    spec = StudySpec(pocket="D4-P2", subjects=4, doses_per_day=2, stock=12, return_rate=0.3)
    try:
        start_processes(world, None)
        start(world, spec)
        world.env.run(until=world.horizon_s)
        kpis = study_kpis(world, spec)
        with world.ctl.read() as session:
            subjects = set(session.execute(select(StudyDispense.subject)).scalars())
            refusals = session.execute(
                select(func.count()).where(AuditEntry.action == "study.refused")
            ).scalar_one()
    finally:
        close_world(world)
    assert kpis["balance_equals_on_hand_every_lot"], kpis
    assert kpis["dispenses"] == 2 * 4 * 2 and kpis["refused"] == 0, kpis  # 2 days x 4 x 2 doses
    assert kpis["rows"]["dispense"] >= kpis["dispenses"]  # a dose may span two lots
    assert kpis["rows"].get("return to pharmacy", 0) == kpis["returns"] > 0
    assert kpis["rows"]["receipt"] >= 2  # the load, then a refill the next morning
    assert subjects == {f"001-{n:04d}" for n in range(1, 5)}
    assert refusals == 0  # the technicians' lists leave the study pocket out: nothing refused


def test_a_scenario_file_names_the_study_and_its_kpi_says_it_reconciles(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "ward-7day.toml").read_text()
    path = tmp_path / "ward-study.toml"
    path.write_text(
        text.replace("days = 7", "days = 1")
        + '\n[study]\nprotocol = "NCI-SIM-7"\npocket = "D4-P2"\nsubjects = 3\nstock = 8\n'
    )
    result = run_scenario(load_scenario(path), db_url=f"sqlite:///{tmp_path / 'run.db'}")
    kpis = result.kpis["study"]
    assert kpis["protocol"] == "NCI-SIM-7" and kpis["balance_equals_on_hand_every_lot"]
    assert kpis["dispenses"] == 3 and kpis["rows"]["receipt"] == 1, kpis
    bad = tmp_path / "bad.toml"
    bad.write_text(text + '\n[study]\npocket = "D4-P2"\nsubjcts = 3\n')
    with pytest.raises(BadInput) as err:
        load_scenario(bad)
    assert any("study" in line and "subjcts" in line for line in err.value.details), (
        err.value.details
    )
