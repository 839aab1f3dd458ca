"""The restock session against the virtual cabinet (sim backend through the driver port)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import simpy
from sqlalchemy import select

from adc.controller import cabinets, inventory, maintenance, recalls, reports
from adc.controller.gs1 import gtin_for_ndc
from adc.controller.models import Discrepancy, MaintenanceEvent, StockLot, Transaction
from adc.controller.restock import (
    LineKind,
    RestockSession,
    State,
    begin_restock,
    pulse_length_s,
)
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


def test_cancel_after_opening_needs_the_scale_to_have_seen_nothing_move(rig) -> None:
    _site, session, person = rig
    session.select("D1-P1")  # weighed
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "C2"))
    person.restock("D1", "D1-P1", 0, VIAL_G)  # opened and closed, nothing put in
    assert session.line.measured == 0
    session.cancel()
    assert session.state is State.IDLE
    session.select("D6-P1")  # no sensor: an opened pocket's contents are unknown
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "C3"))
    person.restock("D6", "D6-P1", 0, 0.55)
    with pytest.raises(Refused, match="D6-P1 was opened in this line"):
        session.cancel()
    assert session.state is State.CLOSED and session.line.pocket == "D6-P1"


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


def _events(site: Site) -> list[MaintenanceEvent]:
    with site.ctl.read() as s:
        return list(s.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars())


def _fast_close(person: Person, drawer: str, add: tuple[str, int, float] | None = None) -> State:
    """Open as the latch clicks and shut again at once, well inside the 500 ms unlock pulse."""
    person.wait(0.05)
    assert person.cabinet.sim_open(drawer)
    person.wait(0.05)
    assert person.session.poll() is State.OPEN
    if add:
        person.cabinet.sim_add(*add)
    person.cabinet.sim_close(drawer)
    person.wait(0.05)
    return person.session.poll()


def test_a_fast_close_is_judged_only_after_the_unlock_pulse(rig) -> None:
    """Closed 0.15 s after the unlock: the DIO coil is still on, so the lock reads released. The
    session keeps SETTLING until the pulse is over and then finds it locked: no false alarm."""
    site, session, person = rig
    session.select("D6-P1")  # no sensor: nothing else to wait for
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "F1"))
    session.unlock()
    assert session.line.pulse_s == 0.5  # tcp-6drawer: dio1's solenoid pulse_ms = 500
    assert _fast_close(person, "D6") is State.SETTLING
    assert not session.driver.lock_engaged("dio1:coil.5")  # the pulse is on: released by design
    person.wait(0.2)
    assert session.poll() is State.SETTLING  # still inside the pulse
    person.wait(0.3)
    assert session.poll() is State.CLOSED
    assert not session.line.relock_failed and not any("lock" in n for n in session.line.notes)
    assert session.confirm_quantity(30).on_hand == 30
    assert _events(site) == []
    assert maintenance.out_of_service(site.ctl, CABINET) == {}


@pytest.fixture
def lockboard(db_url: str) -> Iterator[tuple[Site, RestockSession, Person]]:
    """Cabinet W1 of rs485-2bus: drawer locks on a CU16 lock board, which reports each latch
    (feedback), so a bolt that stays retracted reads released after the pulse."""
    driver = sim_driver("rs485-2bus")
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
    site.assign("D1-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20)
    site.assign("D1-P2", HEPARIN, par=8, critical_low=2, max_qty=20)
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    yield site, session, Person(session)
    site.ctl.db.close()


def test_a_fast_close_on_a_lock_board_is_no_relock_failure(lockboard) -> None:
    site, session, person = lockboard
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "LB1"))
    session.unlock()
    assert _fast_close(person, "D1") is State.SETTLING
    assert not session.driver.lock_engaged("lb0:lock.0")  # feedback: retracted while pulsing
    for _ in range(30):
        if session.poll() is not State.SETTLING:
            break
        person.wait(0.1)
    assert session.state is State.CLOSED and not session.line.relock_failed
    assert session.driver.lock_engaged("lb0:lock.0")
    assert _events(site) == []


def test_a_drawer_that_does_not_relock_leaves_service(lockboard) -> None:
    """The bolt stays retracted after the pulse: relock-failed, recorded at once, and the drawer
    is out of service (fail closed) until recovered; the line itself can still be recorded."""
    site, session, person = lockboard
    person.cabinet.sim_inject_fault("lock_no_reengage", "lb0:lock.0")
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "HL1"))
    session.unlock()
    assert _fast_close(person, "D1", ("D1-P1", 3, VIAL_G)) is State.SETTLING
    person.wait(0.6)  # the pulse is over, the bolt is still out of its keeper
    assert session.poll() is State.SETTLING  # a latch gets RELOCK_GRACE_S to re-engage
    assert _events(site) == []
    person.wait(1.0)
    for _ in range(30):
        if session.poll() is not State.SETTLING:
            break
        person.wait(0.1)
    assert session.state is State.CLOSED  # bounded: pulse + grace, then judged
    assert session.line.relock_failed
    assert any("did not lock again" in n and "out of service" in n for n in session.line.notes)
    (event,) = _events(site)
    assert (event.kind, event.drawer_code, event.pocket_code) == ("relock-failed", "D1", "D1-P1")
    assert "lb0:lock.0 not engaged" in event.detail and "restock by technician" in event.detail
    failures = maintenance.out_of_service(site.ctl, CABINET)
    assert [f.kind for f in failures["D1"]] == ["relock-failed"]
    assert session.confirm_quantity().on_hand == 3  # the access itself is still recorded
    assert len(_events(site)) == 1  # once, not again at the record
    with pytest.raises(Refused, match="drawer D1 is out of service: pocket D1-P1: relock-failed"):
        session.select("D1-P2")
    assert session.next_line() is None  # D1 is the only drawer with lines: none offered


def test_pulse_length_comes_from_the_profile(lockboard) -> None:
    _site, session, _person = lockboard
    profile = session.driver.profile
    assert pulse_length_s(profile, ("lb0:lock.0",)) == 0.5
    assert pulse_length_s(profile, ("nodevice:lock.0",)) == 0.5  # not described: the default


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


# ------------------------------------------------------------------------------------ abandon
def _audit(site: Site, action: str) -> list[dict]:
    import json

    from adc.controller.models import AuditEntry

    with site.ctl.read() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars()
        return [json.loads(r.payload) for r in rows]


def test_abandon_a_line_the_scale_contradicts(rig) -> None:
    """The person loaded 8 of 10, the scale says 8, they insist on 10 and cannot recount: the line
    is abandoned. Nothing is recorded as stock; the drawer is flagged for a blind recount (a
    `failed` maintenance event with the reason, audited) and the session goes on."""
    site, session, person = rig
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "AB1"))
    person.restock("D1", "D1-P1", 8, VIAL_G)
    with pytest.raises(Refused, match="the scale counts 8 units added, you entered 10"):
        session.confirm_quantity(10)
    with pytest.raises(BadInput, match="say why line D1-P1 is abandoned"):
        session.abandon("  ")
    assert session.state is State.CLOSED  # a refusal keeps the line
    done = session.abandon("scale disagrees,\n cannot recount")
    assert session.state is State.IDLE and session.line is None
    assert (done.pocket, done.drawer, done.state, done.locked) == ("D1-P1", "D1", "closed", True)
    assert done.reason == "scale disagrees, cannot recount"
    assert _on_hand(site, "D1-P1") == 0  # no stock movement
    with site.ctl.read() as s:
        assert s.execute(select(Transaction)).scalars().all() == []
    (event,) = _events(site)
    assert (event.kind, event.drawer_code, event.pocket_code) == ("failed", "D1", "D1-P1")
    assert event.id == done.maintenance_event and event.user_id == site.tech.user_id
    for part in (
        "restock line abandoned: scale disagrees, cannot recount (closed; locked) by technician",
        f"session {session.id}",
        "lot AB1 scanned, the scale counted 8 added",
        "contents unknown, blind recount required",
    ):
        assert part in event.detail
    (payload,) = _audit(site, "restock.abandoned")
    assert payload["maintenance_event"] == event.id and payload["measured"] == 8
    assert (payload["reason"], payload["state"], payload["lot"]) == (
        "scale disagrees, cannot recount",
        "closed",
        "AB1",
    )
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D1"]
    assert session.driver.snapshot().lights["dio1:coil.26"] is False  # guide light off
    # the session is usable: the next line is offered (D1 is out of service), and recorded
    line = session.next_line()
    assert line is not None and line.pocket == "D2-P1"
    session.scan(datamatrix(HEPARIN, GOOD, "AB2"))
    person.restock("D2", "D2-P1", 8, HEPARIN_G)
    assert session.confirm_quantity().on_hand == 8
    with pytest.raises(Refused, match="drawer D1 is out of service"):
        session.select("D1-P1")
    summary = session.end()
    assert [a.pocket for a in summary.abandoned] == ["D1-P1"] and len(summary.recorded) == 1


def _lots(site: Site, pocket: str) -> list[tuple[str, date, int]]:
    from adc.controller.models import Pocket

    with site.ctl.read() as s:
        found = s.execute(
            select(StockLot.lot, StockLot.expiry, StockLot.qty)
            .join(Pocket, Pocket.id == StockLot.pocket_id)
            .where(Pocket.code == pocket)
            .order_by(StockLot.id)
        ).all()
        return [tuple(row) for row in found]


def test_an_abandoned_first_refill_is_recovered_by_its_blind_recount(rig) -> None:
    """The pocket never held a lot. The abandon puts the scanned lot on record, empty, so the
    recovery's blind recount has a lot to count the packs it finds into (before, a count above
    zero was refused there and the drawer could never return to service)."""
    site, session, person = rig
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "FR1"))
    person.restock("D1", "D1-P1", 8, VIAL_G)
    session.abandon("scale disagrees, cannot recount")
    assert _on_hand(site, "D1-P1") == 0 and _lots(site, "D1-P1") == [("FR1", GOOD, 0)]
    (payload,) = _audit(site, "restock.abandoned")
    assert payload["lot_on_record"] == {
        "gtin": ONDANSETRON_VIAL,
        "lot": "FR1",
        "expiry": GOOD.isoformat(),
    }
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D1")
    assert [line.pocket for line in plan.recount] == ["D1-P1"]
    disc = maintenance.recount(site.ctl, site.tech, plan, "D1-P1", 8)
    assert disc is not None  # 8 found where the record had none: a discrepancy to review
    assert _on_hand(site, "D1-P1") == 8 and _lots(site, "D1-P1") == [("FR1", GOOD, 8)]
    maintenance.complete_recovery(site.ctl, site.service, plan, hardware="lock and switch ok")
    assert maintenance.out_of_service(site.ctl, CABINET) == {}


def test_an_abandoned_load_leaves_the_pocket_assigned_to_what_was_loaded(rig) -> None:
    """An empty pocket being loaded with a new item holds that item or nothing: the abandon
    assigns it (with the load's levels) and puts the lot on record, so the recovery recounts
    the right drug instead of skipping the pocket as unassigned."""
    site, session, person = rig
    session.select("D2-P2", LineKind.LOAD, item=ONDANSETRON_VIAL, levels=(6, 1, 10))
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "LA1"))
    person.restock("D2", "D2-P2", 5, VIAL_G)
    session.abandon("interrupted: the pocket was open")
    pocket = next(p for p in reports.pockets(site.ctl, CABINET) if p.pocket == "D2-P2")
    assert (pocket.item, pocket.on_hand, pocket.par, pocket.critical_low, pocket.max) == (
        "Ondansetron 2 mg/mL 2 mL vial",
        0,
        6,
        1,
        10,
    )
    (payload,) = _audit(site, "restock.abandoned")
    assert payload["assigned"]["par"] == 6 and payload["assigned"]["previous_item_id"] is None
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D2")
    assert [line.pocket for line in plan.recount] == ["D2-P1", "D2-P2"]
    assert maintenance.recount(site.ctl, site.tech, plan, "D2-P1", 0) is None
    assert maintenance.recount(site.ctl, site.tech, plan, "D2-P2", 5) is not None
    assert _lots(site, "D2-P2") == [("LA1", GOOD, 5)]
    maintenance.complete_recovery(site.ctl, site.service, plan, hardware="lock and switch ok")
    with site.ctl.read() as s:
        from adc.controller.audit import verify_chain

        assert verify_chain(s).entries > 0  # raises CheckFailed on a broken entry


def test_abandon_is_refused_before_anything_was_unlocked(rig) -> None:
    site, session, _person = rig
    session.select("D1-P1")
    with pytest.raises(Refused, match="was not unlocked in this line: nothing to abandon"):
        session.abandon("changed my mind")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "AB3"))
    with pytest.raises(Refused, match="skip it \\(out of stock\\) or cancel it"):
        session.abandon("changed my mind")
    assert session.state is State.READY_TO_UNLOCK and _events(site) == []
    with pytest.raises(Refused, match="no line selected"):
        RestockSession(site.ctl, session.driver, CABINET, site.tech).abandon("x")


def test_abandon_a_drawer_that_will_not_close(rig) -> None:
    """Open, and it stays open: abandoned while OPEN, recorded as NOT locked."""
    site, session, person = rig
    session.select("D2-P1")
    session.scan(datamatrix(HEPARIN, GOOD, "AB4"))
    session.unlock()
    assert person.open("D2") is State.OPEN
    person.cabinet.sim_add("D2-P1", 2, HEPARIN_G)
    person.wait(1.0)  # past the pulse: the lock state is read, not guessed
    done = session.abandon("drawer will not close")
    assert (done.state, done.locked) == ("open", False)
    (event,) = _events(site)
    assert "(open; NOT locked)" in event.detail
    assert session.end().abandoned == [done]


def test_abandon_inside_the_pulse_does_not_guess_the_lock(rig) -> None:
    site, session, person = rig
    session.select("D6-P1")
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "AB5"))
    session.unlock()
    assert _fast_close(person, "D6") is State.SETTLING
    done = session.abandon("wrong pocket opened")
    assert (done.state, done.locked) == ("settling", None)
    assert "(settling; lock state unknown)" in _events(site)[0].detail


def test_abandon_after_a_reopen_that_timed_out(rig) -> None:
    """Opened, closed, unlocked again to correct it, then not opened in time: READY_TO_UNLOCK,
    but the pocket was opened in this line, so it can (and must) be abandoned, not just cancelled
    out of the record."""
    site, session, person = rig
    session.select("D6-P1")
    session.scan(datamatrix(ACETAMINOPHEN, GOOD, "AB6"))
    person.restock("D6", "D6-P1", 5, 0.55)
    person.wait(2.5)  # the lock re-arms
    session.unlock()
    person.wait(site.ctl.policy.unlock_timeout_s + 1)
    assert session.poll() is State.READY_TO_UNLOCK and session.line.opened
    with pytest.raises(Refused, match="D6-P1 was opened in this line: record the quantity"):
        session.cancel()  # no record of an access nothing counted
    done = session.abandon("gave up correcting the count")
    assert done.state == "ready-to-unlock" and len(_events(site)) == 1


def test_an_abandoned_drawer_returns_to_service_after_its_blind_recount(rig) -> None:
    site, session, person = rig
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "AB7"))
    person.restock("D1", "D1-P1", 2, VIAL_G)
    session.confirm_quantity()
    person.wait(2.5)
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "AB7"))
    person.restock("D1", "D1-P1", 2, VIAL_G)
    session.abandon("called away")
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D1")
    assert [f.kind for f in plan.failures] == ["failed"]
    assert [r.pocket for r in plan.recount] == ["D1-P1"]
    with pytest.raises(Refused, match="no blind recount of D1-P1"):
        maintenance.complete_recovery(site.ctl, site.service, plan, hardware="cycled: pass")
    assert _on_hand(site, "D1-P1") == 2  # the abandoned line moved nothing on record
    # what is really there: a difference opens a discrepancy for review
    assert maintenance.recount(site.ctl, site.tech, plan, "D1-P1", 4) is not None
    maintenance.complete_recovery(site.ctl, site.service, plan, hardware="cycled: pass")
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    assert _on_hand(site, "D1-P1") == 4
    person.wait(3)
    assert session.select("D1-P1").on_hand == 4  # back in service
