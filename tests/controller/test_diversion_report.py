"""The diversion ranking and `adc report diversion`: who ranks first, who may look, what is audited,
the shape of --json and --csv, and bad input.

A ward of six nurses with the same work (two removals a shift, one count each, all in the day
shift); one of them (`n3`) also wastes half of what she removes, late, always before the same
witness. The ranking must put her first, flag her, and name the waste signals and their records.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from pathlib import Path

import pytest
from sqlalchemy import select

from adc.controller.db import open_database
from adc.controller.diversion import DiversionRow, rank_users, review, user_evidence
from adc.controller.diversion_signals import Period
from adc.controller.models import AuditEntry
from adc.errors import BadInput, Refused
from tests.conftest import run_adc
from tests.controller.site import PIN, Site, build_site
from tests.controller.test_diversion_signals import DAY, Records, at

NURSES = ("n1", "n2", "n3", "n4", "n5")
PERIOD = Period(DAY, DAY.replace(day=DAY.day + 3))


def _ward(rec: Records) -> list[int]:
    """Three days of ordinary work for n1..n5; n3 over-wastes. Returns n3's waste records."""
    wastes = []
    for day in range(3):
        for i, nurse in enumerate(NURSES):
            hour = 8 + i
            first = rec.txn("remove", nurse, at(hour, day), -2)
            rec.txn("remove", nurse, at(hour + 3, day), -1)
            rec.txn("count", nurse, at(hour + 0.5, day), 0, expected=5, counted=5)
            if nurse == "n3":
                wastes.append(
                    rec.txn(
                        "waste",
                        nurse,
                        at(hour + 2, day),
                        0,
                        counted=1,
                        related_id=first,
                        witness="w1",
                    )
                )
    return wastes


def _audit(site: Site, action: str) -> list[AuditEntry]:
    with site.ctl.read() as s:
        return list(
            s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars().all()
        )


def test_the_over_waster_ranks_first_with_her_waste_as_the_reason(site: Site) -> None:
    rec = Records(site)
    wastes = _ward(rec)
    scores = rank_users(site.ctl, PERIOD)
    assert scores[0].user == "n3"
    top = scores[0]
    assert top.flagged and top.peers == 5 and top.peer_group == "nurse@W1"
    drivers = {d.signal for d in top.drivers}
    assert {"waste_share", "late_wastes"} <= drivers
    waste_share = next(d for d in top.signals if d.signal == "waste_share")
    assert waste_share.value == pytest.approx(3 / 9)  # 3 units wasted of 9 removed
    assert waste_share.peer_median == 0.0
    assert sorted(e.id for e in waste_share.evidence) == sorted(wastes)
    assert all(not s.flagged and s.score == 0 for s in scores[1:])  # the same work: no outliers


def test_review_is_audited_and_refused_for_nurses_and_technicians(site: Site) -> None:
    rec = Records(site)
    _ward(rec)
    rows = review(site.ctl, site.pharmacist, PERIOD)
    assert rows[0].user == "n3" and rows[0].rank == 1 and rows[0].flagged
    assert "waste_share" in rows[0].top_signals and "txn:" in rows[0].evidence
    seen = _audit(site, "report.diversion")
    assert len(seen) == 1 and seen[0].actor == "pharmacist"
    assert json.loads(seen[0].payload)["flagged"] == ["n3"]
    for who in (site.nurse, site.tech):
        with pytest.raises(Refused, match="not allowed"):
            review(site.ctl, who, PERIOD)
        with pytest.raises(Refused, match="not allowed"):
            user_evidence(site.ctl, who, PERIOD, "n3")
    refused = _audit(site, "report.diversion.refused")
    assert [e.actor for e in refused] == ["nurse", "nurse", "technician", "technician"]
    assert len(_audit(site, "report.diversion")) == 1  # a refusal is not a look
    found = user_evidence(site.ctl, site.admin, PERIOD, "n3")
    assert found.rank == 1 and found.score is not None
    with pytest.raises(BadInput, match="no such user"):
        user_evidence(site.ctl, site.admin, PERIOD, "nobody")


