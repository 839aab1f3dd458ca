"""The restock session catches a drawer switch stuck closed: a lid inside the drawer reading open
while the drawer's switch reads closed cannot be, so the drawer leaves service (fail closed). The
line itself is still recorded."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from adc.controller import cabinets, maintenance
from adc.controller.models import MaintenanceEvent
from adc.controller.restock import State, begin_restock
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import CABINET, ONDANSETRON_VIAL, build_site, datamatrix

VIAL_G = 4.6


def test_a_drawer_switch_stuck_closed_is_caught_by_the_open_lid(db_url: str) -> None:
    driver = sim_driver("rs485-2bus")  # D2's pockets have lids; dio1:di.1 is D2's switch
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    try:
        cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
        site.assign("D2-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20)
        cabinet = driver.cabinet
        cabinet.sim_inject_fault("switch_stuck", "dio1:di.1", active=True)
        session = begin_restock(site.ctl, driver, CABINET, site.tech)
        session.select("D2-P1")
        session.scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "SW1"))
        session.unlock()
        driver.advance(0.05)
        assert cabinet.sim_open("D2") and cabinet.sim_open("D2-P1")
        assert session.poll() is State.OPEN
        with site.ctl.read() as s:
            (event,) = s.execute(select(MaintenanceEvent)).scalars().all()
        assert (event.kind, event.drawer_code, event.pocket_code) == (
            "switch-failed",
            "D2",
            "D2-P1",
        )
        assert "dio1:di.1 reads drawer D2 closed while" in event.detail
        assert any("switch reads closed while the pocket is open" in n for n in session.line.notes)
        session.poll()  # seen once: recorded once
        cabinet.sim_add("D2-P1", 4, VIAL_G)
        cabinet.sim_close("D2-P1")
        cabinet.sim_close("D2")
        for _ in range(40):
            if session.poll() is State.CLOSED:
                break
            driver.advance(0.1)
        assert session.state is State.CLOSED
        assert session.confirm_quantity(4).on_hand == 4  # the line is recorded all the same
        failures = maintenance.out_of_service(site.ctl, CABINET)
        assert [f.kind for f in failures["D2"]] == ["switch-failed"]
    finally:
        site.ctl.db.close()
