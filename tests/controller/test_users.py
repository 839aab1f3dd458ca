"""Users: PIN storage, authentication, lock-out, bootstrap."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from adc.controller import users
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import init_database, open_database
from adc.controller.models import AuditEntry, User
from adc.errors import BadInput, Refused
from tests.controller.site import PIN, START, Site


def test_pins_are_salted_scrypt_hashes() -> None:
    first, second = users.hash_pin("2468"), users.hash_pin("2468")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$") and "2468" not in first
    assert users.pin_matches("2468", first) and users.pin_matches("2468", second)
    assert not users.pin_matches("2469", first)
    assert not users.pin_matches("2468", "plain$2468")


def test_production_cost_is_recorded_in_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the fixture lowered N for speed; check the real parameters
    _, n, r, p, _salt, _digest = users.hash_pin("2468").split("$")
    assert (int(n), int(r), int(p)) == (2**14, 8, 1)


def test_stored_pin_is_never_the_pin(site: Site) -> None:
    with site.ctl.read() as session:
        stored = session.execute(select(User.pin_hash)).scalars().all()
    assert stored and all(PIN not in value for value in stored)


def test_authenticate_checks_the_pin(site: Site) -> None:
    actor = users.authenticate(site.ctl, "Nurse", PIN)  # user names are case-insensitive
    assert (actor.username, actor.role) == ("nurse", "nurse")
    with pytest.raises(BadInput, match="unknown user 'nobody'"):
        users.authenticate(site.ctl, "nobody", PIN)


def test_wrong_pins_are_counted_audited_and_lock_the_account(site: Site) -> None:
    limit = site.ctl.policy.max_pin_failures
    for attempt in range(1, limit):
        with pytest.raises(
            BadInput, match=f"wrong PIN for nurse \\(failed attempt {attempt} of {limit}\\)"
        ):
            users.authenticate(site.ctl, "nurse", "0000")
    with pytest.raises(Refused, match=f"locked after {limit} failed attempts"):
        users.authenticate(site.ctl, "nurse", "0000")
    with pytest.raises(Refused, match="locked out"):
        users.authenticate(site.ctl, "nurse", PIN)  # even the right PIN
    with site.ctl.read() as session:
        failed = (
            session.execute(select(AuditEntry).where(AuditEntry.action == "user.pin_failed"))
            .scalars()
            .all()
        )
    assert len(failed) == limit and all(e.actor == "nurse" for e in failed)
    assert '"locked":true' in failed[-1].payload
    users.unlock_user(site.ctl, site.admin, "nurse")
    assert users.authenticate(site.ctl, "nurse", PIN).username == "nurse"


def test_a_good_pin_resets_the_failure_count(site: Site) -> None:
    for _ in range(site.ctl.policy.max_pin_failures - 1):
        with pytest.raises(BadInput):
            users.authenticate(site.ctl, "nurse", "0000")
    users.authenticate(site.ctl, "nurse", PIN)
    with pytest.raises(BadInput, match="failed attempt 1 of"):
        users.authenticate(site.ctl, "nurse", "0000")


def test_disabled_users_cannot_log_in_and_admins_cannot_disable_themselves(site: Site) -> None:
    users.disable_user(site.ctl, site.admin, "nurse")
    with pytest.raises(Refused, match="nurse is disabled"):
        users.authenticate(site.ctl, "nurse", PIN)
    with pytest.raises(Refused, match="cannot disable your own account"):
        users.disable_user(site.ctl, site.admin, "admin")
    listed = {u.username: u for u in users.list_users(site.ctl)}
    assert not listed["nurse"].active and listed["admin"].active


def test_bootstrap_only_on_an_empty_database_and_only_an_admin(db_url: str) -> None:
    db = open_database(db_url, create=True)
    init_database(db, START)
    ctl = Controller(db, ManualClock(START))
    with pytest.raises(Refused, match="first user of a database must be an admin"):
        users.add_user(ctl, None, "first", "nurse", PIN)
    users.add_user(ctl, None, "first", "admin", PIN)
    with pytest.raises(Refused, match="users exist already"):
        users.add_user(ctl, None, "second", "admin", PIN)
    assert [u.username for u in users.list_users(ctl)] == ["first"]


@pytest.mark.parametrize(
    ("name", "role", "pin", "message"),
    [
        ("x", "nurse", "1234", "user name 'x' is not valid"),
        ("9lives", "nurse", "1234", "is not valid"),
        ("ann", "doctor", "1234", "unknown role 'doctor'"),
        ("ann", "nurse", "12a4", "a PIN is 4 to 12 digits"),
        ("ann", "nurse", "123", "a PIN is 4 to 12 digits"),
        ("nurse", "nurse", "1234", "user nurse exists already"),
    ],
)
def test_bad_user_input(site: Site, name: str, role: str, pin: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        users.add_user(site.ctl, site.admin, name, role, pin)
