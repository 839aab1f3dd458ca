"""The access log: an access is on the database before its pulse, a crash mid-access is found at
the next start, and a database that cannot be written refuses before anything is unlocked.

Issue 21, safety defects 5 and 6: a scripted restock on a read-only database unlocked a drawer and
then crashed with nothing recorded; a restock killed with its pocket open left no trace, and the
next session offered the pocket as if nothing had happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, update

from adc.controller import access_log, audit, cabinets
from adc.controller.access_log import DatabaseUnwritable, owner_gone, process_owner
from adc.controller.db import open_database
from adc.controller.dberrors import DatabaseUnavailable
from adc.controller.models import AccessLog, AuditEntry, MaintenanceEvent
from adc.controller.restock import State, begin_restock
from adc.errors import Refused
from adc.session.interrupts import deferred_sigint, terminate_as_interrupt
from tests.controller.rig import Person, SimClock, sim_driver
from tests.controller.site import ACETAMINOPHEN, CABINET, Site, build_site, datamatrix

GOOD = date(2027, 6, 30)
TABLET_G = 0.55


@pytest.fixture
def w1(db_url: str) -> Iterator[tuple[Site, Any]]:
    driver = sim_driver("tcp-6drawer")
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "tcp-6drawer")
    site.assign("D1-P1", ACETAMINOPHEN, par=20, critical_low=2, max_qty=40)
    yield site, driver
    site.ctl.db.close()


def _rows(site: Site) -> list[AccessLog]:
    with site.ctl.read() as session:
        return list(session.execute(select(AccessLog).order_by(AccessLog.id)).scalars())


def _events(site: Site, kind: str) -> list[MaintenanceEvent]:
    with site.ctl.read() as session:
        return list(
            session.execute(select(MaintenanceEvent).where(MaintenanceEvent.kind == kind)).scalars()
        )


def _audit_actions(site: Site) -> list[str]:
    with site.ctl.read() as session:
        return list(session.execute(select(AuditEntry.action).order_by(AuditEntry.seq)).scalars())


def _unlocked_line(site: Site, driver: Any) -> Any:
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    session.select("D1-P1")
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "AC1"))
    session.unlock()
    return session


def _load_and_close(session: Any, units: int) -> None:
    person = Person(session)
    assert person.open("D1") is State.OPEN
    person.cabinet.sim_add("D1-P1", units, TABLET_G)
    assert person.close("D1") is State.CLOSED


def _owner_of_a_finished_process() -> str:
    """The owner string of a real process of this host that has ended."""
    code = "from adc.controller.access_log import process_owner; print(process_owner())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _hand_to(site: Site, owner: str) -> None:
    with site.ctl.db.engine.begin() as conn:
        conn.execute(update(AccessLog).values(owner=owner))


def test_the_access_is_written_before_the_pulse_and_closed_with_the_line(w1: Any) -> None:
    site, driver = w1
    session = _unlocked_line(site, driver)
    [row] = _rows(site)
    assert (row.drawer_code, row.pocket_code, row.purpose) == ("D1", "D1-P1", "restock")
    assert row.user_id == site.tech.user_id and row.session == session.id
    assert row.closed_at is None and row.owner == process_owner()
    _load_and_close(session, 5)
    session.confirm_quantity(5)
    [row] = _rows(site)
    assert row.closed_at is not None and row.outcome == "recorded"


def test_an_access_left_open_by_a_dead_process_is_flagged_at_the_next_start(w1: Any) -> None:
    site, driver = w1
    _unlocked_line(site, driver)  # ... and the process "dies" here: nothing else is recorded
    _hand_to(site, _owner_of_a_finished_process())
    before = len(_audit_actions(site))

    fresh = begin_restock(site.ctl, driver, CABINET, site.tech)

    [found] = fresh.recovered
    assert (found.drawer, found.pocket, found.purpose, found.user) == (
        "D1",
        "D1-P1",
        "restock",
        "technician",
    )
    [event] = _events(site, "failed")
    assert event.drawer_code == "D1" and "blind recount" in event.detail
    assert _audit_actions(site)[before:] == ["access.interrupted"]
    [row] = _rows(site)
    assert row.outcome == "interrupted" and row.closed_at is not None
    with pytest.raises(Refused, match="out of service"):
        fresh.select("D1-P1")
    assert audit.verify_trail(site.ctl).entries > 0  # raises CheckFailed if broken
    # recovered once: a later start finds nothing more
    assert begin_restock(site.ctl, driver, CABINET, site.tech).recovered == []


def test_an_access_of_a_live_process_or_another_host_is_left_alone(w1: Any) -> None:
    site, driver = w1
    _unlocked_line(site, driver)
    assert begin_restock(site.ctl, driver, CABINET, site.tech).recovered == []  # we are alive
    host, boot, _pid, _ticks = process_owner().split("|")
    _hand_to(site, f"another-{host}|{boot}|1|1")
    assert begin_restock(site.ctl, driver, CABINET, site.tech).recovered == []
    assert _events(site, "failed") == []


def test_a_reused_pid_or_a_reboot_is_not_the_owner() -> None:
    host, boot, pid, ticks = process_owner().split("|")
    assert not owner_gone(process_owner())
    assert owner_gone(f"{host}|{boot}|{pid}|{int(ticks) + 1}")  # same pid, another start
    assert owner_gone(f"{host}|another-boot|{pid}|{ticks}")  # the machine restarted
    assert not owner_gone("garbage")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_read_only_database_refuses_before_anything_is_unlocked(w1: Any) -> None:
    site, driver = w1
    path = site.url.removeprefix("sqlite:///")
    read_only = open_database(f"sqlite:///file:{path}?mode=ro&uri=true")
    writable, site.ctl.db = site.ctl.db, read_only
    with pytest.raises(DatabaseUnwritable, match=r"read-only: cannot start a restock session"):
        begin_restock(site.ctl, driver, CABINET, site.tech)  # before the person scans anything
    site.ctl.db = writable
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    site.ctl.db = read_only  # ... and it turns read-only during the session
    session.select("D1-P1")
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "AC1"))
    with pytest.raises(DatabaseUnwritable, match=r"read-only.*nothing was unlocked"):
        session.unlock()
    assert session.state is State.READY_TO_UNLOCK
    driver.advance(0.05)
    assert driver.lock_engaged("dio1:coil.0")  # D1's lock was never pulsed
    assert not driver.cabinet.sim_open("D1")
    read_only.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_database_lost_after_the_unlock_is_a_refusal_and_the_drawer_is_flagged_later(
    w1: Any,
) -> None:
    site, driver = w1
    writable = site.ctl.db
    session = _unlocked_line(site, driver)
    _load_and_close(session, 5)
    path = site.url.removeprefix("sqlite:///")
    site.ctl.db = open_database(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(DatabaseUnavailable, match="read-only") as err:
        session.confirm_quantity(5)
    assert err.value.exit_code == 1
    with pytest.raises(DatabaseUnavailable):
        session.abandon("the database is read-only")
    site.ctl.db.close()
    site.ctl.db = writable
    [row] = _rows(site)
    assert row.closed_at is None  # still open: the next start must flag it
    _hand_to(site, _owner_of_a_finished_process())
    [found] = begin_restock(site.ctl, driver, CABINET, site.tech).recovered
    assert found.drawer == "D1"
    assert audit.verify_trail(site.ctl).entries > 0  # raises CheckFailed if broken


def _signal_inside_deferred_block(sig: int, ran: list[str], then_raise: bool = False) -> None:
    """Send `sig` to this process inside `deferred_sigint`; `ran` says how far the block got."""
    with deferred_sigint():
        os.kill(os.getpid(), sig)
        ran.append("after the signal")  # the block runs to its end first
        if then_raise:
            raise Refused("the unlock was refused")
    ran.append("after the block")


def test_sigterm_and_sighup_are_held_like_ctrl_c_and_raised_after_the_block() -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        terminate_as_interrupt()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            ran: list[str] = []
            with pytest.raises(KeyboardInterrupt):
                _signal_inside_deferred_block(sig, ran)
            assert ran == ["after the signal"]  # raised at the block's end, not inside it
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # outside a block: at once, as Ctrl-C
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_an_interrupt_during_a_failing_block_still_wins() -> None:
    ran: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _signal_inside_deferred_block(signal.SIGINT, ran, then_raise=True)
    assert ran == ["after the signal"]


def test_open_accesses_lists_only_open_rows(w1: Any) -> None:
    site, driver = w1
    _unlocked_line(site, driver)
    assert [r.pocket_code for r in access_log.open_accesses(site.ctl, CABINET)] == ["D1-P1"]
