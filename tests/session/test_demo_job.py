"""`adc demo`: the main job through the real entry point, and the database it leaves behind."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from adc.session.script import parse_script
from tests.conftest import run_adc


def test_the_demo_restocks_with_refusals_recalls_and_reports(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    started = time.monotonic()
    result = run_adc("demo", "--db", f"sqlite:///{db}", env={"COLUMNS": "120"}, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 20, f"adc demo took {elapsed:.1f} s"
    out = result.stdout
    # part 1, the hardware, then part 2, the job, in that order
    assert out.index("a person pulls drawer D1: it opens") < out.index("2 · the job")
    assert "refused: wrong drug: scanned Heparin" in out
    assert re.search(r"refused: expired lot: lot ON0917 expired on \d{4}-\d\d-\d\d", out)
    assert "short-dated: lot EN0330" in out
    assert "D1-P2 skipped: out of stock at the pharmacy" in out
    assert "session ended: 6 of 6 lines done, 5 recorded, 1 out of stock" in out
    assert "recall of heparin lot HEP7" in out and "W1/D2-P1 blocked" in out
    for title in ("refill list", "shortages", "expiring within 30d", "recalled stock"):
        assert title in out
    assert "hash chains verified" in out and "2 chains" in out  # the site and W1
    # the controlled-substance part: a blind count on access that opens a discrepancy
    assert "her blind count: 4 → recount → 4 again → discrepancy 2" in out
    assert "pharm resolves 2 and 1 as restock-error, witness nina" in out
    with sqlite3.connect(db) as conn:
        on_hand = dict(conn.execute("SELECT code, on_hand FROM pocket WHERE item_id IS NOT NULL"))
        refused = conn.execute("SELECT count(*) FROM stock_lot WHERE lot = 'ON0917'").fetchone()
    assert on_hand == {
        "D1-P1": 10,
        "D1-P2": 0,
        "D2-P1": 8,
        "D3-P1": 5,
        "D3-P2": 5,
        "D6-P1": 30,
        "D4-P1": 3,  # morphine: refilled 4 (recorded 5), counted on access 4, 1 removed
    }
    assert refused == (0,)  # the expired lot never entered the cabinet
    script = tmp_path / "demo-restock.toml"
    assert len(parse_script(script).lines) == 6  # the round, left to be run again by hand
    verify = run_adc("audit", "verify", "--db", f"sqlite:///{db}", timeout=60)
    assert verify.returncode == 0, verify.stderr
    _the_suggested_restock_starts(out)


def _the_suggested_restock_starts(out: str) -> None:
    """The demo's last line tells a newcomer how to restock W1 at the terminal: run as printed,
    in a real terminal, it reaches the scan prompt (W1 wants a witness for controlled refills:
    without one it was refused)."""
    import os
    import shlex
    import sys

    import pexpect

    line = next(x for x in out.splitlines() if "restock it yourself:" in x)
    words = shlex.split(line.split("restock it yourself:", 1)[1])
    env = dict(os.environ, COLUMNS="120")
    while "=" in words[0]:
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    assert words[0] == "adc"
    child = pexpect.spawn(
        sys.executable, ["-m", "adc", *words[1:]], env=env, encoding="utf-8", timeout=60
    )
    try:
        child.expect("Scan a pack")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert "refused" not in (child.before or "")


def test_the_demo_never_writes_into_an_existing_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    assert run_adc("demo", "--db", db, timeout=120).returncode == 0
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        before = conn.execute("SELECT count(*) FROM audit_entry").fetchone()
    again = run_adc("demo", "--db", db, timeout=120)
    assert again.returncode == 2
    assert "exists already: the demo builds a fresh one" in again.stderr
    assert "1 · the hardware" not in again.stdout  # refused before anything ran
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        assert conn.execute("SELECT count(*) FROM audit_entry").fetchone() == before


def test_without_db_the_temporary_database_is_removed(tmp_path: Path) -> None:
    result = run_adc("demo", env={"COLUMNS": "200"}, timeout=120)
    assert result.returncode == 0, result.stderr
    match = re.search(r"database\s+sqlite:///(\S+) \(temporary\)", result.stdout)
    assert match, result.stdout
    assert not Path(match.group(1)).exists()


def test_hardware_only(tmp_path: Path) -> None:
    result = run_adc("demo", "--hardware", timeout=120)
    assert result.returncode == 0
    assert "a person pulls drawer" in result.stdout and "the job" not in result.stdout
