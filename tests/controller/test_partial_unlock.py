"""A drawer and its pocket's own lock that were not released together (`PartialUnlock`), over the
sim backend: recorded with every lock named, raised as `UnlockIncomplete`, and left so the
person can try again (the drawer stayed locked) or leave cleanly (the drawer may have opened:
out of service, fail closed).

Cabinet W1 is rs485-2bus: drawer D3's lock is lb0:lock.2, its pocket D3-P1's lid lock lb1:lock.0
on the other lock board. The driver pulses the pocket's own lock first, so a drawer lock that
another master left re-arming (the driver cannot see it) is refused after the lid went out; a
lock board that stops answering after the lid pulse leaves the drawer lock unconfirmed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import cabinets, inventory, maintenance, withdrawal
from adc.controller.gs1 import parse_scan
from adc.controller.models import AuditEntry, MaintenanceEvent
from adc.controller.restock import State, begin_restock
from adc.controller.withdrawal import Phase, UnlockIncomplete
from adc.drivers.base import PartialUnlock, RearmRefused
from adc.errors import Refused
from tests.controller.rig import Person, SimClock, sim_driver
from tests.controller.site import CABINET, ONDANSETRON_VIAL, Site, build_site, datamatrix

DRAWER_LOCK, LID_LOCK = "lb0:lock.2", "lb1:lock.0"
GOOD = date(2027, 6, 30)
VIAL_G = 4.6


@pytest.fixture
def w1(db_url: str) -> Iterator[tuple[Site, Any]]:
    driver = sim_driver("rs485-2bus")
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
    site.assign("D3-P1", ONDANSETRON_VIAL, par=4, critical_low=1, max_qty=6)
    site.assign("D3-P2", ONDANSETRON_VIAL, par=4, critical_low=1, max_qty=6)
    yield site, driver
    site.ctl.db.close()


def _stock(site: Site, pocket: str, qty: int) -> None:
    inventory.refill(
        site.ctl,
        site.tech,
        CABINET,
        pocket,
        parse_scan(datamatrix(ONDANSETRON_VIAL, GOOD, "OV1")),
        qty,
    )


def _drawer_lock_rearming(driver: Any) -> None:
    """Another master pulses drawer D3's lock on the board itself; its pulse is over (nobody
    pulled), but it re-arms for 2 s, which the driver under test cannot know."""
    driver.cabinet.device("lb0").unlock(2)
    driver.advance(0.6)


def _board_goes_silent_after_the_lid(driver: Any) -> None:
    """Lock board lb0 stops answering between the lid's pulse and the drawer's."""
    pulse = driver.pulse

    def pulse_then_fail(point: str) -> None:
        pulse(point)
        if point == LID_LOCK:
            driver.cabinet.sim_inject_fault("device_offline", "lb0")

    driver.pulse = pulse_then_fail


class _NotAllOrNothing:
    """The sim driver behind a lock module that is not all-or-nothing: the drawer lock goes out,
    the pocket's lock is refused (re-arming) after it."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def unlock_together(self, points: Sequence[str]) -> None:
        self._driver.pulse(DRAWER_LOCK)
        rest = [p for p in points if p != DRAWER_LOCK]
        raise PartialUnlock([DRAWER_LOCK], rest, RearmRefused(rest[0], 1500))


def _events(site: Site) -> list[MaintenanceEvent]:
    with site.ctl.read() as s:
        return list(s.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars())


def _audit(site: Site, action: str) -> list[dict[str, Any]]:
    with site.ctl.read() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars()
        return [json.loads(r.payload) for r in rows]


# ------------------------------------------------------------------------------- withdrawal
def test_a_withdrawal_whose_drawer_stayed_locked_records_an_alarm_and_may_try_again(w1) -> None:
    site, driver = w1
    _stock(site, "D3-P1", 4)
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D3-P1", 1)
    _drawer_lock_rearming(driver)
    with pytest.raises(UnlockIncomplete) as failed:
        w.unlock()
    err = failed.value
    assert isinstance(err, PartialUnlock)  # callers catching the driver's error still do
    assert (err.released, err.not_released, err.unconfirmed) == ((LID_LOCK,), (DRAWER_LOCK,), ())
    assert not err.out_of_service and err.alarm.kind == "alarm-partial-unlock"
    assert f"pocket D3-P1's lock {LID_LOCK} opened" in err.message
    assert f"drawer D3's lock {DRAWER_LOCK} did not" in err.message
    assert "Drawer D3 stayed locked: try again" in err.message
    (event,) = _events(site)
    assert (event.kind, event.drawer_code, event.pocket_code) == (
        "alarm-partial-unlock",
        "D3",
        "D3-P1",
    )
    assert f"released {LID_LOCK}; not released {DRAWER_LOCK}" in event.detail
    assert "withdrawal by nurse" in event.detail
    (audited,) = _audit(site, "maintenance.alarm")
    assert audited["id"] == event.id and audited["point"] == DRAWER_LOCK
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    assert not driver.cabinet.sim_open("D3"), "the drawer stayed locked"
    assert w.phase is Phase.READY and w.unlocked_at is None
    with pytest.raises(Refused):
        w.record()  # nothing was unlocked: nothing can be recorded

    with pytest.raises(RearmRefused):  # the lid's own re-arm window: nothing pulsed
        w.unlock()
    driver.advance(2.5)
    w.unlock()  # try again: both released together
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D3") and driver.cabinet.sim_open("D3-P1")
    assert w.poll() is Phase.OPEN
    (removal,) = w.record()
    assert removal.on_hand == 3


