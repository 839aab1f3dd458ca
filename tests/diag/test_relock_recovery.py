"""A drawer the restock session found not relocked (`relock-failed`, judged after the unlock pulse)
is out of service, and `adc diag recover`'s walk-through is what returns it: not while the lock
still fails its cycle, and only with every pocket recounted blind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from adc.controller import cabinets, maintenance
from adc.controller.restock import State, begin_restock
from adc.diag.recover import recover
from adc.errors import Refused
from adc.profiles import load_profile, resolve_profile_path
from tests.contract.rigs import sim_rig
from tests.controller.rig import Person, SimClock
from tests.controller.site import CABINET, ONDANSETRON_VIAL, Site, build_site, datamatrix, fast_pins
from tests.diag.conftest import bench

VIAL_G = 4.6


@pytest.fixture
def lockboard_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Site, object]]:
    """Cabinet W1 of rs485-2bus (drawer locks on a CU16 board with feedback) on SQLite, and the
    in-process rig of the same profile; the controller's clock follows the rig's time."""
    fast_pins(monkeypatch)
    with sim_rig(load_profile(resolve_profile_path("rs485-2bus")), 3) as rig:
        site = build_site(
            f"sqlite:///{tmp_path / 'adc.db'}", SimClock(rig.driver), with_cabinet=False
        )
        cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
        site.assign("D1-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=30)
        try:
            yield site, rig
        finally:
            site.ctl.db.close()


def test_a_relock_failure_blocks_the_drawer_until_recovered(lockboard_site) -> None:
    site, rig = lockboard_site
    rig.cabinet.sim_inject_fault("lock_no_reengage", "lb0:lock.0")
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    session.select("D1-P1")
    session.scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "RR1"))
    person = Person(session)
    person.restock("D1", "D1-P1", 3, VIAL_G)
    assert session.state is State.CLOSED and session.line.relock_failed
    assert session.confirm_quantity().on_hand == 3
    failures = maintenance.out_of_service(site.ctl, CABINET)
    assert [f.kind for f in failures["D1"]] == ["relock-failed"]
    rig.advance(3)
    with pytest.raises(Refused, match="drawer D1 is out of service"):
        session.select("D1-P1")

    # the lock still fails its cycle: the drawer stays out of service
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D1")
    outcome = recover(
        bench(rig, site=site, purpose="recover"), site.ctl, site.service, plan, counter=site.tech
    )
    assert not outcome.returned
    failed = {c.subject: c for c in outcome.report.failures()}
    assert "no-relock" in failed["lock of drawer D1"].flags
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D1"]

    # repaired: the cycle passes, D1-P1 is recounted blind, the drawer returns to service
    rig.cabinet.sim_clear_fault("lock_no_reengage", "lb0:lock.0")
    rig.advance(3)
    plan = maintenance.recovery_plan(site.ctl, CABINET, "D1")
    assert plan.failures[0].kind == "relock-failed"  # (and what the failed cycle found)
    outcome = recover(
        bench(rig, site=site, purpose="recover"), site.ctl, site.service, plan, counter=site.tech
    )
    assert outcome.returned, outcome.report.failures()
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    rig.advance(3)
    assert session.select("D1-P1").pocket == "D1-P1"  # offered again
