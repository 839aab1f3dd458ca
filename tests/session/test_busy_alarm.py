"""What the cabinet notices during an access is recorded even when the database is busy at that
moment (issue 16 item 2): pocket D3-P1's lid lock does not re-engage after the close, and another
connection holds cabinet W1's writer lock while the relock is judged. The runner says it once
(a `database` event), keeps watching, and the relock failure is recorded once the lock is free:
once, with its audit entry, the drawer out of service. In-process virtual cabinet (rs485-2bus),
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from adc.controller import cabinets, maintenance
from adc.controller.models import AccessLog, AuditEntry, MaintenanceEvent
from adc.controller.restock import State, begin_restock
from adc.profiles import load_profile, resolve_profile_path
from adc.session.events import Event
from adc.session.hands import NoHands
from adc.session.runner import AccessStatus, Runner
from adc.waiting import SteppedTime
from tests.contract.rigs import Rig, sim_rig
from tests.controller.dbs import BACKENDS, PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import (
    CABINET,
    ONDANSETRON_VIAL,
    START,
    Site,
    build_site,
    datamatrix,
    fast_pins,
)
from tests.fleet.test_timeouts import _stalled

POCKET, DRAWER, LID_LOCK = "D3-P1", "D3", "lb1:lock.0"


@pytest.fixture(params=BACKENDS)
def w1(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Site, Rig]]:
    if request.param == "postgresql" and not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    fast_pins(monkeypatch)
    monkeypatch.setenv("ADC_DB_LOCK_TIMEOUT", "1")  # read when the engine is made
    url, drop = fresh_database(request.param, tmp_path)
    with sim_rig(load_profile(resolve_profile_path("rs485-2bus")), 7) as rig:

        class RigClock:
            def now(self) -> datetime:
                return START + timedelta(seconds=rig.cabinet.env.now)

        site = build_site(url, RigClock(), with_cabinet=False)
        cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
        site.assign(POCKET, ONDANSETRON_VIAL, par=8, critical_low=1, max_qty=12)
        try:
            yield site, rig
        finally:
            site.ctl.db.close()
    drop()


def test_a_relock_failure_refused_by_a_busy_database_is_recorded_once_it_answers(
    w1: tuple[Site, Rig],
) -> None:
    site, rig = w1
    events: list[Event] = []
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    waiter = SteppedTime(rig.advance, lambda: float(rig.cabinet.env.now))
    runner = Runner(session, waiter, NoHands(), events.append)
    runner.next_line(POCKET)
    assert runner.scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "B1")).status == ("accepted")
    rig.cabinet.sim_inject_fault("lock_no_reengage", LID_LOCK)
    assert runner.unlock()
    held = ExitStack()
    seen = {"opened": False, "closed": False, "released": False}

    def refused() -> list[Event]:
        return [e for e in events if e.kind == "database"]

    def person(status: AccessStatus) -> None:
        if status.state is State.UNLOCKED and not seen["opened"]:
            rig.advance(0.05)
            assert rig.cabinet.sim_open(DRAWER) and rig.cabinet.sim_open(POCKET)
            seen["opened"] = True
        elif status.state is State.OPEN and (status.open_s or 0) > 1.5 and not seen["closed"]:
            held.enter_context(_stalled(site.url, CABINET))  # the relock is judged while held
            rig.cabinet.sim_close(DRAWER)
            seen["closed"] = True
        elif seen["closed"] and refused() and not seen["released"]:
            assert _events(site) == []  # not recorded while the lock is held
            held.close()
            seen["released"] = True

    try:
        assert runner.access(person) == "closed"
    finally:
        held.close()
    assert seen["released"]
    (said,) = refused()  # said once, however many reads it took
    assert said.data["step"] == "alarm" and "is busy" in said.data["reason"]
    assert _events(site) == [("relock-failed", DRAWER, POCKET)]
    with site.ctl.read() as s:
        actions = [
            a for a in s.execute(select(AuditEntry.action)).scalars() if a.startswith("maint")
        ]
    assert actions == ["maintenance.failed"]
    assert [f.kind for f in maintenance.out_of_service(site.ctl, CABINET)[DRAWER]] == [
        "relock-failed"
    ]
    assert runner.leave("test: nothing moved")  # the scale weighed nothing moved
    with site.ctl.read() as s:
        rows = s.execute(select(AccessLog.closed_at)).scalars().all()
    assert len(rows) == 1 and rows[0] is not None


def _events(site: Site) -> list[tuple[str, str | None, str | None]]:
    with site.ctl.read() as s:
        rows = s.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars()
        return [(e.kind, e.drawer_code, e.pocket_code) for e in rows]


def test_an_access_the_database_could_not_close_is_closed_later_in_the_session(
    w1: tuple[Site, Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line is recorded, then its access cannot be closed (the database failed just then):
    the runner closes it once the database answers (here: at the end of the session), so the
    next start does not flag a drawer whose line was recorded."""
    from adc.controller import access as access_module

    site, rig = w1
    real = access_module.close_access
    failed: list[int | None] = []

    def fails_once(ctl: object, access_id: int | None, outcome: str) -> bool:
        if not failed:
            failed.append(access_id)
            return False  # what close_access answers when the database cannot take it
        return real(ctl, access_id, outcome)  # type: ignore[arg-type]

    monkeypatch.setattr(access_module, "close_access", fails_once)
    events: list[Event] = []
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    waiter = SteppedTime(rig.advance, lambda: float(rig.cabinet.env.now))
    runner = Runner(session, waiter, NoHands(), events.append)
    runner.next_line(POCKET)
    runner.scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "C1"))
    assert runner.unlock()
    seen = {"opened": False, "closed": False}

    def person(status: AccessStatus) -> None:
        if status.state is State.UNLOCKED and not seen["opened"]:
            rig.advance(0.05)
            assert rig.cabinet.sim_open(DRAWER) and rig.cabinet.sim_open(POCKET)
            seen["opened"] = True
        elif status.state is State.OPEN and (status.open_s or 0) > 1.0 and not seen["closed"]:
            rig.cabinet.sim_add(POCKET, 4, 4.6)
            rig.cabinet.sim_close(DRAWER)
            seen["closed"] = True

    assert runner.access(person) == "closed"
    runner.record(None)
    assert failed and failed[0] is not None
    with site.ctl.read() as s:
        assert s.execute(select(AccessLog.closed_at)).scalars().all() == [None]
    notes = [e.data["text"] for e in events if e.kind == "note"]
    assert any("could not be closed" in n for n in notes)
    runner.finish()
    with site.ctl.read() as s:
        rows = s.execute(select(AccessLog.closed_at, AccessLog.outcome)).all()
    assert len(rows) == 1 and rows[0][0] is not None and rows[0][1] == "recorded"
    notes = [e.data["text"] for e in events if e.kind == "note"]
    assert any("now closed on record (recorded)" in n for n in notes)


