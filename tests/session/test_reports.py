"""`adc report ... --json / --csv` through the real entry point: the same rows both ways, a header
even when a report is empty, and one clear error when both are asked for."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from adc.controller import inventory, recalls
from adc.controller.gs1 import parse_scan
from tests.conftest import run_adc
from tests.session.helpers import HEPARIN, ONDANSETRON_VIAL, SessionSite, good_expiry, hri, today

REPORTS = ["refill", "expiring", "shortages", "recalls"]


@pytest.fixture
def stocked(session_site: SessionSite) -> SessionSite:
    """Heparin stocked short-dated and then recalled; one ondansetron (critical low)."""
    site = session_site.site
    soon = today() + timedelta(days=10)
    inventory.refill(
        site.ctl,
        site.tech,
        "W1",
        "D2-P1",
        parse_scan(hri(HEPARIN, soon, "SD1")),
        6,
        confirm_short_dated=True,
    )
    inventory.refill(
        site.ctl,
        site.tech,
        "W1",
        "D1-P1",
        parse_scan(hri(ONDANSETRON_VIAL, good_expiry(), "O1")),
        1,
    )
    recalls.add_recall(site.ctl, site.pharmacist, HEPARIN, "SD1", "particulates")
    return session_site


def report(site: SessionSite, name: str, *flags: str) -> str:
    result = run_adc("report", name, *flags, env=site.env(), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", REPORTS)
def test_csv_and_json_carry_the_same_rows(stocked: SessionSite, name: str) -> None:
    rows = json.loads(report(stocked, name, "--json"))
    table = list(csv.DictReader(io.StringIO(report(stocked, name, "--csv"))))
    assert rows, f"the fixture should give {name} something to report"
    assert len(table) == len(rows)
    for as_json, as_csv in zip(rows, table, strict=True):
        assert list(as_csv) == list(as_json)  # same columns, same order
        for key, value in as_json.items():
            expected = (
                ""
                if value is None
                else ("true" if value else "false")
                if isinstance(value, bool)
                else str(value)
            )
            assert as_csv[key] == expected, (name, key)


def test_what_the_reports_say_about_the_stock(stocked: SessionSite) -> None:
    refill = json.loads(report(stocked, "refill", "--json"))
    assert [(r["pocket"], r["critical"], r["blocked"]) for r in refill][:2] == [
        ("D1-P1", True, None),  # 1 on hand, critical-low 2
        ("D3-P1", True, None),
    ]
    heparin = next(r for r in refill if r["pocket"] == "D2-P1")
    assert heparin["blocked"] == "recalled" and heparin["need"] == 2
    expiring = list(csv.DictReader(io.StringIO(report(stocked, "expiring", "--csv"))))
    assert [(r["pocket"], r["lot"], r["days_left"]) for r in expiring] == [("D2-P1", "SD1", "10")]
    shortages = json.loads(report(stocked, "shortages", "--json"))
    assert [(s["pocket"], s["kind"]) for s in shortages] == [("D1-P1", "critical-low")]
    recalled = list(csv.DictReader(io.StringIO(report(stocked, "recalls", "--csv"))))
    assert [(r["pocket"], r["lot"], r["reason"]) for r in recalled] == [
        ("D2-P1", "SD1", "particulates")
    ]


def test_an_empty_report_still_has_its_csv_header(session_site: SessionSite) -> None:
    out = report(session_site, "recalls", "--csv")
    assert out.splitlines() == ["cabinet,drawer,pocket,item,gtin,lot,expiry,qty,reason"]
    assert json.loads(report(session_site, "recalls", "--json")) == []


def test_json_and_csv_together_is_bad_usage(session_site: SessionSite) -> None:
    result = run_adc("report", "refill", "--json", "--csv", env=session_site.env(), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: choose one of --json and --csv"
