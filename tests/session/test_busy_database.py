"""A restock session whose database is busy (issue 16 item 2): another connection holds cabinet
W1's writer lock (PostgreSQL: its advisory lock; SQLite: the one write lock) during a step. The
step is refused with the database's one line after the lock wait (1 s here), the line is kept,
nothing is unlocked before its access is on record, and a retry once the lock is free records
the line once. At the terminal (a real pty, the `sim:` backend's simulated hands) and in a script
over the Modbus TCP emulator (the test is the person at the cabinet), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest

from adc.controller.audit import verify_trail
from adc.controller.context import Controller
from adc.controller.db import open_database
from tests.conftest import ROOT
from tests.controller.dbs import BACKENDS, PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import PIN, fast_pins
from tests.fleet.test_timeouts import _stalled
from tests.session.busy import (
    DbSite,
    Events,
    build_db_site,
    load_and_close,
    next_start_flags_d1,
    pull,
    relocked,
)
from tests.session.helpers import ONDANSETRON_VIAL, WallClock, emulator, good_expiry, hri

pytestmark = pytest.mark.timeout(120)
LOCK = "dio1:coil.0"  # drawer D1's lock on tcp-6drawer


@pytest.fixture(params=BACKENDS)
def db_site(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DbSite]:
    if request.param == "postgresql" and not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    fast_pins(monkeypatch)
    url, drop = fresh_database(request.param, tmp_path)
    yield build_db_site(url, tmp_path / "home")
    drop()


@contextmanager
def terminal(
    site: DbSite, backend: str = "sim:", via: int | None = None
) -> Iterator[pexpect.spawn]:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "adc", "restock", "--cabinet", "W1", "--user", "technician", "--backend", backend],
        env=site.env(via),
        cwd=str(ROOT),
        dimensions=(60, 250),
        encoding="utf-8",
        timeout=20,
    )
    child.transcript = []  # type: ignore[attr-defined]
    child.logfile_read = _Collect(child.transcript)  # type: ignore[attr-defined]
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


class _Collect:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, data: str) -> None:
        self.into.append(data)

    def flush(self) -> None:
        pass


def log_in(child: pexpect.spawn) -> None:
    child.expect("PIN for technician:")
    child.sendline(PIN)
    child.expect("Scan a pack")


def verified(site: DbSite) -> None:
    ctl = Controller(open_database(site.url), WallClock())
    try:
        verify_trail(ctl)
    finally:
        ctl.db.close()


def test_a_busy_database_at_the_terminal_keeps_the_line_and_a_retry_records_it_once(
    db_site: DbSite,
) -> None:
    site = db_site
    with terminal(site) as child:
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "BUSY1"))
        child.expect("Type .*open.* to unlock drawer D1")
        with _stalled(site.url, "W1"):  # the unlock: its access cannot be put on record
            child.sendline("open")
            child.expect(r"the database .*is busy: locked by another process")
            child.expect("nothing was unlocked")
            child.expect("Type .*open.* to unlock drawer D1")  # the line is kept: try again
            assert site.accesses() == []  # nothing on record, so nothing was pulsed
        child.sendline("open")  # the lock is free: unlocked now
        child.expect("opened drawer D1")
        child.sendline("add 10")
        child.expect("put 10 into D1-P1")
        child.sendline("close")
        child.expect("The scale counts 10 added")
        with _stalled(site.url, "W1"):  # the record
            child.sendline("")
            child.expect(r"the database .*is busy: locked by another process")
            child.expect("The record: the database did not take it")
            child.expect("Enter = try again")
            assert site.actions("stock.refill") == 0 and site.on_hand("D1-P1") == 0
        child.sendline("")  # Enter: the same record again
        child.expect(r"trying again: waiting up to \d+ s for the database")
        child.expect("D1-P1 recorded")
        child.expect("Scan a pack")
        child.sendline("quit")
        child.expect("session ended")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        shown = "".join(child.transcript)  # type: ignore[attr-defined]
    assert "Traceback" not in shown
    assert site.on_hand("D1-P1") == 10
    assert site.actions("stock.refill") == 1  # recorded once
    assert site.rows("SELECT lot, qty FROM stock_lot") == [("BUSY1", 10)]
    assert site.accesses() == [("D1", "D1-P1", True, "recorded")]
    verified(site)


def _script(tmp_path: Path, lot: str) -> Path:
    script = tmp_path / "round.toml"
    scan = hri(ONDANSETRON_VIAL, good_expiry(), lot)
    script.write_text(f'[[line]]\npocket = "D1-P1"\nscan = "{scan}"\nquantity = 10\n')
    return script


def _scripted(site: DbSite, script: Path, where: str, via: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adc",
            "restock",
            "--cabinet",
            "W1",
            "--backend",
            f"modbus-tcp://{where}",
            "--script",
            str(script),
            "--json",
        ],
        env=site.env(via, ADC_USER="technician", ADC_PIN=PIN),
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_script_tries_a_busy_record_again_and_records_it_once(
    db_site: DbSite, tmp_path: Path
) -> None:
    site = db_site
    with emulator() as (server, where):
        run = _scripted(site, _script(tmp_path, "BUSY2"), where)
        events = Events(run.stdout)
        try:
            events.wait("unlocked")
            pull(server, "D1", LOCK)
            events.wait("opened")
            with _stalled(site.url, "W1"):
                load_and_close(server, "D1", "D1-P1", 10, 4.6)
                refused = events.wait("database", step="record")
                assert "is busy" in refused["reason"] and refused["accessed"] is True
                assert relocked(server, "D1", LOCK)  # shut and locked while it waits
                assert site.actions("stock.refill") == 0
            run.wait(60)
        finally:
            if run.poll() is None:
                run.kill()
        stderr = run.stderr.read() if run.stderr else ""
        events.thread.join(5)
    assert run.returncode == 0, (events.seen[-4:], stderr)
    assert "Traceback" not in stderr
    recorded = events.of("recorded")
    assert [(e["pocket"], e["qty"]) for e in recorded] == [("D1-P1", 10)]
    assert site.on_hand("D1-P1") == 10 and site.actions("stock.refill") == 1
    assert site.accesses() == [("D1", "D1-P1", True, "recorded")]
    verified(site)


def test_a_script_whose_record_stays_busy_stops_and_the_next_start_flags_the_drawer(
    db_site: DbSite, tmp_path: Path
) -> None:
    site = db_site
    with emulator() as (server, where):
        run = _scripted(site, _script(tmp_path, "BUSY3"), where)
        events = Events(run.stdout)
        try:
            events.wait("unlocked")
            pull(server, "D1", LOCK)
            events.wait("opened")
            with _stalled(site.url, "W1"):
                load_and_close(server, "D1", "D1-P1", 10, 4.6)
                run.wait(60)  # every try refused: the script stops
                assert relocked(server, "D1", LOCK)
        finally:
            if run.poll() is None:
                run.kill()
        stderr = run.stderr.read() if run.stderr else ""
        events.thread.join(5)
    assert run.returncode == 1, (events.seen[-4:], stderr)
    assert "Traceback" not in stderr
    assert [e["step"] for e in events.of("database")] == ["record"] * 3
    (stopped,) = [e for e in events.of("error") if "script stopped" in e["reason"]]
    assert "is busy" in stopped["reason"] and "tried 3 times" in stopped["reason"]
    (left,) = [e for e in events.of("interrupted") if e["action"] == "flag-at-next-start"]
    assert left["pocket"] == "D1-P1" and left["drawer"] == "D1" and left["locked"] is True
    assert events.of("summary")[0]["pending"][0]["pocket"] == "D1-P1"
    assert site.actions("stock.refill") == 0 and site.on_hand("D1-P1") == 0
    assert site.accesses() == [("D1", "D1-P1", False, None)]  # open on record
    # the next start at the cabinet (the lock is free again) flags the drawer for a recount
    next_start_flags_d1(site, tmp_path)
    flagged = site.rows("SELECT drawer_code, kind, detail FROM maintenance_event")
    assert [(d, k) for d, k, _ in flagged] == [("D1", "failed")]
    assert "access interrupted" in flagged[0][2] and "blind recount required" in flagged[0][2]
    verified(site)
