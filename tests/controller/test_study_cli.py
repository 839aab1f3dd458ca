"""`adc study` and `adc report accountability` through the real entry point: exit codes (1 for a
refused, audited action; 2 for a removal without a valid subject id), and subject ids shown by the
accountability record alone: every other report's --json output is searched for a planted id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from adc.controller import inventory
from adc.controller.clock import ManualClock
from adc.controller.db import open_database
from tests.controller.site import build_site
from tests.controller.test_cli import adc
from tests.controller.test_study import PROTOCOL, STUDY_POCKET, receive, set_up_study

PLANTED = "7731-Z9-0042"  # a subject id no other output could contain by chance


@pytest.fixture
def study_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A site with the study set up (the nurse authorized), 6 units received, 2 dispensed to
    subject PLANTED, 1 of them returned to the pharmacy."""
    monkeypatch.setenv("ADC_HOME", str(tmp_path / "home"))
    now = datetime.now(UTC)  # the commands run on the wall clock: stock must be in date then
    site = build_site(db_url, ManualClock(now))
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 6, expiry=(now + timedelta(days=365)).date())
    moved = inventory.remove(
        site.ctl, site.nurse, "W1", STUDY_POCKET, 2, subject=PLANTED, dose="50 mg"
    )
    site.ctl.db.close()
    result = adc(
        db_url,
        *("study", "return", str(moved.txn_ids[0]), "--qty", "1", "--reason", "dose held"),
        user="nurse",
    )
    assert result.returncode == 0, result.stderr
    assert PLANTED not in result.stdout
    return db_url


def _audit_actions(url: str) -> list[tuple[str, str, dict]]:
    from sqlalchemy import select

    from adc.controller.models import AuditEntry

    db = open_database(url)
    try:
        with db.read() as session:
            return [
                (a.actor, a.action, json.loads(a.payload))
                for a in session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
            ]
    finally:
        db.close()


def test_an_unauthorized_removal_exits_1_and_is_audited(study_url: str) -> None:
    args = ("study", "dispense", "-c", "W1", "-p", STUDY_POCKET, "--qty", "1")
    result = adc(study_url, *args, "--subject", "001-0001", "--dose", "50 mg", user="technician")
    assert result.returncode == 1
    # the technician may not remove at all (role); an authorized role, not on the study:
    result = adc(study_url, *args, "--subject", "001-0001", "--dose", "50 mg", user="pharmacist")
    assert result.returncode == 0, result.stderr  # the pharmacist is authorized (set_up_study)
    adc(study_url, "study", "revoke", PROTOCOL, "nurse", user="pharmacist")
    result = adc(study_url, *args, "--subject", "001-0001", "--dose", "50 mg", user="nurse")
    assert result.returncode == 1
    assert "refused: user nurse is not authorized for protocol" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    last = _audit_actions(study_url)[-1]
    assert last[:2] == ("nurse", "study.refused") and last[2]["doing"] == "remove"


@pytest.mark.parametrize(
    "subject",
    [None, "Jane Doe", "DOE-JANE", "1;DROP TABLE"],
)
def test_a_removal_without_a_valid_subject_id_exits_2(study_url: str, subject: str | None) -> None:
    args = ["study", "dispense", "-c", "W1", "-p", STUDY_POCKET, "--qty", "1", "--dose", "50 mg"]
    if subject is not None:
        args += ["--subject", subject]
    result = adc(study_url, *args, user="nurse")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "subject" in result.stderr
    report = adc(
        study_url, "report", "accountability", "--protocol", PROTOCOL, "--json", user="nurse"
    )
    kinds = [r["kind"] for r in json.loads(report.stdout)["rows"]]
    assert kinds.count("dispense") == 1  # only the fixture's removal


def _report_commands() -> list[str]:
    from adc.commands.reports import app

    group = typer.main.get_group(app)
    return sorted(name for name in group.commands if name != "accountability")


def test_subject_ids_appear_in_the_accountability_record_only(study_url: str) -> None:
    record = adc(
        study_url, "report", "accountability", "--protocol", PROTOCOL, "--json", user="pharmacist"
    )
    assert record.returncode == 0, record.stderr
    data = json.loads(record.stdout)
    assert PLANTED in record.stdout  # the search below would find it
    assert data["reconciled"] and data["lots"][0]["balance"] == data["lots"][0]["on_hand"] == 4
    csv_out = adc(
        study_url, "report", "accountability", "--protocol", PROTOCOL, "--csv", user="nurse"
    )
    assert csv_out.returncode == 0 and PLANTED in csv_out.stdout
    assert csv_out.stdout.splitlines()[0].startswith("at,kind,cabinet,pocket")
    reports = _report_commands()
    assert {"refill", "expiring", "cs-activity", "discrepancies"} <= set(reports)
    outputs = {}
    for name in reports:
        result = adc(study_url, "report", name, "--json", user="pharmacist")
        assert result.returncode == 0, (name, result.stderr)
        outputs[f"report {name}"] = result.stdout + result.stderr
    for args in (
        ("study", "list", "--json"),
        ("study", "show", PROTOCOL, "--json"),
        ("pocket", "list", "-c", "W1", "--json"),
        ("discrepancy", "list", "--json"),
    ):
        result = adc(study_url, *args, user="pharmacist")
        outputs[" ".join(args)] = result.stdout + result.stderr
    leaks = [name for name, text in outputs.items() if PLANTED in text]
    assert leaks == []
    views = [a for a in _audit_actions(study_url) if a[1] == "study.accountability.view"]
    assert [(actor, p["output"]) for actor, _, p in views] == [
        ("pharmacist", "json"),
        ("nurse", "csv"),
    ]


def test_the_accountability_record_is_refused_to_others(study_url: str) -> None:
    result = adc(study_url, "report", "accountability", "--protocol", PROTOCOL, user="technician")
    assert result.returncode == 1 and "authorized users only" in result.stderr
    assert PLANTED not in result.stdout + result.stderr
    assert _audit_actions(study_url)[-1][:2] == ("technician", "study.refused")
    result = adc(study_url, "report", "accountability", "--protocol", "NOPE", user="pharmacist")
    assert result.returncode == 2 and "no study 'NOPE'" in result.stderr


def test_setting_a_study_up_through_the_cli(study_url: str) -> None:
    result = adc(
        study_url,
        *("study", "add", "P-77", "--title", "T", "--sponsor", "S", "--investigator", "I"),
        user="pharmacist",
    )
    assert result.returncode == 0 and "added study P-77" in result.stdout
    assert adc(study_url, "study", "authorize", "P-77", "nurse", user="pharmacist").returncode == 0
    result = adc(study_url, "study", "authorize", "P-77", "nurse", user="nurse")
    assert result.returncode == 1  # a nurse does not set studies up
    result = adc(
        study_url, "study", "pocket", "P-77", "-c", "W1", "-p", STUDY_POCKET, user="pharmacist"
    )
    assert result.returncode == 1 and f"assigned to study {PROTOCOL}" in result.stderr
    result = adc(study_url, "study", "close", PROTOCOL, "--reason", "done", user="pharmacist")
    assert result.returncode == 0
    result = adc(
        study_url,
        *("study", "dispense", "-c", "W1", "-p", STUDY_POCKET, "--qty", "1"),
        *("--subject", "001-0001", "--dose", "50 mg"),
        user="nurse",
    )
    assert result.returncode == 1 and "closed: no removals" in result.stderr
    listing = json.loads(adc(study_url, "study", "list", "--json").stdout)
    assert {s["protocol"]: s["status"] for s in listing} == {PROTOCOL: "closed", "P-77": "open"}