# ------------------------------------------------------------------------------- the command
def adc(url: str, *args: str, user: str | None = "pharmacist"):  # type: ignore[no-untyped-def]
    env = {"ADC_DATABASE_URL": url, "ADC_PIN": PIN}
    if user:
        env["ADC_USER"] = user
    result = run_adc("report", "diversion", *args, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


@pytest.fixture
def ward_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ADC_HOME", str(tmp_path / "home"))
    site = build_site(db_url)
    _ward(Records(site))
    site.ctl.db.close()
    return db_url


SPAN = ("--from", "2026-03-02", "--to", "2026-03-04")


def test_the_command_json_csv_evidence_and_refusals(ward_url: str) -> None:
    as_json = json.loads(adc(ward_url, *SPAN, "--json").stdout)
    assert as_json[0]["user"] == "n3"
    assert list(as_json[0]) == [f.name for f in fields(DiversionRow)]
    result = adc(ward_url, *SPAN, "--csv", "--cabinet", "W1", user="admin")
    assert result.returncode == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == [f.name for f in fields(DiversionRow)]
    assert len(table) == 1 + len(NURSES) and table[1][1] == "n3" and table[1][6] == "true"
    evidence = json.loads(adc(ward_url, *SPAN, "--user", "n3", "--json").stdout)
    assert evidence["rank"] == 1 and evidence["of"] == len(NURSES)
    waste = next(s for s in evidence["signals"] if s["signal"] == "waste_share")
    assert len(waste["evidence"]) == 3 and all(e["kind"] == "txn" for e in waste["evidence"])
    table_view = adc(ward_url, *SPAN, "--user", "n3")
    assert table_view.returncode == 0 and "rank 1 of 5" in table_view.stdout
    for who in ("nurse", "technician"):
        refused = adc(ward_url, *SPAN, user=who)
        assert refused.returncode == 1
        assert "not allowed" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    site_db = open_database(ward_url)  # the same database, read back
    from adc.controller.clock import ManualClock
    from adc.controller.context import Controller

    ctl = Controller(site_db, ManualClock())
    with ctl.read() as s:
        actions = [
            (e.actor, e.action)
            for e in s.execute(
                select(AuditEntry).where(AuditEntry.action.startswith("report.diversion"))  # type: ignore[attr-defined]
            ).scalars()
        ]
    site_db.close()
    assert actions == [
        ("pharmacist", "report.diversion"),
        ("admin", "report.diversion"),
        ("pharmacist", "report.diversion"),
        ("pharmacist", "report.diversion"),
        ("nurse", "report.diversion.refused"),
        ("technician", "report.diversion.refused"),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from", "2026-02-30"), "--from takes a date"),
        (("--from", "2026-03-05", "--to", "2026-03-01"), "is after --to"),
        (("--cabinet", "NOPE"), "NOPE"),
        ((*SPAN, "--user", "nobody"), "no such user"),
        ((*SPAN, "--json", "--csv"), "choose one of --json and --csv"),
    ],
)
def test_bad_input_is_one_line_exit_2(ward_url: str, args: tuple[str, ...], says: str) -> None:
    result = adc(ward_url, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_who_is_asking_must_be_said(ward_url: str) -> None:
    result = adc(ward_url, *SPAN, user=None)
    assert result.returncode == 2 and "--as NAME" in result.stderr


def test_weights_and_thresholds_are_site_settings(site: Site) -> None:
    from adc.controller.settings import set_setting

    rec = Records(site)
    _ward(rec)
    assert rank_users(site.ctl, PERIOD)[0].flagged
    # waste switched off: n3's wastes still show, but no longer score
    set_setting(site.ctl, site.admin, "diversion-weights", "waste_share=0,wasted_units_per_shift=0")
    top = rank_users(site.ctl, PERIOD)[0]
    assert top.user == "n3"
    assert {s.signal: s.contribution for s in top.signals}["waste_share"] == 0
    assert not top.flagged  # late_wastes alone (3 of 6 removals: z 3, adds 1.5) is under 3
    set_setting(site.ctl, site.admin, "diversion-flag-score", "1")
    assert rank_users(site.ctl, PERIOD)[0].flagged
    # a waste two hours after its removal is not late when late means three hours
    set_setting(site.ctl, site.admin, "diversion-late-waste-min", "180")
    assert rank_users(site.ctl, PERIOD)[0].score == 0
    for name, value, says in (
        ("diversion-weights", "waste=2", "signal=weight"),
        ("diversion-weights", "waste_share=x", "takes a number"),
        ("diversion-shift-changes", "7am", "times of day"),
        ("diversion-flag-score", "0", "between"),
    ):
        with pytest.raises(BadInput, match=says):
            set_setting(site.ctl, site.admin, name, value)
