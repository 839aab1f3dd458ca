"""Planted diverters in a scenario: what they leave in the records, and how the diversion report
(run on the database alone) ranks them against the planted truth."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from adc.controller.models import AccessLog, Transaction, User
from adc.errors import BadInput
from adc.scenario import load_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]

WARD = """
spec = "1.0"
name = "diversion-ward"
seed = {seed}
days = {days}
start = 2026-03-09

[[cabinets]]
id = "W1"
profile = "tcp-6drawer"
stock = [
  {{ pocket = "D3-P1", item = "00304091890015", par = 10, critical_low = 2, max = 15, demand_per_day = 8 }},
  {{ pocket = "D3-P2", item = "00304091283312", par = 8, critical_low = 2, max = 12, demand_per_day = 6 }},
  {{ pocket = "D3-P3", item = "00304099093326", par = 8, critical_low = 2, max = 12, demand_per_day = 5 }},
  {{ pocket = "D4-P1", item = "00306416044011", par = 8, critical_low = 2, max = 12, demand_per_day = 5 }},
  {{ pocket = "D4-P2", item = "00304092305174", par = 8, critical_low = 2, max = 12, demand_per_day = 5 }},
  {{ pocket = "D6-P1", item = "00304060552623", par = 20, critical_low = 4, max = 30, demand_per_day = 9 }},
]

[nurses]
per_cabinet = 8

[errors]
miscount = {{ matrix = 0.01, lidded = 0.01 }}
{diverters}
"""


def _diverter(nurse: str, style: str, per_day: float) -> str:
    return f'\n[[diverters]]\nnurse = "{nurse}"\nstyle = "{style}"\nper_day = {per_day}\n'


def _scenario(tmp_path: Path, days: float, *diverters: str, seed: int = 1) -> Path:
    path = tmp_path / "ward.toml"
    path.write_text(WARD.format(seed=seed, days=days, diverters="".join(diverters)))
    return path


def test_the_report_ranks_the_planted_diverters(tmp_path: Path) -> None:
    """Seed 1, 7 days, 8 nurses, measured: the over-waster (9 diversions) rank 1 from day 1,
    score 5.8, flagged; the extra-unit taker (2 diversions) rank 2 from day 6, score 1.1, not
    flagged; no honest nurse flagged. The test asserts what the issue asks (the over-waster
    first, flagged), the rest loosely (the taker in the top 3)."""
    path = _scenario(
        tmp_path,
        7,
        _diverter("nurse.w1.3", "over-waste", 1.0),
        _diverter("nurse.w1.6", "extra-unit", 1.0),
    )
    result = run_scenario(load_scenario(path))
    found = result.kpis["diversion"]
    by_nurse = {d["nurse"]: d for d in found["diverters"]}
    waster, taker = by_nurse["nurse.w1.3"], by_nurse["nurse.w1.6"]
    truth = [e for e in result.world.events if e["event"] == "diversion"]
    assert waster["diversions"] == sum(e["nurse"] == "nurse.w1.3" for e in truth) > 0
    assert taker["diversions"] == sum(e["nurse"] == "nurse.w1.6" for e in truth) > 0
    assert waster["rank"] == 1 and waster["flagged"]
    assert "waste_share" in waster["top_signals"]
    assert waster["first_day_in_top_k"] is not None
    assert taker["rank"] <= found["top_k"]
    assert "discrepancies_after_access" in taker["top_signals"]
    assert found["honest_flagged"] == len(found["honest_flagged_users"])
    flagged = found["honest_flagged"] + sum(d["flagged"] for d in found["diverters"])
    assert found["recall"] == sum(d["flagged"] for d in found["diverters"]) / 2
    assert found["precision"] == round(sum(d["flagged"] for d in found["diverters"]) / flagged, 3)


def test_each_style_leaves_its_own_records(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        2,
        _diverter("nurse.w1.2", "null-access", 4.0),
        _diverter("nurse.w1.4", "late-waste", 4.0),
        _diverter("nurse.w1.5", "shift-end", 4.0),
    )
    result = run_scenario(load_scenario(path))
    world = result.world
    done = {
        n: sum(e["event"] == "diversion" and e["nurse"] == n for e in world.events)
        for n in ("nurse.w1.2", "nurse.w1.4", "nurse.w1.5")
    }
    assert all(done.values()), done
    with world.ctl.read() as s:
        ids = dict(s.execute(select(User.username, User.id)).all())
        null = (
            s.execute(
                select(AccessLog).where(
                    AccessLog.user_id == ids["nurse.w1.2"], AccessLog.outcome == "closed"
                )
            )
            .scalars()
            .all()
        )
        wastes = (
            s.execute(
                select(Transaction).where(
                    Transaction.kind == "waste", Transaction.user_id == ids["nurse.w1.4"]
                )
            )
            .scalars()
            .all()
        )
        removals = {
            t.id: t
            for t in s.execute(select(Transaction).where(Transaction.kind == "remove")).scalars()
        }
        ends = [  # 5 to 55 minutes before 07:00 or 19:00 (the scenario's zone is UTC)
            t for t in removals.values() if t.user_id == ids["nurse.w1.5"] and t.at.hour in (6, 18)
        ]
    assert len(null) >= done["nurse.w1.2"]  # an access opened, one unit out, nothing recorded
    late = [w for w in wastes if w.at - removals[w.related_id].at >= timedelta(minutes=90)]  # type: ignore[index]
    # a waste scheduled after the scenario's end is never recorded
    assert 0 < len(late) == len(wastes) <= done["nurse.w1.4"]
    assert len(ends) >= done["nurse.w1.5"]


def test_an_unknown_diverter_is_bad_input(tmp_path: Path) -> None:
    path = _scenario(tmp_path, 1, _diverter("nurse.w9.1", "over-waste", 1.0))
    with pytest.raises(BadInput, match=re.escape("no nurse 'nurse.w9.1'")):
        run_scenario(load_scenario(path))


def test_the_analytics_never_read_the_simulation() -> None:
    """The detector runs on the database only: no controller diversion module imports the
    scenario (where the planted truth lives) or the simulator."""
    for path in (ROOT / "adc" / "controller").glob("diversion*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("adc.scenario", "adc.sim")), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(("adc.scenario", "adc.sim")) for a in node.names)