def test_a_partial_unlock_the_database_could_not_record_flags_the_drawer(
    w1: tuple[Site, Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the lid's lock was released (the drawer's re-arms after another master's pulse) and
    the database fails while the partial unlock is recorded: a lock went out with nothing on
    record of it, so the runner fails closed: the drawer is flagged for a blind recount (once the
    database answers) and the line is left; no retry unlocks it again."""
    from adc.controller import access as access_module
    from adc.controller.dberrors import DatabaseUnavailable

    site, rig = w1
    real = access_module.raise_alarm
    calls: list[str] = []

    def busy_once(*args: object, **kwargs: object) -> object:
        calls.append(str(args[2]))
        if len(calls) == 1:
            raise DatabaseUnavailable("the database is busy: test; nothing of it was recorded")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(access_module, "raise_alarm", busy_once)
    events: list[Event] = []
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    waiter = SteppedTime(rig.advance, lambda: float(rig.cabinet.env.now))
    runner = Runner(session, waiter, NoHands(), events.append)
    runner.next_line(POCKET)
    runner.scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "P1"))
    rig.cabinet.device("lb0").unlock(2)  # another master: D3's drawer lock re-arms for 2 s
    rig.advance(0.6)
    assert runner.unlock() is False
    assert calls == ["alarm-partial-unlock", "failed"]
    assert runner.database_refused is None and runner.halted is None
    assert session.line is None  # left: nothing offers to unlock it again
    assert _events(site) == [("failed", DRAWER, POCKET)]
    assert [f.kind for f in maintenance.out_of_service(site.ctl, CABINET)[DRAWER]] == ["failed"]
    (flagged,) = [e for e in events if e.kind == "interrupted"]
    assert flagged.data["action"] == "flagged-for-recount"
    assert "the database failed during the unlock" in flagged.data["reason"]
    with site.ctl.read() as s:
        rows = s.execute(select(AccessLog.closed_at)).scalars().all()
    assert len(rows) == 1 and rows[0] is not None