def test_a_withdrawal_whose_drawer_lock_did_not_answer_takes_the_drawer_out(w1) -> None:
    site, driver = w1
    _stock(site, "D3-P1", 4)
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D3-P1", 1)
    _board_goes_silent_after_the_lid(driver)
    with pytest.raises(UnlockIncomplete) as failed:
        w.unlock()
    err = failed.value
    assert err.unconfirmed == (DRAWER_LOCK,) and err.out_of_service
    assert "did not answer and may have opened" in err.message
    assert "Close drawer D3: it is out of service" in err.message
    (event,) = _events(site)
    assert event.kind == "partial-unlock" and event.pocket_code == "D3-P1"
    assert f"sent but not confirmed (may have pulsed) {DRAWER_LOCK}" in event.detail
    assert f"released {LID_LOCK}" in event.detail
    assert [f.kind for f in maintenance.out_of_service(site.ctl, CABINET)["D3"]] == [
        "partial-unlock"
    ]
    assert _audit(site, "maintenance.failed")[0]["id"] == event.id
    assert w.phase is Phase.FAILED and w.alarms == [err.alarm]
    with pytest.raises(Refused):
        w.unlock()  # fail closed: no second pulse on a drawer out of service
    with pytest.raises(Refused):
        w.record()
    w.finish()
    assert w.phase is Phase.FAILED
    driver.cabinet.sim_clear_fault("device_offline", "lb0")
    with pytest.raises(Refused, match="drawer D3 is out of service"):
        withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D3-P2", 1)


def test_a_drawer_released_over_a_shut_pocket_is_a_failure(w1) -> None:
    """A module that is not all-or-nothing let the drawer lock go and refused the pocket's: the
    drawer may open with nothing recorded for what is in it; it leaves service."""
    site, driver = w1
    _stock(site, "D3-P1", 4)
    w = withdrawal.begin_withdrawal(
        site.ctl, _NotAllOrNothing(driver), CABINET, site.nurse, "D3-P1", 1
    )
    with pytest.raises(UnlockIncomplete) as failed:
        w.unlock()
    err = failed.value
    assert err.out_of_service and err.released == (DRAWER_LOCK,)
    assert f"drawer D3's lock {DRAWER_LOCK} opened, pocket D3-P1's lock {LID_LOCK} did not" in (
        err.message
    )
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D3")  # the drawer really was reachable
    assert "D3" in maintenance.out_of_service(site.ctl, CABINET)
    assert w.phase is Phase.FAILED


# ---------------------------------------------------------------------------- restock line
def _restock_line(site: Site, driver: Any) -> Any:
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    session.select("D3-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "OV2"))
    assert session.state is State.READY_TO_UNLOCK
    return session


def test_a_restock_line_whose_drawer_stayed_locked_can_be_unlocked_again(w1) -> None:
    site, driver = w1
    session = _restock_line(site, driver)
    _drawer_lock_rearming(driver)
    with pytest.raises(UnlockIncomplete) as failed:
        session.unlock()
    assert not failed.value.out_of_service
    (event,) = _events(site)
    assert event.kind == "alarm-partial-unlock"
    assert "restock by technician" in event.detail
    assert f"released {LID_LOCK}; not released {DRAWER_LOCK}" in event.detail
    assert session.state is State.READY_TO_UNLOCK and session.line.unlocked_at is None

    driver.advance(2.5)  # both re-armed
    person = Person(session)
    session.unlock()
    assert person.open("D3", "D3-P1") is State.OPEN
    person.cabinet.sim_add("D3-P1", 4, VIAL_G)
    assert person.close("D3") is State.CLOSED
    assert session.confirm_quantity().on_hand == 4


def test_a_restock_line_whose_drawer_may_have_opened_is_left_cleanly(w1) -> None:
    site, driver = w1
    session = _restock_line(site, driver)
    _board_goes_silent_after_the_lid(driver)
    with pytest.raises(UnlockIncomplete) as failed:
        session.unlock()
    assert failed.value.out_of_service
    (event,) = _events(site)
    assert event.kind == "partial-unlock" and "restock by technician" in event.detail
    assert session.state is State.READY_TO_UNLOCK
    driver.cabinet.sim_clear_fault("device_offline", "lb0")
    driver.advance(3)  # every pulse over and re-armed
    with pytest.raises(Refused, match="drawer D3 is out of service: pocket D3-P1: partial-unlock"):
        session.unlock()  # fail closed: not pulsed again
    driver.advance(0.05)
    assert driver.cabinet.lock_holding(DRAWER_LOCK) and driver.cabinet.lock_holding(LID_LOCK)
    with pytest.raises(Refused, match="nothing to abandon"):
        session.abandon("partial unlock")  # nothing was unlocked for this line
    session.cancel()  # leave it: the failure already flags the drawer for a blind recount
    assert session.state is State.IDLE and session.line is None
    assert session.next_line() is None  # D3 holds the only lines: none offered
    assert len(_events(site)) == 1
    session.end()
