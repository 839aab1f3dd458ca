"""Controlled-substance commands through the real entry point (`python -m adc`): discrepancy list and
resolve with a witness PIN, cycle counts, waste, returns, the two reports and per-cabinet settings.
Exit 0 done, 1 refused, 2 bad input; one clear line, never a traceback, nothing half-written."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adc.controller import cabinet_policy, counts, inventory, returns, users
from adc.controller.clock import ManualClock
from adc.controller.models import User
from tests.conftest import run_adc
from tests.controller.cs import (
    CS_CABINET,
    add_cs_cabinet,
    assign,
    discrepancies,
    snapshot,
    stock,
)
from tests.controller.site import CABINET, MORPHINE_CART, PIN, Site, build_site


def adc(url: str, *args: str, user: str | None = None, stdin: str | None = None, **env: str):  # type: ignore[no-untyped-def]
    full = {"ADC_DATABASE_URL": url, "ADC_PIN": PIN, **env}
    if user:
        full["ADC_USER"] = user
    result = run_adc(*args, env=full, input=stdin)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


@pytest.fixture
def cs_site(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Morphine: 6 in W1 D3-P1 with discrepancy 1 open (a nurse counted 4, no recount allowed),
    8 in CS1 F-1 and a nurse's removal of 2 there (record id returned)."""
    monkeypatch.setenv("ADC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADC_WITNESS_PIN", raising=False)
    site = build_site(db_url, ManualClock(datetime.now(UTC)))
    assign(site, "D3-P1", MORPHINE_CART)
    stock(site, "D3-P1", MORPHINE_CART, 6)
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "false")
    assert counts.count_pocket(site.ctl, site.nurse, CABINET, "D3-P1", 4).discrepancy_id == 1
    add_cs_cabinet(site)
    assign(site, "F-1", MORPHINE_CART, cabinet=CS_CABINET)
    stock(site, "F-1", MORPHINE_CART, 8, cabinet=CS_CABINET)
    counts.count_pocket(site.ctl, site.nurse, CS_CABINET, "F-1", 8, access="remove")
    removal = inventory.remove(site.ctl, site.nurse, CS_CABINET, "F-1", 2).txn_ids[0]
    yield site, db_url, removal
    site.ctl.db.close()


def unchanged(site: Site, before: Any) -> None:
    assert snapshot(site) == before, "a refused or bad command changed the database"


def test_discrepancy_list_and_resolve_with_a_witness_pin(cs_site: Any) -> None:
    site, url, _ = cs_site
    listed = json.loads(adc(url, "discrepancy", "list", "--open", "--json").stdout)
    assert [(d["id"], d["expected"], d["counted"], d["overdue"]) for d in listed] == [
        (1, 6, 4, False)
    ]
    header = next(csv.reader(io.StringIO(adc(url, "discrepancy", "list", "--csv").stdout)))
    assert header[:3] == ["id", "status", "overdue"]
    discs_before = discrepancies(site)
    resolve = ("discrepancy", "resolve", "1", "--reason", "miscount", "--note", "found 2 in D3-P2")
    cases = [  # (extra args, witness PIN on stdin, exit code, message)
        ((), None, 2, "needs a witness"),
        (("--witness", "pharmacist", "--witness-pin-stdin"), PIN, 1, "cannot witness their own"),
        (("--witness", "technician", "--witness-pin-stdin"), PIN, 1, "is a technician"),
        (("--witness", "nurse", "--witness-pin-stdin"), "9999", 2, "wrong PIN for nurse"),
        (("--witness", "nurse"), None, 2, "no terminal to ask on"),
        (("--witness", "nurse", "--witness-pin-stdin"), "", 2, "stdin is empty"),
    ]
    for extra, pin, code, message in cases:
        result = adc(url, *resolve, *extra, user="pharmacist", stdin=pin and pin + "\n")
        assert (result.returncode, message in result.stderr) == (code, True), result.stderr
    # only the wrong witness PIN left a trace: it counts towards the nurse's lock-out
    with site.ctl.read() as s:
        assert s.get(User, site.nurse.user_id).failed_attempts == 1
    assert discrepancies(site) == discs_before
    for args, code, message in [
        (
            (
                "discrepancy",
                "resolve",
                "999",
                "--reason",
                "miscount",
                "--note",
                "x",
                "--witness",
                "nurse",
                "--witness-pin-stdin",
            ),
            2,
            "no discrepancy 999",
        ),
        (
            ("discrepancy", "resolve", "one", "--reason", "miscount", "--note", "x"),
            2,
            "valid integer",
        ),
        (
            (
                "discrepancy",
                "resolve",
                "1",
                "--reason",
                "lost",
                "--note",
                "x",
                "--witness",
                "nurse",
            ),
            2,
            "unknown reason 'lost'",
        ),
        (
            (
                "discrepancy",
                "resolve",
                "1",
                "--reason",
                "miscount",
                "--note",
                " ",
                "--witness",
                "nurse",
            ),
            2,
            "cannot be empty",
        ),
    ]:
        result = adc(url, *args, user="pharmacist", stdin=PIN + "\n")
        assert result.returncode == code and message in result.stderr, result.stderr
    ok = adc(url, *resolve, "--witness", "nurse", user="pharmacist", ADC_WITNESS_PIN=PIN)
    assert ok.returncode == 0 and "discrepancy 1 resolved: miscount" in ok.stdout
    assert "witness nurse" in ok.stdout
    again = adc(url, *resolve, "--witness", "nurse", user="pharmacist", ADC_WITNESS_PIN=PIN)
    assert again.returncode == 1 and "is resolved already" in again.stderr
    closed = json.loads(adc(url, "report", "discrepancies", "--json").stdout)
    assert (closed[0]["status"], closed[0]["witness"], closed[0]["note"]) == (
        "resolved",
        "nurse",
        "found 2 in D3-P2",
    )


