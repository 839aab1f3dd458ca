"""`adc restock` on a controlled pocket: the blind count on access, its recount and discrepancy,
and the witness the cabinet's policy may require (scripts over the sim backend; a pty for the
screen, which must not show the expected on-hand while the blind count is pending)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import pytest

from adc.controller import counts, inventory
from adc.controller.cabinet_policy import set_cabinet_setting
from adc.controller.gs1 import parse_scan
from tests.conftest import ROOT, run_adc
from tests.controller.site import PIN
from tests.session.helpers import MORPHINE_CART, SessionSite, good_expiry, hri
from tests.session.test_script import restock

pytestmark = pytest.mark.timeout(90)


def morphine_script(tmp_path: Path, *keys: str) -> Path:
    path = tmp_path / "morphine.toml"
    body = "\n".join(keys)
    path.write_text(
        f'[[line]]\npocket = "D3-P1"\nscan = "{hri(MORPHINE_CART, good_expiry(), "MO1")}"\n{body}\n'
    )
    return path


def stock_morphine(session_site: SessionSite, qty: int, lot: str = "MO0") -> None:
    """Put `qty` into D3-P1 through the controller (its own blind count first)."""
    site = session_site.site
    counts.count_pocket(site.ctl, site.tech, "W1", "D3-P1", 0, access="refill")
    scan = parse_scan(hri(MORPHINE_CART, good_expiry(), lot))
    inventory.refill(site.ctl, site.tech, "W1", "D3-P1", scan, qty)


def events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_matching_blind_count_then_the_refill(session_site: SessionSite, tmp_path: Path) -> None:
    script = morphine_script(tmp_path, "count = 0", "quantity = 5")
    result = restock(session_site, "--backend", "sim:", "--script", str(script), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    got = events(result.stdout)
    line = next(e for e in got if e["event"] == "line")
    assert line["count"] == "blind" and line["on_hand"] is None and line["need"] is None
    (count,) = [e for e in got if e["event"] == "count"]
    assert (count["outcome"], count["counted"], count["discrepancy"]) == ("match", 0, None)
    assert "expected" not in count
    assert [e["qty"] for e in got if e["event"] == "recorded"] == [5]
    assert session_site.on_hand("D3-P1") == 5
    assert session_site.rows("SELECT count(*) FROM discrepancy") == [(0,)]


def test_a_differing_count_and_recount_open_a_discrepancy(
    session_site: SessionSite, tmp_path: Path
) -> None:
    stock_morphine(session_site, 4)  # the record says 4
    script = morphine_script(tmp_path, "count = 3", "recount = 3", "quantity = 2")
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "count 3 differs from the record: count again" in result.stdout
    assert "recount 3 differs: discrepancy" in result.stdout
    assert "on hand" not in result.stdout.split("count 3 differs")[0]  # blind: not shown
    assert session_site.on_hand("D3-P1") == 5  # 3 found, 2 added
    listed = run_adc("discrepancy", "list", "--json", env=session_site.env())
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["pocket"], r["expected"], r["counted"], r["status"]) for r in rows] == [
        ("D3-P1", 4, 3, "open")
    ]
    assert f"discrepancy {rows[0]['id']} opened" in result.stdout


def test_a_script_without_the_count_names_its_line(
    session_site: SessionSite, tmp_path: Path
) -> None:
    script = morphine_script(tmp_path, "quantity = 5")
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 2
    assert f"{script}:1: pocket D3-P1 holds a controlled substance" in result.stderr
    assert "give count = N" in result.stderr
    assert session_site.on_hand("D3-P1") == 0


def test_a_differing_count_without_recount_fails_the_line(
    session_site: SessionSite, tmp_path: Path
) -> None:
    stock_morphine(session_site, 1)
    script = morphine_script(tmp_path, "count = 0", "quantity = 4")
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 1
    assert "the script gives no recount" in result.stdout
    assert session_site.on_hand("D3-P1") == 1  # nothing recorded but the recount request


def test_the_witness_the_cabinet_requires(session_site: SessionSite, tmp_path: Path) -> None:
    site = session_site.site
    set_cabinet_setting(site.ctl, site.admin, "W1", "cs-refill-witness", "true")
    script = morphine_script(tmp_path, "count = 0", "quantity = 5")
    refused = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert refused.returncode == 1
    assert "needs a witness to refill controlled substances (D3-P1)" in refused.stderr
    assert session_site.rows("SELECT count(*) FROM stock_lot") == [(0,)]
    result = run_adc(
        "restock",
        "--cabinet",
        "W1",
        "--backend",
        "sim:",
        "--script",
        str(script),
        "--witness",
        "pharmacist",
        "--witness-pin-stdin",
        env=session_site.env(ADC_USER="technician", ADC_PIN=PIN),
        input=PIN + "\n",
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert session_site.on_hand("D3-P1") == 5
    assert session_site.rows(
        "SELECT u.username FROM stock_transaction t JOIN app_user u ON u.id = t.witness_id WHERE t.kind = 'refill'"
    ) == [("pharmacist",)]


def test_the_screen_asks_for_a_blind_count_and_shows_no_expected_number(
    session_site: SessionSite,
) -> None:
    session_site.site.assign("D3-P1", MORPHINE_CART, par=45, critical_low=5, max_qty=50)
    stock_morphine(session_site, 37)  # the expected on-hand: 37
    child = pexpect.spawn(
        sys.executable,
        ["-m", "adc", "restock", "--cabinet", "W1", "--user", "technician", "--backend", "sim:"],
        env=session_site.env(),
        cwd=str(ROOT),
        dimensions=(60, 140),
        encoding="utf-8",
        timeout=20,
    )
    seen: list[str] = []
    child.logfile_read = type("T", (), {"write": seen.append, "flush": lambda self: None})()
    try:
        child.expect("PIN for technician:")
        child.sendline(PIN)
        for _ in range(3):  # D1-P1, D2-P1, D6-P1 (critical, empty) come first
            child.expect("Scan a pack")
            child.sendline("skip")
        child.expect("blind count on access")
        child.expect("Scan a pack")
        child.sendline(hri(MORPHINE_CART, good_expiry(), "MO1"))
        child.expect("Type .*open.* to unlock drawer D3")
        child.sendline("open")
        child.expect("count what is in the pocket now")
        child.expect("type the number")
        assert "37" not in "".join(seen)  # neither the board, the panel nor the prompt shows it
        child.sendline("37")
        child.expect("count 37 matches the record")
        child.sendline("add 8")
        child.expect("put 8 into D3-P1")
        child.sendline("close")
        child.expect("The scale counts 8 added")
        child.sendline("")
        child.expect("D3-P1 recorded")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert session_site.on_hand("D3-P1") == 45
