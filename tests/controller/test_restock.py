"""The restock session against the virtual cabinet (sim backend through the driver port)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import simpy
from sqlalchemy import select

from adc.controller import inventory, recalls, reports
from adc.controller.gs1 import gtin_for_ndc
from adc.controller.models import Discrepancy, MaintenanceEvent, StockLot, Transaction
from adc.controller.restock import LineKind, RestockSession, State, begin_restock
from adc.errors import BadInput, Refused
from tests.controller.rig import Person, SimClock, sim_driver
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    HEPARIN,
    MIDAZOLAM,
    ONDANSETRON_VIAL,
    Site,
    build_site,
    datamatrix,
    digital_link,
    hri,
)

VIAL_G = 4.6  # ondansetron vial
HEPARIN_G = 4.5
GOOD = date(2027, 6, 30)


@pytest.fixture
def rig(db_url: str) -> Iterator[tuple[Site, RestockSession, Person]]:
    driver = sim_driver()
    site = build_site(db_url, SimClock(driver))
    site.assign("D1-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20)
    site.assign("D2-P1", HEPARIN, par=8, critical_low=2, max_qty=12)
    site.assign("D6-P1", ACETAMINOPHEN, par=30, critical_low=5, max_qty=50)  # no sensor
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    yield site, session, Person(session)
    site.ctl.db.close()


def _on_hand(site: Site, pocket: str) -> int:
    return next(p.on_hand for p in reports.pockets(site.ctl, CABINET) if p.pocket == pocket)


def test_a_refill_line_from_scan_to_record(rig) -> None:
    site, session, person = rig
    line = session.next_line()
    assert line is not None and line.pocket == "D1-P1" and line.need == 10  # critical first
    assert session.state is State.AWAITING_SCAN
    verdict = session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "ON4471", serial="100000001"))
    assert not verdict.short_dated and session.state is State.READY_TO_UNLOCK
    person.restock("D1", "D1-P1", 10, VIAL_G)
    movement = session.confirm_quantity()  # the scale counted the ten vials
    assert movement.qty == 10 and movement.on_hand == 10
    assert session.state is State.IDLE
    with site.ctl.read() as s:
        lot = s.execute(select(StockLot).where(StockLot.lot == "ON4471")).scalar_one()
        txn = s.execute(select(Transaction).where(Transaction.lot_id == lot.id)).scalar_one()
    assert (lot.qty, lot.expiry, lot.gtin) == (10, GOOD, ONDANSETRON_VIAL)
    assert (txn.kind, txn.qty, txn.session_id) == ("refill", 10, session.id)


def test_unlock_releases_only_that_pockets_locks_and_lights_its_guide(rig) -> None:
    _site, session, person = rig
    session.select("D1-P1")
    session.scan(hri(ONDANSETRON_VIAL, GOOD, "ON1"))
    session.unlock()
    person.wait(0.05)
    cabinet = person.cabinet
    assert not cabinet.lock_holding("dio1:coil.0")  # drawer D1
    for other in ("dio1:coil.1", "dio1:coil.2", "dio1:coil.6", "dio1:coil.14"):
        assert cabinet.lock_holding(other), other
    assert session.driver.snapshot().lights["dio1:coil.26"] is True  # D1-P1's guide light
    assert person.open("D1") is State.OPEN
    person.cabinet.sim_add("D1-P1", 2, VIAL_G)
    assert person.close("D1") is State.CLOSED
    session.confirm_quantity()
    assert session.driver.snapshot().lights["dio1:coil.26"] is False


@pytest.mark.parametrize("form", [datamatrix, hri, digital_link])
def test_every_scan_form_is_accepted(rig, form) -> None:
    _site, session, _person = rig
    session.select("D1-P1")
    verdict = session.scan(form(ONDANSETRON_VIAL, GOOD, "L-77"))
    assert verdict.item.startswith("Ondansetron 2 mg/mL")
    assert session.line is not None and session.line.scan.lot == "L-77"


def test_refusals_state_the_reason_and_keep_the_state(rig) -> None:
    site, session, _person = rig
    recalls.add_recall(site.ctl, site.pharmacist, ONDANSETRON_VIAL, "BAD1", "particulates")
    session.select("D1-P1")
    cases = [
        (datamatrix(HEPARIN, GOOD, "H1"), Refused, "wrong drug: scanned Heparin"),
        (datamatrix(gtin_for_ndc("9999999999"), GOOD, "X"), Refused, "not in the formulary"),
        (datamatrix(ONDANSETRON_VIAL, date(2026, 3, 1), "OLD"), Refused, "expired lot"),
        (datamatrix(ONDANSETRON_VIAL, GOOD, "BAD1"), Refused, "recalled lot"),
        # the scanner lost the GS after the lot: the expiry became part of it
        (f"01{ONDANSETRON_VIAL}10AB17{GOOD:%y%m%d}", BadInput, "implausible lot"),
        ("not a barcode", BadInput, "malformed barcode"),
    ]
    for raw, error, reason in cases:
        with pytest.raises(error, match=reason):
            session.scan(raw)
        assert session.state is State.AWAITING_SCAN
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "OK1"))
    assert session.state is State.READY_TO_UNLOCK


def test_short_dated_stock_needs_explicit_confirmation(rig) -> None:
    site, session, person = rig
    soon = site.ctl.today() + timedelta(days=10)
    session.select("D1-P1")
    verdict = session.scan(datamatrix(ONDANSETRON_VIAL, soon, "SD1"))
    assert verdict.short_dated and verdict.days_left == 10
    assert session.state is State.NEEDS_CONFIRMATION
    with pytest.raises(Refused, match="needs ready-to-unlock"):
        session.unlock()
    session.confirm_short_dated()
    person.restock("D1", "D1-P1", 3, VIAL_G)
    assert session.confirm_quantity().on_hand == 3
    with pytest.raises(Refused, match="short-dated"):  # the rule also holds without a session
        inventory.refill(site.ctl, site.tech, CABINET, "D1-P1", session_scan(soon, "SD2"), 1)


def session_scan(expiry: date, lot: str):  # type: ignore[no-untyped-def]
    from adc.controller.gs1 import parse_scan

    return parse_scan(datamatrix(ONDANSETRON_VIAL, expiry, lot))


def test_scale_disagreeing_with_the_person_is_refused_unless_confirmed(rig) -> None:
    site, session, person = rig
    session.select("D2-P1")
    session.scan(datamatrix(HEPARIN, GOOD, "HP1"))
    person.restock("D2", "D2-P1", 6, HEPARIN_G)
    with pytest.raises(Refused, match="the scale counts 6 units added, you entered 8"):
        session.confirm_quantity(8)
    assert session.state is State.CLOSED
    movement = session.confirm_quantity(8, accept_discrepancy=True)
    assert movement.on_hand == 8 and movement.discrepancy_id is not None
    with site.ctl.read() as s:
        disc = s.get(Discrepancy, movement.discrepancy_id)
    assert (disc.trigger, disc.expected, disc.counted, disc.status) == ("sensor", 6, 8, "open")


def test_a_pocket_without_scale_needs_the_entered_quantity(rig) -> None:
    _site, session, person = rig
    session.select("D6-P1")
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "AC1"))
    person.restock("D6", "D6-P1", 0, 0.55)
    with pytest.raises(BadInput, match="enter the quantity"):
        session.confirm_quantity()
    with pytest.raises(Refused, match="at most 50 more, not 60"):
        session.confirm_quantity(60)
    assert session.confirm_quantity(30).on_hand == 30


def test_not_opened_in_time_relatches_and_needs_a_new_unlock(rig) -> None:
    site, session, person = rig
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "T1"))
    session.unlock()
    person.wait(site.ctl.policy.unlock_timeout_s + 1)
    assert session.poll() is State.READY_TO_UNLOCK
    assert "not opened within" in session.line.notes[-1]
    assert not person.cabinet.sim_open("D1")  # the latch holds again
    person.restock("D1", "D1-P1", 1, VIAL_G)
    assert session.confirm_quantity().on_hand == 1


def test_rearm_refusal_leaves_the_line_ready_to_unlock_again(rig) -> None:
    _site, session, person = rig
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "R1"))
    person.restock("D1", "D1-P1", 1, VIAL_G)
    session.confirm_quantity()
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "R1"))
    with pytest.raises(Refused, match="re-arming"):  # drawer D1 was pulsed < 2 s ago
        session.unlock()
    assert session.state is State.READY_TO_UNLOCK
    person.wait(2.5)
    person.restock("D1", "D1-P1", 2, VIAL_G)
    assert session.confirm_quantity().on_hand == 3


def test_cancel_is_refused_while_open_and_after_stock_moved(rig) -> None:
    _site, session, person = rig
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "C1"))
    session.unlock()
    person.open("D1")
    with pytest.raises(Refused, match="close it first"):
        session.cancel()
    person.cabinet.sim_add("D1-P1", 2, VIAL_G)
    person.close("D1")
    with pytest.raises(Refused, match="the scale saw 2 units move"):
        session.cancel()
    session.confirm_quantity()
    session.select("D2-P1")
    session.cancel()
    assert session.state is State.IDLE and session.line is None


def test_lidded_pocket_opens_drawer_and_only_its_lid(rig) -> None:
    site, session, person = rig
    site.assign("D3-P2", MIDAZOLAM, par=4, critical_low=1, max_qty=6)
    session.select("D3-P2")
    session.scan(datamatrix(MIDAZOLAM, GOOD, "MZ1"))
    session.unlock()
    person.wait(0.05)
    assert not person.cabinet.lock_holding("dio1:coil.7")  # D3-P2's lid
    assert person.cabinet.lock_holding("dio1:coil.6")  # D3-P1's lid stays locked
    person.cabinet.sim_open("D3")
    person.wait(0.1)
    assert session.poll() is State.UNLOCKED  # drawer open, lid not yet
    assert person.cabinet.sim_open("D3-P2")
    person.wait(0.1)
    assert session.poll() is State.OPEN
    assert session.count(0).outcome.value == "match"  # midazolam (C-IV): counted on access
    person.cabinet.sim_add("D3-P2", 4, 4.7)
    assert person.close("D3") is State.CLOSED
    assert session.confirm_quantity().on_hand == 4


def test_load_and_unload_lines(rig) -> None:
    site, session, person = rig
    session.select("D2-P2", LineKind.LOAD, item=ONDANSETRON_VIAL, levels=(6, 1, 10))
    with pytest.raises(Refused, match="wrong drug"):
        session.scan(datamatrix(HEPARIN, GOOD, "X1"))
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "LD1"))
    person.restock("D2", "D2-P2", 6, VIAL_G)
    load = session.confirm_quantity()
    assert (load.kind, load.on_hand) == ("load", 6)
    pocket = next(p for p in reports.pockets(site.ctl, CABINET) if p.pocket == "D2-P2")
    assert (pocket.item, pocket.par, pocket.critical_low, pocket.max) == (
        "Ondansetron 2 mg/mL 2 mL vial",
        6,
        1,
        10,
    )
    person.wait(3)
    with pytest.raises(Refused, match="not empty"):
        session.select("D2-P2", LineKind.LOAD, item=HEPARIN, levels=(6, 1, 10))
    session.select("D2-P2", LineKind.UNLOAD)
    assert session.state is State.READY_TO_UNLOCK  # no scan to take things out
    person.restock("D2", "D2-P2", -6, VIAL_G)
    unload = session.confirm_quantity()
    assert (unload.kind, unload.qty, unload.on_hand, unload.discrepancy_id) == (
        "unload",
        -6,
        0,
        None,
    )
    pocket = next(p for p in reports.pockets(site.ctl, CABINET) if p.pocket == "D2-P2")
    assert pocket.item is None and pocket.par == 0


def test_expired_pull_line_records_what_was_removed(rig) -> None:
    site, session, person = rig
    clock = site.clock
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, date(2026, 3, 20), "EXP1"))
    session.confirm_short_dated()
    person.restock("D1", "D1-P1", 3, VIAL_G)
    session.confirm_quantity()
    person.wait(3)
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "GOOD1"))
    person.restock("D1", "D1-P1", 5, VIAL_G)
    session.confirm_quantity()
    clock.skip_days(30)  # lot EXP1 (2026-03-20) has now expired
    with pytest.raises(Refused, match="expired lot EXP1"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1)
    with pytest.raises(Refused, match="pull it before restocking"):
        session.select("D1-P1")
    person.wait(3)
    session.select("D1-P1", LineKind.PULL)
    person.restock("D1", "D1-P1", -3, VIAL_G)
    pulled = session.confirm_quantity()
    assert (pulled.kind, pulled.qty, pulled.on_hand) == ("pull", -3, 5)
    with site.ctl.read() as s:
        txn = s.execute(select(Transaction).where(Transaction.kind == "pull")).scalar_one()
    assert (txn.reason, txn.expected, txn.counted) == ("expired", 3, 3)
    assert inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1).on_hand == 4


def test_drawer_that_does_not_relock_is_recorded_for_service(rig) -> None:
    site, session, person = rig
    person.cabinet.sim_inject_fault("lock_no_reengage", "dio1:coil.1")
    session.select("D2-P1")
    session.scan(datamatrix(HEPARIN, GOOD, "HL1"))
    person.restock("D2", "D2-P1", 2, HEPARIN_G)
    assert session.line.relock_failed
    session.confirm_quantity()
    with site.ctl.read() as s:
        event = s.execute(select(MaintenanceEvent)).scalar_one()
    assert (event.kind, event.drawer_code) == ("relock-failed", "D2")


def test_offline_scale_falls_back_to_the_persons_count(rig) -> None:
    _site, session, person = rig
    person.cabinet.sim_inject_fault("loadcell_offline", "lc1:ch.4")
    session.select("D2-P1")
    session.scan(datamatrix(HEPARIN, GOOD, "HO1"))
    person.restock("D2", "D2-P1", 4, HEPARIN_G)
    assert session.line.measured is None and any(
        "count by hand" in n or "unreadable" in n for n in session.line.notes
    )
    with pytest.raises(BadInput, match="enter the quantity"):
        session.confirm_quantity()
    assert session.confirm_quantity(4).on_hand == 4


def test_session_refuses_a_driver_for_another_cabinet_profile(site) -> None:
    with pytest.raises(Refused, match="the driver is for a cs-small cabinet"):
        begin_restock(site.ctl, sim_driver("cs-small"), CABINET, site.tech)
    with pytest.raises(Refused, match="not allowed to do restock"):
        begin_restock(site.ctl, sim_driver(), CABINET, site.nurse)


def test_out_of_stock_line_notifies_pharmacists(rig) -> None:
    site, session, _person = rig
    session.select("D1-P1")
    session.skip("wholesaler back-order", out_of_stock=True)
    notes = [n for n in reports_shortages(site) if n.kind == "unfilled"]
    assert [(n.pocket, n.status) for n in notes] == [("D1-P1", "open")]
    assert session.next_line().pocket == "D2-P1"  # the skipped line is not offered again


def reports_shortages(site: Site):  # type: ignore[no-untyped-def]
    from adc.controller.shortages import list_shortages

    return list_shortages(site.ctl)


def test_a_simpy_process_drives_the_session(rig) -> None:
    """The same calls from a SimPy process: it waits with timeouts, never the controller."""
    site, session, person = rig
    cabinet, env = person.cabinet, person.cabinet.env
    done: list[int] = []

    def technician() -> Iterator[simpy.Event]:
        while (line := session.next_line()) is not None:
            gtin, weight = {"D1-P1": (ONDANSETRON_VIAL, VIAL_G), "D2-P1": (HEPARIN, HEPARIN_G)}.get(
                line.pocket, (ACETAMINOPHEN, 0.55)
            )
            session.scan(datamatrix(gtin, GOOD, f"S{line.pocket}"))
            while True:
                try:
                    session.unlock()
                    break
                except Refused:
                    yield env.timeout(0.5)  # lock re-arming
            yield env.timeout(0.05)
            cabinet.sim_open(line.drawer)
            while session.poll() is not State.OPEN:
                yield env.timeout(0.1)
            cabinet.sim_add(line.pocket, line.need, weight)
            yield env.timeout(12)  # restock takes 11–21 s a line
            cabinet.sim_close(line.drawer)
            while session.poll() is not State.CLOSED:
                yield env.timeout(0.1)
            done.append(
                session.confirm_quantity(None if line.pocket != "D6-P1" else line.need).on_hand
            )

    env.process(technician())
    env.run(until=env.now + 600)
    assert done == [10, 8, 30]
    assert reports.refill_list(site.ctl, CABINET) == []
    assert session.end().recorded[-1].pocket == "D6-P1"
