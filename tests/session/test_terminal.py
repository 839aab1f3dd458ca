"""The interactive `adc restock` screen through a real pseudo-terminal (pexpect), as a person uses it.

The person types the PIN at a hidden prompt, scans (the scanner's GS is the real control
character), sees refusals, drives the simulated hands of the `sim:` backend, and finishes; or
presses Ctrl-C in the middle of a line; or keeps typing a wrong PIN until the account locks.
What the screen said is matched on the pty's output, what was recorded is read from the database.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pexpect
import pytest

from tests.conftest import ROOT
from tests.controller.site import PIN
from tests.session.helpers import (
    HEPARIN,
    ONDANSETRON_VIAL,
    SessionSite,
    datamatrix,
    emulator,
    good_expiry,
    hri,
)

pytestmark = pytest.mark.timeout(90)


@contextmanager
def terminal(
    site: SessionSite, user: str = "technician", backend: str = "sim:"
) -> Iterator[pexpect.spawn]:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "adc", "restock", "--cabinet", "W1", "--user", user, "--backend", backend],
        env=site.env(),
        cwd=str(ROOT),
        dimensions=(60, 140),
        encoding="utf-8",
        timeout=20,
    )
    child.logfile_read = transcript = _Transcript()
    child.transcript = transcript  # type: ignore[attr-defined]
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


class _Transcript:
    """Everything the terminal showed, to check what never appeared (the PIN)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, data: str) -> None:
        self.text += data

    def flush(self) -> None:
        pass


def log_in(child: pexpect.spawn) -> None:
    child.expect("PIN for technician:")
    child.sendline(PIN)
    child.expect("refill list")
    child.expect("Scan a pack")


def test_a_person_scans_sees_refusals_loads_and_finishes(session_site: SessionSite) -> None:
    with terminal(session_site) as child:
        log_in(child)
        child.sendline(hri(HEPARIN, good_expiry(), "H1"))
        child.expect("wrong drug: scanned Heparin")
        child.expect("Scan a pack")
        child.sendline("hello")
        child.expect("malformed barcode 'hello'")
        child.expect("Scan a pack")
        # the scanner's GS is the control character itself
        child.sendline(datamatrix(ONDANSETRON_VIAL, good_expiry(), "ON4471"))
        child.expect("lot ON4471 · expires")
        child.expect("Type .*open.* to unlock drawer D1")
        child.sendline("open")
        child.expect("opened drawer D1")
        child.expect("put 10 into pocket")
        child.sendline("add 10")
        child.expect("put 10 into D1-P1")
        child.sendline("close")
        child.expect("The scale counts 10 added")
        child.sendline("")
        child.expect("1 of 4 lines done")  # the header of the next frame
        child.expect("D1-P1 recorded")
        child.expect("Scan a pack")
        child.sendline("quit")
        child.expect("session ended")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert PIN not in child.transcript.text  # type: ignore[attr-defined]
    assert session_site.on_hand("D1-P1") == 10
    assert session_site.rows("SELECT lot, qty FROM stock_lot") == [("ON4471", 10)]
    actions = [a for (a,) in session_site.rows("SELECT action FROM audit_entry ORDER BY seq")]
    assert actions[-1] == "stock.refill" and "user.pin_failed" not in actions


def test_typed_gs_and_a_skip_marks_the_line_out_of_stock(session_site: SessionSite) -> None:
    with terminal(session_site) as child:
        log_in(child)
        typed = datamatrix(ONDANSETRON_VIAL, good_expiry(), "TYPED1").replace("\x1d", "<GS>")
        child.sendline(typed)
        child.expect("lot TYPED1 · expires")  # the typed <GS> ended the lot
        child.expect("unlock drawer D1")
        child.sendline("skip supplier backorder")
        child.expect("D1-P1 skipped:")
        child.expect("supplier backorder — pharmacists notified")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    assert session_site.rows(
        "SELECT p.code, s.kind FROM shortage s JOIN pocket p ON p.id = s.pocket_id"
    ) == [("D1-P1", "unfilled")]
    assert session_site.rows("SELECT count(*) FROM stock_lot") == [(0,)]


def test_ctrl_c_with_the_drawer_open_flags_it_for_recount(session_site: SessionSite) -> None:
    before = session_site.audit_count()
    with terminal(session_site) as child:
        log_in(child)
        child.sendline(datamatrix(ONDANSETRON_VIAL, good_expiry(), "ON1"))
        child.expect("unlock drawer D1")
        child.sendline("open")
        child.expect("opened drawer D1")
        child.sendline("add 4")
        child.expect("put 4 into D1-P1")
        child.sendintr()  # Ctrl-C in the middle of the line: drawer open, packs half loaded
        child.expect("leaving the cabinet safe")
        child.expect("D1-P1 flagged for recount")
        child.expect("NOT locked: close it")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
    events = session_site.rows(
        "SELECT drawer_code, pocket_code, kind, detail FROM maintenance_event"
    )
    assert len(events) == 1
    drawer, pocket, kind, detail = events[0]
    assert (drawer, pocket, kind) == ("D1", "D1-P1", "failed")
    assert (
        "restock line abandoned: interrupted: the pocket was open (open; NOT locked) by technician"
        in detail
    )
    assert "lot ON1 scanned" in detail and "blind recount required" in detail
    new = session_site.rows(f"SELECT action FROM audit_entry WHERE seq > {before}")
    assert new == [("restock.abandoned",)]
    assert session_site.on_hand("D1-P1") == 0  # nothing recorded as stock: it is unknown


def test_ctrl_c_before_anything_is_unlocked_records_nothing(session_site: SessionSite) -> None:
    before = session_site.audit_count()
    with terminal(session_site) as child:
        log_in(child)
        child.sendintr()
        child.expect("interrupted")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
    assert session_site.audit_count() == before
    assert session_site.rows("SELECT count(*) FROM maintenance_event") == [(0,)]


def test_a_wrong_pin_until_the_account_locks(session_site: SessionSite) -> None:
    with terminal(session_site) as child:
        for attempt in range(1, 5):
            child.expect("PIN for technician:")
            child.sendline("0000")
            child.expect(f"wrong PIN for technician \\(failed attempt {attempt} of 5\\)")
        child.expect("PIN for technician:")
        child.sendline("0000")
        child.expect("account locked after 5 failed attempts")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
        assert "refill list" not in child.transcript.text  # type: ignore[attr-defined]
    assert session_site.rows(
        "SELECT locked, failed_attempts FROM app_user WHERE username = 'technician'"
    ) == [(1, 5)]
    failed = session_site.rows("SELECT count(*) FROM audit_entry WHERE action = 'user.pin_failed'")
    assert failed == [(5,)]


def test_over_modbus_tcp_nobody_opens_and_ctrl_c_leaves_it_relocked(
    session_site: SessionSite,
) -> None:
    """The real driver against the emulator: no simulated hands, the countdown runs, Ctrl-C."""
    before = session_site.audit_count()
    with (
        emulator() as (server, where),
        terminal(session_site, backend=f"modbus-tcp://{where}") as child,
    ):
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "W1"))
        child.expect("drawer D1 unlocked — open it:")
        child.expect("s left")
        child.sendline("open")
        child.expect("no simulated hands here: open and close the drawer yourself")
        child.sendintr()
        child.expect("left D1-P1:")
        child.expect("never opened, relocked")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        with server.lock:
            assert server.cabinet.lock_holding("dio1:coil.0")
            assert not server.cabinet.sim_open("D1")
    assert session_site.audit_count() == before  # nothing was accessed: nothing to record
    assert session_site.rows("SELECT count(*) FROM maintenance_event") == [(0,)]