def test_a_disabled_witness_is_refused(cs_site: Any) -> None:
    site, url, _ = cs_site
    users.disable_user(site.ctl, site.admin, "nurse")
    before = snapshot(site)
    result = adc(
        url,
        "discrepancy", "resolve", "1", "--reason", "wrong-pocket", "--note", "x",
        "--witness", "nurse", "--witness-pin-stdin",
        user="pharmacist",
        stdin=PIN + "\n",
    )  # fmt: skip
    assert result.returncode == 1 and "user nurse is disabled" in result.stderr
    unchanged(site, before)


def test_cycle_count_through_the_cli(cs_site: Any) -> None:
    site, url, _ = cs_site
    before = snapshot(site)
    for value, message in [
        ("D3-P1=-1", "whole number"),
        ("D3-P1=abc", "whole number"),
        ("D3-P1=1,2,3", "at most one recount"),
        ("D9-P9=1", "not being counted"),
    ]:
        result = adc(
            url, "count", "-c", CABINET, "--pocket", "D3-P1", "--count", value, user="nurse"
        )
        assert result.returncode == 2 and message in result.stderr, (value, result.stderr)
    missing = adc(url, "count", "-c", CABINET, "--controlled", user="nurse")
    assert missing.returncode == 2 and "no count given for D3-P1" in missing.stderr
    unchanged(site, before)
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "true")
    result = adc(
        url, "count", "-c", CABINET, "--controlled", "--count", "D3-P1=3,2", "--json", user="nurse"
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["pocket"], row["outcome"], row["counted"], row["recount_of"] is not None) == (
        "D3-P1",
        "discrepancy",
        2,
        True,
    )
    assert "expected" not in row  # blind
    short = adc(url, "count", "-c", CABINET, "--controlled", "--count", "D3-P1=1", user="nurse")
    assert short.returncode == 1 and "a recount is due" in short.stderr  # first try recorded
    scaled = adc(
        url,
        "count", "-c", CABINET, "-p", "D3-P1", "--count", "D3-P1=1", "--backend", "sim:",
        "--json",
        user="nurse",
    )  # fmt: skip
    assert scaled.returncode == 0, scaled.stderr
    (row,) = json.loads(scaled.stdout)
    assert row["recount_of"] is not None and row["sensor"]["unit_weight_g"] == 6.3
    assert isinstance(row["sensor"]["grams"], float)  # the scale was read through the driver


