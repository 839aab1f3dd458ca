"""adc diag recover's walk-through: hardware cycled, every pocket counted while reachable, and the
drawer back in service only when both are done; on every tier."""

from __future__ import annotations

from datetime import date

from adc.controller import inventory, maintenance
from adc.controller.gs1 import parse_scan
from adc.diag.person import NoPerson
from adc.diag.recover import recover
from adc.diag.results import Verdict
from tests.controller.site import ACETAMINOPHEN, CABINET, HEPARIN, Site, datamatrix
from tests.diag.conftest import Open, bench


def stock(site: Site, pocket: str, gtin: str, qty: int) -> None:
    site.assign(pocket, gtin, par=qty, critical_low=0, max_qty=qty + 10)
    scan = parse_scan(datamatrix(gtin, date(2027, 6, 30), "L1"))
    inventory.refill(site.ctl, site.pharmacist, CABINET, pocket, scan, qty)


def test_recovery_counts_what_is_there_and_returns_the_drawer(site: Site, tier: Open) -> None:
    stock(site, "D1-P1", ACETAMINOPHEN, 10)  # the virtual pockets hold 10 each
    stock(site, "D1-P2", HEPARIN, 8)  # two more than the record: a discrepancy to review
    maintenance.mark_failed(site.ctl, None, CABINET, "D1", "power-loss-open", "open at power loss")
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D1")
    with tier("tcp-6drawer") as rig:
        outcome = recover(
            bench(rig, site=site, purpose="recover"),
            site.ctl,
            site.service,
            plan,
            counter=site.tech,
        )
    checks = {c.subject: c for c in outcome.report.checks}
    assert outcome.returned, outcome.report.failures()
    assert checks["blind recount of D1-P1"].verdict is Verdict.PASS
    assert checks["blind recount of D1-P2"].flags == ["discrepancy"]
    assert set(outcome.discrepancies) == {"D1-P2"}
    assert checks["drawer D1"].reason == "returned to service"
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    with site.ctl.read() as session:
        from adc.controller.stock import find_pocket

        assert find_pocket(session, CABINET, "D1-P2").on_hand == 10


def test_a_drawer_that_still_jams_stays_out_of_service(site: Site, tier: Open) -> None:
    stock(site, "D2-P1", ACETAMINOPHEN, 10)
    maintenance.mark_failed(site.ctl, site.service, CABINET, "D2", "open-failed", "did not open")
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D2")
    with tier("tcp-6drawer") as rig:
        rig.cabinet.sim_inject_fault("lock_jammed", "dio1:coil.1")
        outcome = recover(
            bench(rig, site=site, purpose="recover"),
            site.ctl,
            site.service,
            plan,
            counter=site.tech,
        )
    assert not outcome.returned
    failed = {c.subject: c for c in outcome.report.failures()}
    assert failed["lock of drawer D2"].flags == ["jammed"]
    assert failed["blind recount of D2-P1"].reason.startswith("nobody counted")  # never reachable
    assert failed["drawer D2"].flags == ["blocked"]
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D2"]


def test_without_a_person_counts_from_the_command_line_do_not_prove_the_hardware(
    site: Site, tier: Open
) -> None:
    stock(site, "D2-P1", ACETAMINOPHEN, 10)
    maintenance.mark_failed(site.ctl, site.service, CABINET, "D2", "failed", "")
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D2")
    with tier("tcp-6drawer") as rig:
        outcome = recover(
            bench(rig, NoPerson(), site=site, purpose="recover"),
            site.ctl,
            site.service,
            plan,
            counter=site.tech,
            counts={"D2-P1": 10},
        )
    assert not outcome.returned
    checks = {c.subject: c for c in outcome.report.checks}
    assert checks["blind recount of D2-P1"].verdict is Verdict.PASS  # recorded all the same
    assert "not proven" in checks["drawer D2"].reason
