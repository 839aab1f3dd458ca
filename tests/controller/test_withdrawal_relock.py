"""A nurse's withdrawal judges the drawer's relock only once the unlock pulse is over.

While the solenoid pulse is on, a lock reads released by design; a drawer shut inside the pulse
must not be taken out of service for it. A bolt that stays out after the pulse (plus the grace a
latch gets) is a real relock failure (relock-failed): the drawer leaves service (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import cabinets, inventory, maintenance, withdrawal
from adc.controller.gs1 import parse_scan
from adc.controller.models import MaintenanceEvent
from adc.controller.restock import RELOCK_GRACE_S
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import CABINET, ONDANSETRON_VIAL, Site, build_site, datamatrix

VIAL_G = 4.6


@pytest.fixture
def board(db_url: str) -> Iterator[tuple[Site, Any]]:
    """rs485-2bus: drawer locks on a CU16 lock board, which reports each latch."""
    driver = sim_driver("rs485-2bus")
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
    site.assign("D1-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20)
    scan = parse_scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "W1"))
    inventory.refill(site.ctl, site.tech, CABINET, "D1-P1", scan, 10)
    driver.pulse("lb0:lock.0")  # the technician puts the vials in
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D1")
    driver.cabinet.sim_add("D1-P1", 10, VIAL_G)
    driver.cabinet.sim_close("D1")
    driver.advance(5)
    yield site, driver
    site.ctl.db.close()


def _events(site: Site) -> list[MaintenanceEvent]:
    with site.ctl.read() as s:
        return list(s.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars())


def _take_and_shut_fast(driver: Any, w: withdrawal.Withdrawal) -> withdrawal.Phase:
    """Open as the latch clicks, take one, shut at once: all well inside the 500 ms pulse."""
    w.unlock()
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D1")
    assert w.poll() is withdrawal.Phase.OPEN
    driver.cabinet.sim_take("D1-P1", 1)
    w.record()
    driver.cabinet.sim_close("D1")
    driver.advance(0.05)
    return w.poll()


def test_a_fast_close_during_the_pulse_is_no_relock_failure(board) -> None:
    site, driver = board
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D1-P1", 1)
    assert w.pulse_s == 0.5  # from the lock board's solenoid in the profile
    assert _take_and_shut_fast(driver, w) is withdrawal.Phase.CLOSED
    assert not driver.lock_engaged("lb0:lock.0")  # the pulse is on: released by design
    for _ in range(20):
        driver.advance(0.1)
        w.poll()
    assert w.phase is withdrawal.Phase.CLOSED and w.alarms == []
    assert driver.lock_engaged("lb0:lock.0")
    assert _events(site) == []
    assert maintenance.out_of_service(site.ctl, CABINET) == {}


def test_a_bolt_that_stays_out_after_the_pulse_takes_the_drawer_out_of_service(board) -> None:
    site, driver = board
    driver.cabinet.sim_inject_fault("lock_no_reengage", "lb0:lock.0")
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D1-P1", 1)
    assert _take_and_shut_fast(driver, w) is withdrawal.Phase.CLOSED
    driver.advance(0.6)  # the pulse is over, the bolt still out: the latch gets its grace
    assert w.poll() is withdrawal.Phase.CLOSED and _events(site) == []
    driver.advance(RELOCK_GRACE_S)
    assert w.poll() is withdrawal.Phase.FAILED
    (event,) = _events(site)
    assert (event.kind, event.drawer_code) == ("relock-failed", "D1")
    assert "lb0:lock.0 not engaged after the close and the 0.5 s pulse" in event.detail
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D1"]
    w.poll()
    assert len(_events(site)) == 1  # judged once


def test_a_drawer_switch_stuck_closed_is_caught_by_the_open_lid_inside(board) -> None:
    """D2's pockets have lids inside the drawer: a lid that reads open while the drawer switch
    reads closed cannot be, so the drawer switch has failed and the drawer leaves service. What
    the nurse took in that access is still recorded."""
    site, driver = board
    site.assign("D2-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20)
    scan = parse_scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "W2"))
    inventory.refill(site.ctl, site.tech, CABINET, "D2-P1", scan, 6)
    driver.cabinet.sim_inject_fault("switch_stuck", "dio1:di.1", active=True)
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D2-P1", 1)
    w.unlock()
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D2") and driver.cabinet.sim_open("D2-P1")
    assert driver.input_active("dio1:di.1")  # the stuck switch says the drawer is shut
    assert w.poll() is withdrawal.Phase.FAILED
    (event,) = _events(site)
    assert (event.kind, event.drawer_code) == ("switch-failed", "D2")
    assert "dio1:di.1 reads drawer D2 closed while" in event.detail
    assert [m.on_hand for m in w.record()] == [5]  # the access is recorded all the same
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D2"]