def test_waste_and_returns_through_the_cli(cs_site: Any) -> None:
    site, url, removal = cs_site
    base = ("-c", CS_CABINET, "--removal", str(removal))
    before = snapshot(site)
    for args, code, message in [
        (("waste", *base, "--qty", "1", "--reason", "partial"), 1, "needs a witness"),
        (("waste", *base, "--qty", "0", "--reason", "partial"), 2, "at least 1"),
        (("waste", *base, "--qty", "x", "--reason", "partial"), 2, "valid integer"),
        (("waste", *base, "--qty", "1", "--reason", "partial", "--pocket", "F-1"), 2, "either"),
        (("return", *base, "--qty", "5"), 1, "2 unit(s) not yet wasted"),
        (("return", "-c", CABINET, "--removal", str(removal), "--qty", "1"), 1, "no return bin"),
        (("return", *base), 2, "--removal ID and --qty N"),
    ]:
        result = adc(url, *args, user="nurse")
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
    unchanged(site, before)
    wasted = adc(
        url, "waste", *base, "--qty", "1", "--reason", "partial dose", "--witness", "pharmacist",
        "--witness-pin-stdin", user="nurse", stdin=PIN + "\n",
    )  # fmt: skip
    assert wasted.returncode == 0 and "witness pharmacist" in wasted.stdout, wasted.stderr
    back = adc(url, "return", *base, "--qty", "1", user="nurse")
    assert back.returncode == 0 and "to return bin RB" in back.stdout, back.stderr
    item = returns.return_bin_items(site.ctl, CS_CABINET)[0].item_id
    nurse_clear = adc(url, "return", "-c", CS_CABINET, "--clear-out", "--count", f"{item}=1",
                      user="nurse")  # fmt: skip
    assert nurse_clear.returncode == 1 and "not allowed" in nurse_clear.stderr
    cleared = adc(
        url, "return", "-c", CS_CABINET, "--clear-out", "--count", f"{MORPHINE_CART}=0",
        user="pharmacist",
    )  # fmt: skip
    assert cleared.returncode == 0 and "discrepancies opened" in cleared.stdout, cleared.stderr


def test_reports_and_cabinet_settings_through_the_cli(cs_site: Any) -> None:
    site, url, _ = cs_site
    today = datetime.now(UTC).date().isoformat()
    rows = list(
        csv.DictReader(
            io.StringIO(
                adc(url, "report", "cs-activity", "--from", today, "--to", today, "--csv").stdout
            )
        )
    )
    d3 = [r for r in rows if r["pocket"] == "D3-P1"]
    assert [(r["kind"], r["change"], r["balance"]) for r in d3] == [
        ("count", "0", "0"),
        ("refill", "6", "6"),
        ("count", "-2", "4"),
    ]
    assert d3[-1]["discrepancy"] == "1"
    empty = adc(url, "report", "cs-activity", "--from", "2020-01-01", "--to", "2020-01-02", "--csv")
    assert empty.stdout.splitlines() == [",".join(k for k in rows[0])]  # header even when empty
    bad = adc(url, "report", "cs-activity", "--from", "yesterday")
    assert bad.returncode == 2 and "takes a date" in bad.stderr
    table = adc(url, "report", "cs-activity", "-c", CABINET)
    assert table.returncode == 0 and "controlled-substance activity" in table.stdout
    before = snapshot(site)
    for args, code, message in [
        (("settings", "set", "count-mode", "sometimes", "-c", CABINET), 2, "count-mode is one of"),
        (("settings", "set", "resolve-by", "8h", "-c", "W9"), 2, "no cabinet 'W9'"),
    ]:
        result = adc(url, *args, user="admin")
        assert result.returncode == code and message in result.stderr, result.stderr
    denied = adc(url, "settings", "set", "resolve-by", "8h", "-c", CABINET, user="pharmacist")
    assert denied.returncode == 1 and "not allowed" in denied.stderr
    unchanged(site, before)
    done = adc(url, "settings", "set", "resolve-by", "end-of-shift", "-c", CABINET, user="admin")
    assert done.returncode == 0 and "resolve-by = 'end-of-shift'" in done.stdout
    shown = json.loads(adc(url, "settings", "show", "-c", CABINET, "--json").stdout)
    assert (shown["resolve-by"], shown["recount"], shown["count-mode"]) == (
        "end-of-shift",
        False,
        "none",
    )
