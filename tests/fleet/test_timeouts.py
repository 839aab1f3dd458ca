"""No writer waits forever: a stalled transaction on cabinet W1 (another connection holding its
lock) leaves cabinet W2's removals free on PostgreSQL; a removal on W1, or a site-wide change,
is refused after the lock wait with one line, nothing of it written. SQLite has one writer: the
same stall refuses every change after the wait, cleanly."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from adc.controller import settings, users
from adc.controller.context import Controller
from adc.controller.db import cabinet_lock_sql, open_database
from adc.controller.dberrors import DatabaseUnavailable
from adc.controller.models import AuditEntry, Pocket, User
from tests.controller.site import PIN, START, ManualClock
from tests.fleet.fleet import POCKET, Fleet, stock_problems

WAIT_S = "1"


@contextmanager
def _stalled(url: str, cabinet: str) -> Iterator[None]:
    """Another connection holds `cabinet`'s writer lock (SQLite: the one write lock) in an open
    transaction until the block ends: a writer that stalled."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        holder = sqlite3.connect(parsed.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    options = parsed.query.get("options")
    conn = psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        dbname=parsed.database,
        options=options if isinstance(options, str) else None,
    )
    try:
        conn.execute(cabinet_lock_sql(1), (cabinet,))
        yield
    finally:
        conn.rollback()
        conn.close()


def _state(fleet: Fleet) -> tuple[int, dict[str, int]]:
    with fleet.site.ctl.read() as session:
        entries = session.execute(select(func.count()).select_from(AuditEntry)).scalar() or 0
        on_hand = dict(
            session.execute(
                select(Pocket.cabinet_id, Pocket.on_hand).where(Pocket.code == POCKET)
            ).all()
        )
    return entries, on_hand


@pytest.fixture
def waiting(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """The fleet with a 1 s lock wait (read when an engine is made) and stock in both pockets."""
    fleet.refill("W1", 10)
    fleet.refill("W2", 10)
    monkeypatch.setenv("ADC_DB_LOCK_TIMEOUT", WAIT_S)
    fleet.site.ctl.db.close()
    fleet.site.ctl = Controller(open_database(fleet.site.url), fleet.site.clock)
    return fleet


def test_a_stalled_cabinet_blocks_only_itself(waiting: Fleet) -> None:
    fleet = waiting
    postgres = fleet.site.ctl.db.dialect == "postgresql"
    before = _state(fleet)
    with _stalled(fleet.site.url, "W1"):
        if postgres:
            fleet.remove("W2", 1)  # done while W1's lock is still held: it never waited for it
        with pytest.raises(
            DatabaseUnavailable, match=r"^the database .*is busy: .*nothing of it was recorded"
        ):
            fleet.remove("W1", 1)
        if not postgres:
            with pytest.raises(DatabaseUnavailable, match="is busy"):
                fleet.remove("W2", 1)  # SQLite: one writer for the file
    entries, on_hand = _state(fleet)
    assert on_hand["W1"] == before[1]["W1"]  # the refused removal moved nothing
    assert on_hand["W2"] == before[1]["W2"] - (1 if postgres else 0)
    assert entries == before[0] + (1 if postgres else 0)
    assert stock_problems(fleet.site) == []
    fleet.remove("W1", 1)  # the stall over, the next change goes through


def test_a_site_wide_change_waits_for_a_stalled_cabinet_without_blocking_the_others(
    waiting: Fleet,
) -> None:
    fleet = waiting
    if fleet.site.ctl.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer lock: no cabinet runs beside another")
    outcome: list[BaseException | None] = []

    def site_change() -> None:
        ctl = Controller(open_database(fleet.site.url), ManualClock(START))
        try:
            settings.set_setting(ctl, fleet.site.admin, "short-dated-days", "9")
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)
        finally:
            ctl.db.close()

    with _stalled(fleet.site.url, "W1"):
        waiter = threading.Thread(target=site_change)
        waiter.start()
        fleet.remove("W2", 1)  # the site change is waiting meanwhile: W2 does not queue behind it
        assert waiter.is_alive() or outcome == [None]
        waiter.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], DatabaseUnavailable)
    assert "is busy" in str(outcome[0]) and "site-wide change waited 1 s" in str(outcome[0])


def test_postgresql_sessions_bound_every_wait(waiting: Fleet) -> None:
    if waiting.site.ctl.db.dialect != "postgresql":
        pytest.skip("PostgreSQL session settings")
    with waiting.site.ctl.read() as session:
        shown = {
            name: session.execute(select(func.current_setting(name))).scalar()
            for name in (
                "lock_timeout",
                "statement_timeout",
                "idle_in_transaction_session_timeout",
                "jit",
            )
        }
    assert shown == {
        "lock_timeout": "1s",
        "statement_timeout": "1min",
        "idle_in_transaction_session_timeout": "1min",
        "jit": "off",  # short queries: no compile of an over-estimated plan
    }


def test_an_access_on_a_stalled_cabinet_is_refused_before_any_unlock(waiting: Fleet) -> None:
    """The access row is written, under its cabinet's lock, before the unlock pulse: a cabinet
    whose lock is held cannot get it, so nothing is unlocked; another cabinet's access opens."""
    from adc.controller.access_log import DatabaseUnwritable, close_access, open_access

    fleet = waiting
    ctl, nurse = fleet.site.ctl, fleet.site.nurse
    postgres = ctl.db.dialect == "postgresql"
    with _stalled(fleet.site.url, "W1"):
        with pytest.raises(DatabaseUnwritable, match=r"is busy: .*nothing was unlocked$"):
            open_access(ctl, nurse, "W1", "D1", POCKET, "remove")
        if postgres:
            opened = open_access(ctl, nurse, "W2", "D1", POCKET, "remove")
            assert close_access(ctl, opened, "closed")  # the close waits for no cabinet either
    assert open_accesses_of(fleet, "W1") == 0


def open_accesses_of(fleet: Fleet, cabinet: str) -> int:
    from adc.controller.access_log import open_accesses

    return len(open_accesses(fleet.site.ctl, cabinet))


def test_a_login_does_not_wait_for_a_stalled_cabinet(waiting: Fleet) -> None:
    """A right PIN with no failed attempts to clear writes nothing: a nurse logs in at W2 at once
    while W1 is stalled (on SQLite too). A wrong PIN is recorded, so it waits and is refused
    cleanly, its attempt not counted."""
    fleet = waiting
    with _stalled(fleet.site.url, "W1"):
        started = time.monotonic()
        actor = users.authenticate(fleet.site.ctl, "nurse", PIN)
        took = time.monotonic() - started
        assert actor.username == "nurse"
        assert took < float(WAIT_S) / 2, f"a login waited {took:.2f} s for a stalled cabinet"
        with pytest.raises(DatabaseUnavailable, match="is busy"):
            users.authenticate(fleet.site.ctl, "nurse", "0000")
    with fleet.site.ctl.read() as session:
        assert (
            session.execute(select(User.failed_attempts).where(User.username == "nurse")).scalar()
            == 0
        )
