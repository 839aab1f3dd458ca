"""Every `adc report` takes a --cabinet list: `--cabinet W1,W3` gives exactly those cabinets'
rows (three cabinets, each with a row in every report), an unknown or blank entry is bad input
(exit 2, one line), and the controller filters with one SQL IN, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from adc.controller import cabinets, inventory, quarantine, recalls
from adc.controller.cabinet_scope import cabinet_ids, scoped
from adc.controller.csreport import cs_activity, period
from adc.controller.diversion_signals import Period, _load
from adc.controller.gs1 import parse_scan
from adc.controller.models import AuditEntry, Pocket
from tests.conftest import run_adc
from tests.controller.cs import stock
from tests.controller.site import (
    ACETAMINOPHEN,
    MORPHINE_CART,
    PIN,
    PROFILE,
    Site,
    build_site,
    datamatrix,
)

CABINETS = ("W1", "W2", "W3")
WANTED = ("W1", "W3")
# report → extra arguments; each has a row for every cabinet in the site below
REPORTS = {
    "refill": [],
    "expiring": [],
    "shortages": [],
    "recalls": [],
    "discrepancies": [],
    "cs-activity": ["--from", "2026-03-01", "--to", "2026-03-03"],  # the site's manual clock
    "quarantine": [],
    "fleet": [],
}


@pytest.fixture
def three(db_url: str) -> Iterator[Site]:
    """W1, W2, W3: each a refill line, an expiring recalled lot, a shortage, a discrepancy, a
    quarantine and controlled-substance activity (morphine refilled)."""
    site = build_site(db_url)
    ctl = site.ctl
    for cabinet in CABINETS[1:]:
        cabinets.add_cabinet(ctl, site.service, cabinet, PROFILE)
    soon = parse_scan(datamatrix(ACETAMINOPHEN, site.clock.now().date() + timedelta(10), "BAD"))
    for cabinet in CABINETS:
        for pocket, gtin in (("D1-P1", ACETAMINOPHEN), ("D3-P1", MORPHINE_CART)):
            cabinets.assign_pocket(
                ctl, site.pharmacist, cabinet, pocket, gtin, par=10, critical_low=2, max_qty=20
            )
        inventory.refill(ctl, site.tech, cabinet, "D1-P1", soon, 3, confirm_short_dated=True)
        inventory.remove(ctl, site.nurse, cabinet, "D1-P1", 1)  # 2: critical-low, a shortage
        inventory.count(ctl, site.nurse, cabinet, "D1-P1", 1)  # 2 on record: a discrepancy
        quarantine.place(ctl, cabinet, "D1-P1", "fridge too warm", alarm_event=None)
        stock(site, "D3-P1", MORPHINE_CART, 4, cabinet=cabinet, expiry=date(2027, 6, 30))
    recalls.add_recall(ctl, site.pharmacist, ACETAMINOPHEN, "BAD", "test recall")
    yield site
    ctl.db.close()


def _cabinets_of(stdout: str) -> set[str]:
    return {row["cabinet"] for row in json.loads(stdout)}


@pytest.mark.parametrize("report", list(REPORTS))
def test_each_report_gives_exactly_the_cabinets_listed(three: Site, report: str) -> None:
    url = three.url
    every = run_adc("report", report, "--db", url, "--json", *REPORTS[report])
    assert every.returncode == 0, every.stderr
    assert _cabinets_of(every.stdout) == set(CABINETS)  # each cabinet has rows to leave out
    listed = run_adc(
        "report", report, "--db", url, "--json", "--cabinet", "W3,W1", *REPORTS[report]
    )
    assert listed.returncode == 0, listed.stderr
    assert _cabinets_of(listed.stdout) == set(WANTED)
    repeated = run_adc(
        "report", report, "--db", url, "--json", "-c", "W1", "-c", "W3", *REPORTS[report]
    )
    assert _cabinets_of(repeated.stdout) == set(WANTED)
    one = run_adc("report", report, "--db", url, "--json", "--cabinet", "W2", *REPORTS[report])
    assert _cabinets_of(one.stdout) == {"W2"}


@pytest.mark.parametrize("report", [*REPORTS, "diversion"])
def test_an_unknown_or_blank_cabinet_is_bad_input(three: Site, report: str) -> None:
    login = ["--as", "pharmacist"] if report == "diversion" else []
    for given, named in (
        ("W1,NOPE", "no cabinet 'NOPE'"),
        ("W1,,W3", "blank entry"),
        (" ", "blank entry"),
        ("W1,", "blank entry"),
    ):
        found = run_adc(
            "report", report, "--db", three.url, "--cabinet", given, *login, env={"ADC_PIN": PIN}
        )
        assert found.returncode == 2, (given, found.stdout, found.stderr)
        assert named in found.stderr and "Traceback" not in found.stderr
        assert len(found.stderr.strip().splitlines()) == 1


def test_diversion_reads_only_the_cabinets_listed_and_audits_the_list(three: Site) -> None:
    ctl = three.ctl
    since, until = period(ctl, None, None)
    data = _load(ctl, Period(since, until, WANTED))
    assert {t.cabinet for t in data.txns} == set(WANTED)
    assert {t.cabinet for t in _load(ctl, Period(since, until)).txns} == set(CABINETS)
    found = run_adc(
        "report",
        "diversion",
        "--db",
        three.url,
        "--json",
        "--as",
        "pharmacist",
        "-c",
        "W1,W3",
        env={"ADC_PIN": PIN},
    )
    assert found.returncode == 0, found.stderr
    with ctl.read() as session:
        last = (
            session.execute(
                select(AuditEntry.payload)
                .where(AuditEntry.action == "report.diversion")
                .order_by(AuditEntry.seq.desc())
            )
            .scalars()
            .first()
        )
    assert last is not None and json.loads(last)["cabinet"] == ["W1", "W3"]


def test_controller_filters_with_one_in_and_takes_one_id_or_a_list(three: Site) -> None:
    query = scoped(select(Pocket.id), Pocket.cabinet_id, ["W1", "W3", "W1"])
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    assert "IN ('W1', 'W3')" in sql and sql.count("cabinet_id") == 1
    assert cabinet_ids("W2") == ("W2",) and cabinet_ids(None) is None and cabinet_ids([]) is None
    ctl = three.ctl
    since, until = period(ctl, None, None)
    both = {e.cabinet for e in cs_activity(ctl, since, until, ["W2", "W3"])}
    assert both == {"W2", "W3"}
    assert {e.cabinet for e in cs_activity(ctl, since, until, "W2")} == {"W2"}


@pytest.mark.parametrize(
    "command", [("discrepancy", "list"), ("quarantine", "list"), ("station", "notifications")]
)
def test_the_listing_commands_take_the_same_cabinet_list(three: Site, command: tuple) -> None:
    """The lists outside `adc report` that filter by cabinet take the same option."""
    url = three.url
    every = run_adc(*command, "--db", url, "--json")
    assert every.returncode == 0, every.stderr
    assert _cabinets_of(every.stdout) == set(CABINETS)
    listed = run_adc(*command, "--db", url, "--json", "--cabinet", "W3,W1")
    assert listed.returncode == 0, listed.stderr
    assert _cabinets_of(listed.stdout) == set(WANTED)
    repeated = run_adc(*command, "--db", url, "--json", "-c", "W1", "-c", "W3")
    assert _cabinets_of(repeated.stdout) == set(WANTED)
    for given, named in (("W1,NOPE", "no cabinet 'NOPE'"), ("W1,,W3", "blank entry")):
        found = run_adc(*command, "--db", url, "--cabinet", given)
        assert found.returncode == 2 and named in found.stderr, (given, found.stderr)
