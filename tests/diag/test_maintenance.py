"""The controller side of service work: failed drawers blocked, recovery only after a blind recount,
the pharmacist-witness rule, and every run recorded with its audit entry in one transaction."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import func, select

from adc.controller import counts, inventory, maintenance
from adc.controller.audit import verify_all
from adc.controller.gs1 import parse_scan
from adc.controller.models import AuditEntry, Discrepancy, Item, MaintenanceEvent, Transaction
from adc.controller.restock import begin_restock
from adc.errors import BadInput, Refused
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    HEPARIN,
    MORPHINE_CART,
    Site,
    datamatrix,
)

GOOD = date(2027, 6, 30)


def stock(site: Site, pocket: str, gtin: str, qty: int) -> None:
    site.assign(pocket, gtin, par=qty, critical_low=0, max_qty=qty + 10)
    # a controlled pocket is counted on access before the refill (adc/controller/counts.py)
    counts.count_pocket(site.ctl, site.pharmacist, CABINET, pocket, 0, access="refill")
    inventory.refill(
        site.ctl, site.pharmacist, CABINET, pocket, parse_scan(datamatrix(gtin, GOOD, "L1")), qty
    )


def events(site: Site) -> list[MaintenanceEvent]:
    with site.ctl.read() as session:
        return list(
            session.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars()
        )


def audit_count(site: Site) -> int:
    with site.ctl.read() as session:
        return session.execute(select(func.count()).select_from(AuditEntry)).scalar() or 0


def test_a_failed_drawer_is_blocked_until_recovered_with_a_blind_recount(site: Site) -> None:
    stock(site, "D1-P1", ACETAMINOPHEN, 10)
    stock(site, "D1-P2", HEPARIN, 6)
    maintenance.mark_failed(
        site.ctl, site.service, CABINET, "D1", "power-loss-open", "open at power loss"
    )
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D1"]

    from adc.drivers.registry import open_backend

    session = begin_restock(site.ctl, open_backend("sim:tcp-6drawer"), CABINET, site.tech)
    with pytest.raises(Refused, match="drawer D1 is out of service: drawer D1: power-loss-open"):
        session.select("D1-P1")

    plan = maintenance.recovery_plan(site.ctl, CABINET, "D1")
    assert [line.pocket for line in plan.recount] == ["D1-P1", "D1-P2"]
    assert plan.empty == ["D1-P3", "D1-P4"]
    assert "10" not in repr(plan.recount)  # blind: the plan never carries the expected quantity
    with pytest.raises(Refused, match="no blind recount of D1-P1, D1-P2"):
        maintenance.complete_recovery(site.ctl, site.service, plan, hardware="ok")

    with pytest.raises(Refused, match="not allowed to do count"):
        maintenance.recount(site.ctl, site.service, plan, "D1-P1", 10)  # service may not count
    assert maintenance.recount(site.ctl, site.tech, plan, "D1-P1", 10) is None
    with pytest.raises(Refused, match="no blind recount of D1-P2"):
        maintenance.complete_recovery(site.ctl, site.service, plan, hardware="ok")
    disc = maintenance.recount(site.ctl, site.tech, plan, "D1-P2", 5)  # one short: reviewed later
    assert disc is not None

    maintenance.complete_recovery(site.ctl, site.service, plan, hardware="lock and switch passed")
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    with site.ctl.read() as s:
        counts = (
            s.execute(select(Transaction).where(Transaction.session_id == plan.session_id))
            .scalars()
            .all()
        )
        assert sorted((t.counted, t.expected) for t in counts) == [(5, 6), (10, 10)]
        assert s.get(Discrepancy, disc).expected == 6
        assert verify_all(s).entries == audit_count(site)  # the site chain and each cabinet's
    assert [e.kind for e in events(site)] == ["power-loss-open", "recovered"]
    assert session.select("D1-P1").pocket == "D1-P1"  # in service again


def test_a_recovery_overtaken_by_a_new_failure_must_start_over(site: Site) -> None:
    maintenance.mark_failed(site.ctl, site.service, CABINET, "D2", "failed", "jammed")
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D2")
    maintenance.mark_failed(site.ctl, site.service, CABINET, "D2", "no-relock")
    with pytest.raises(Refused, match="failed again"):
        maintenance.complete_recovery(site.ctl, site.service, plan, hardware="ok")
    with pytest.raises(Refused, match="in service: nothing to recover"):
        maintenance.recovery_plan(site.ctl, CABINET, "D3")
    with pytest.raises(BadInput, match="not a failure"):
        maintenance.mark_failed(site.ctl, site.service, CABINET, "D2", "tired")
    with pytest.raises(BadInput, match="no drawer 'D9'"):
        maintenance.mark_failed(site.ctl, site.service, CABINET, "D9", "failed")


def test_controlled_substances_need_a_pharmacist_witness(site: Site) -> None:
    stock(site, "D1-P1", MORPHINE_CART, 4)  # matrix pocket: the drawer lock exposes it
    stock(site, "D3-P2", MORPHINE_CART, 2)  # lidded: its lid lock exposes it, not the drawer's
    locks = ["dio1:coil.0", "dio1:coil.1", "dio1:coil.2", "dio1:coil.7", "dio1:coil.6"]
    refused = maintenance.access_refusals(site.ctl, site.service, CABINET, locks)
    assert set(refused) == {"dio1:coil.0", "dio1:coil.7"}
    assert "pharmacist witness" in refused["dio1:coil.0"] and "D1-P1" in refused["dio1:coil.0"]
    assert (
        maintenance.access_refusals(site.ctl, site.service, CABINET, locks, site.pharmacist) == {}
    )
    with pytest.raises(Refused, match="is a nurse, not a pharmacist"):
        maintenance.access_refusals(site.ctl, site.service, CABINET, locks, site.nurse)
    with pytest.raises(Refused, match="not allowed to do maintenance"):
        maintenance.access_refusals(site.ctl, site.tech, CABINET, locks, site.pharmacist)


def test_a_run_and_its_failures_are_one_transaction(site: Site) -> None:
    before = audit_count(site)
    found = [maintenance.Found("D4", "open-failed", "lock of drawer D4: jammed")]
    event = maintenance.record_run(
        site.ctl,
        site.service,
        CABINET,
        command="selftest",
        result="fail",
        summary="1 failed",
        found=found,
        witness=site.pharmacist,
    )
    kinds = [(e.id, e.kind, e.drawer_code) for e in events(site)]
    assert kinds == [(event, "diag-selftest", None), (event + 1, "open-failed", "D4")]
    assert json.loads(events(site)[0].detail)["result"] == "fail"
    assert audit_count(site) == before + 2
    with site.ctl.read() as s:
        last = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars().first()
        assert last.action == "maintenance.diagnostic" and last.witness == "pharmacist"
        assert last.actor == "service"
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D4"]

    # a run naming a drawer that does not exist writes nothing at all
    with pytest.raises(BadInput):
        maintenance.record_run(
            site.ctl,
            site.service,
            CABINET,
            command="selftest",
            result="fail",
            summary="",
            found=[maintenance.Found("D9", "open-failed", "")],
        )
    assert audit_count(site) == before + 2 and len(events(site)) == 2


def test_calibrated_unit_weight_goes_to_the_item_and_is_recorded(site: Site) -> None:
    stock(site, "D1-P1", ACETAMINOPHEN, 10)
    label, before = maintenance.set_unit_weight(site.ctl, site.service, CABINET, "D1-P1", 0.561)
    assert before == 0.55 and "Acetaminophen" in label
    with site.ctl.read() as s:
        assert s.get(Item, site.item_id(ACETAMINOPHEN)).unit_weight_g == 0.561
    (event,) = events(site)
    assert event.kind == "calibrated" and event.pocket_code == "D1-P1" and event.drawer_code == "D1"
    with pytest.raises(Refused, match="no item assigned"):
        maintenance.set_unit_weight(site.ctl, site.service, CABINET, "D1-P2", 1.0)
    with pytest.raises(Refused, match="not allowed to do maintenance"):
        maintenance.set_unit_weight(site.ctl, site.nurse, CABINET, "D1-P1", 1.0)
