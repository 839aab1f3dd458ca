"""A `sim:` backend starts with what the records say each pocket holds (issue 20 item 4: `take 3`
from a pocket the records call empty printed "took 3 out of D2-P1", and after `add 6` and close
the scale counted 5 added: the virtual cabinet had started with its profile's default packs)."""

from __future__ import annotations

from datetime import date

from adc.controller import inventory
from adc.controller.access import service_pulse
from adc.controller.contents import recorded_contents
from adc.controller.gs1 import parse_scan
from adc.drivers.registry import open_backend
from adc.session.simhands import SimHands, mirror_records
from tests.controller.site import CABINET, ONDANSETRON_VIAL, datamatrix
from tests.session.helpers import SessionSite


def test_the_virtual_cabinet_holds_what_the_records_say(session_site: SessionSite) -> None:
    site = session_site.site
    scan = parse_scan(datamatrix(ONDANSETRON_VIAL, date(2028, 6, 30), "OV1"))
    inventory.refill(site.ctl, site.tech, CABINET, "D1-P1", scan, 5)
    driver = open_backend("sim:tcp-6drawer")
    try:
        cabinet = driver.cabinet  # type: ignore[attr-defined]
        assert len(cabinet.units("D2-P1")) == 10  # the profile's initial_units before the mirror
        mirrored = mirror_records(driver, recorded_contents(site.ctl, CABINET))
        assert mirrored >= 4
        assert cabinet.units("D1-P1") == [4.6] * 5  # the item's unit weight, the recorded count
        assert cabinet.units("D2-P1") == []  # heparin: none on record
        line = type("Line", (), {"pocket": "D2-P1", "drawer": "D2"})()
        service_pulse(driver, "dio1:coil.1")  # D2's lock
        driver.advance(0.05)  # type: ignore[attr-defined]
        assert cabinet.sim_open("D2")
        done = SimHands(cabinet).take(line, 3)  # type: ignore[arg-type]
        assert not done.ok and "it holds 0" in done.message
    finally:
        driver.close()


def test_a_driver_without_a_virtual_cabinet_is_left_alone(session_site: SessionSite) -> None:
    assert mirror_records(object(), recorded_contents(session_site.site.ctl, CABINET)) == 0
