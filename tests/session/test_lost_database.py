"""Lost connection to the central database during a restock session (issue 16 item 3), at the
hardware level: cabinet W1 on the Modbus TCP emulator (the test is the person at it), the
database PostgreSQL reached through a TCP proxy the test cuts while drawer D1 is open (the
server unreachable: every connection dropped, new ones refused), or whose server backends the
test ends (pg_terminate_backend). The access ends relocked (the emulator's lock state), nobody
sees a traceback, and once the database is back the line is recorded once; or, when the session
ended first, the next start flags the drawer for a blind recount."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.controller.dbs import PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import fast_pins
from tests.session.busy import (
    DbSite,
    Events,
    build_db_site,
    load_and_close,
    next_start_flags_d1,
    proxy,
    pull,
    relocked,
)
from tests.session.helpers import emulator
from tests.session.test_busy_database import (
    LOCK,
    _script,
    _scripted,
    log_in,
    terminal,
    verified,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pg_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DbSite]:
    if not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    fast_pins(monkeypatch)
    url, drop = fresh_database("postgresql", tmp_path)
    yield build_db_site(url, tmp_path / "home")
    drop()


def test_unreachable_with_the_drawer_open_relocks_and_records_once_it_is_back(
    pg_site: DbSite,
) -> None:
    from tests.session.helpers import ONDANSETRON_VIAL, good_expiry, hri

    site = pg_site
    with (
        emulator() as (server, where),
        proxy(site.url) as relay,
        terminal(site, backend=f"modbus-tcp://{where}", via=relay.port) as child,
    ):
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "LOST1"))
        child.expect("drawer D1 unlocked — open it:")
        pull(server, "D1", LOCK)
        child.expect("put 10 into pocket")
        relay.cut()  # the central database is gone while the drawer is open
        load_and_close(server, "D1", "D1-P1", 10, 4.6)
        child.expect("The scale counts 10 added")
        child.sendline("")
        child.expect("connection to the database")
        child.expect("The record: the database did not take it")
        assert relocked(server, "D1", LOCK)
        assert site.actions("stock.refill") == 0
        child.sendline("")  # still gone: refused again, the line kept
        child.expect("The record: the database did not take it")
        relay.restore()
        child.sendline("")  # back: the next try reconnects
        child.expect("D1-P1 recorded")
        child.expect("Scan a pack")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        shown = "".join(child.transcript)  # type: ignore[attr-defined]
        assert relocked(server, "D1", LOCK)
    assert "Traceback" not in shown
    assert site.on_hand("D1-P1") == 10 and site.actions("stock.refill") == 1
    assert site.accesses() == [("D1", "D1-P1", True, "recorded")]
    verified(site)


def test_backends_terminated_with_the_drawer_open_the_record_reconnects(
    pg_site: DbSite, tmp_path: Path
) -> None:
    site = pg_site
    with emulator() as (server, where):
        run = _scripted(site, _script(tmp_path, "LOST2"), where)
        events = Events(run.stdout)
        try:
            events.wait("unlocked")
            pull(server, "D1", LOCK)
            events.wait("opened")
            assert site.terminate_sessions() >= 1  # the session's pooled connections end
            load_and_close(server, "D1", "D1-P1", 10, 4.6)
            run.wait(60)
        finally:
            if run.poll() is None:
                run.kill()
        stderr = run.stderr.read() if run.stderr else ""
        events.thread.join(5)
        assert relocked(server, "D1", LOCK)
    assert run.returncode == 0, (events.seen[-4:], stderr)
    assert "Traceback" not in stderr
    assert [(e["pocket"], e["qty"]) for e in events.of("recorded")] == [("D1-P1", 10)]
    assert site.on_hand("D1-P1") == 10 and site.actions("stock.refill") == 1
    assert site.accesses() == [("D1", "D1-P1", True, "recorded")]
    verified(site)


def test_unreachable_to_the_end_of_the_session_the_next_start_flags_the_access(
    pg_site: DbSite, tmp_path: Path
) -> None:
    site = pg_site
    with emulator() as (server, where), proxy(site.url) as relay:
        run = _scripted(site, _script(tmp_path, "LOST3"), where, via=relay.port)
        events = Events(run.stdout)
        try:
            events.wait("unlocked")
            pull(server, "D1", LOCK)
            events.wait("opened")
            relay.cut()
            load_and_close(server, "D1", "D1-P1", 10, 4.6)
            run.wait(60)
        finally:
            if run.poll() is None:
                run.kill()
        stderr = run.stderr.read() if run.stderr else ""
        events.thread.join(5)
        assert relocked(server, "D1", LOCK)
    assert run.returncode == 1, (events.seen[-4:], stderr)
    assert "Traceback" not in stderr
    refused = events.of("database")
    assert [e["step"] for e in refused] == ["record"] * 3, refused
    assert all("connection to the database" in e["reason"] for e in refused), refused
    (left,) = [e for e in events.of("interrupted") if e["action"] == "flag-at-next-start"]
    assert left["pocket"] == "D1-P1" and left["locked"] is True
    assert site.accesses() == [("D1", "D1-P1", False, None)]
    # the database is back (the next command connects directly): it flags the drawer
    next_start_flags_d1(site, tmp_path)
    kinds = site.rows("SELECT drawer_code, kind FROM maintenance_event")
    assert kinds == [("D1", "failed")]
    assert site.actions("stock.refill") == 0
    verified(site)


def test_ctrl_c_while_the_database_is_gone_leaves_the_access_for_the_next_start(
    pg_site: DbSite, tmp_path: Path
) -> None:
    from tests.session.helpers import ONDANSETRON_VIAL, good_expiry, hri

    site = pg_site
    with (
        emulator() as (server, where),
        proxy(site.url) as relay,
        terminal(site, backend=f"modbus-tcp://{where}", via=relay.port) as child,
    ):
        log_in(child)
        child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "LOST4"))
        child.expect("drawer D1 unlocked — open it:")
        pull(server, "D1", LOCK)
        child.expect("put 10 into pocket")
        relay.cut()
        load_and_close(server, "D1", "D1-P1", 10, 4.6)
        child.expect("The scale counts 10 added")
        child.sendintr()  # the record (the scale's count) and the flag are tried, both refused
        child.expect("leaving the cabinet safe")
        child.expect("D1-P1 not recorded")
        child.expect("flags drawer D1 for a blind recount")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        shown = "".join(child.transcript)  # type: ignore[attr-defined]
        assert relocked(server, "D1", LOCK)
    assert "Traceback" not in shown and "clean-up failed" not in shown
    assert site.accesses() == [("D1", "D1-P1", False, None)]
    assert site.actions("stock.refill") == 0
    next_start_flags_d1(site, tmp_path)
