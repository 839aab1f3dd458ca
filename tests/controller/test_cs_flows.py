"""The count on access as a step of the state machines that open the cabinet: a nurse's withdrawal
and a technician's restock line, on the virtual cabinet through the sim driver."""

from __future__ import annotations

from typing import Any

import pytest

from adc.controller import counts, inventory, waste, withdrawal
from adc.controller.cabinet_policy import CountMode
from adc.controller.restock import LineKind, State, begin_restock
from adc.errors import Refused
from tests.controller.cs import GOOD, assign, discrepancies, on_hand, stock
from tests.controller.rig import Person, SimClock, sim_driver
from tests.controller.site import ACETAMINOPHEN, CABINET, MORPHINE_CART, build_site, datamatrix


@pytest.fixture
def rig(db_url: str) -> Any:
    driver = sim_driver()
    site = build_site(db_url, SimClock(driver))
    assign(site, "D3-P1", MORPHINE_CART)  # lidded, weighed
    yield site, driver
    site.ctl.db.close()
    driver.close()


def _open(driver: Any, drawer: str, pocket: str) -> None:
    driver.advance(0.05)
    assert driver.cabinet.sim_open(drawer) and driver.cabinet.sim_open(pocket)
    driver.advance(0.1)


def test_a_withdrawal_of_a_controlled_substance_needs_its_count_before_the_removal(
    rig: Any,
) -> None:
    site, driver = rig
    stock(site, "D3-P1", MORPHINE_CART, 4)
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, "D3-P1", 1)
    assert w.count_due is CountMode.BLIND
    with pytest.raises(Refused, match="the withdrawal is ready, this step needs unlocked"):
        w.count(4)  # not before the pocket is unlocked
    w.unlock()
    _open(driver, "D3", "D3-P1")
    assert w.poll() is withdrawal.Phase.OPEN
    with pytest.raises(Refused, match="needs its blind count on access"):
        w.record(count_back=3)
    assert w.count(3).outcome is counts.Outcome.RECOUNT
    with pytest.raises(Refused, match="needs its recount on access"):
        w.record(count_back=3)
    stands = w.count(3)
    assert stands.outcome is counts.Outcome.DISCREPANCY and on_hand(site, "D3-P1") == 3
    with pytest.raises(Refused, match="counted already"):
        w.count(3)
    recorded = w.record(count_back=2)
    assert [m.kind for m in recorded] == ["remove", "count"] and recorded[-1].on_hand == 2
    assert [d.trigger for d in discrepancies(site)] == ["remove"]


def test_a_restock_line_of_a_controlled_pocket_has_a_count_step(rig: Any) -> None:
    site, driver = rig
    session = begin_restock(site.ctl, driver, CABINET, site.tech)
    line = session.select("D3-P1", LineKind.REFILL)
    assert line.count_due is CountMode.BLIND
    session.scan(datamatrix(MORPHINE_CART, GOOD, "M1"))
    person = Person(session)
    session.unlock()
    with pytest.raises(Refused, match="this step needs open"):
        session.count(0)
    assert person.open("D3", "D3-P1") is State.OPEN
    driver.cabinet.sim_add("D3-P1", 3, 6.3)
    assert person.close("D3") is State.CLOSED
    with pytest.raises(Refused, match="needs its blind count on access"):
        session.confirm_quantity()
    assert session.count(0).outcome is counts.Outcome.MATCH
    assert session.confirm_quantity().on_hand == 3
    # a non-controlled pocket in a cabinet with count mode none: no count step
    assign(site, "D1-P1", ACETAMINOPHEN)
    assert session.select("D1-P1", LineKind.REFILL).count_due is CountMode.NONE
    session.cancel()


def test_records_that_move_nothing_in_the_pocket_do_not_void_a_count(rig: Any) -> None:
    site, _ = rig
    stock(site, "D3-P1", MORPHINE_CART, 5)
    counts.count_pocket(site.ctl, site.nurse, CABINET, "D3-P1", 5)
    removal = inventory.remove(site.ctl, site.nurse, CABINET, "D3-P1", 2).txn_ids[0]
    counts.count_pocket(site.ctl, site.nurse, CABINET, "D3-P1", 3)
    waste.waste(
        site.ctl, site.nurse, CABINET, 1, "partial", witness=site.pharmacist, removal_id=removal
    )  # recorded on the pocket, moves nothing in it
    assert inventory.remove(site.ctl, site.nurse, CABINET, "D3-P1", 1).on_hand == 2
