"""One pocket access for every caller (issue 13): the same failure gives the same maintenance
events and audit entries whether a restock line, a nurse's withdrawal or a cycle count opened the
pocket, over every backend of the contract suite (in-process sim, the wire drivers against the
emulators on Modbus TCP and RTU).

Cabinet W1 is rs485-2bus: drawer D3 (lock lb0:lock.2, switch dio1:di.2) holds lidded pocket
D3-P1 (lid lock lb1:lock.0 on the other lock board, lid switch lb1:input.0). The test plays the
person through the virtual cabinet's `sim_*` inputs; each caller is driven through its own
calls, and only the access underneath decides what is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import cabinets, inventory, maintenance, withdrawal
from adc.controller.access import AccessState, PocketAccess, UnlockIncomplete
from adc.controller.counts import cycle_targets
from adc.controller.gs1 import parse_scan
from adc.controller.models import AccessLog, AuditEntry, MaintenanceEvent
from adc.controller.restock import LineKind, State, begin_restock
from adc.errors import Refused
from adc.profiles import load_profile
from adc.session.cyclecount import CountVisit
from adc.session.hands import NoHands
from adc.session.runner import Runner
from adc.waiting import SteppedTime
from tests.conftest import SHIPPED_PROFILES
from tests.contract.rigs import RIGS, Rig
from tests.controller.site import CABINET, ONDANSETRON_VIAL, START, Site, build_site, datamatrix

POCKET, DRAWER = "D3-P1", "D3"
DRAWER_LOCK, LID_LOCK, DRAWER_SWITCH = "lb0:lock.2", "lb1:lock.0", "dio1:di.2"
GOOD = date(2027, 6, 30)
VIAL_G = 4.6
CALLERS = ("restock", "withdrawal", "count")


class RigClock:
    """Controller time = START + the virtual cabinet's SimPy seconds."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig

    def now(self) -> datetime:
        return START + timedelta(seconds=self.rig.cabinet.env.now)


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    (path,) = [p for p in SHIPPED_PROFILES if p.stem == "rs485-2bus"]
    with RIGS[request.param](load_profile(path), 7) as built:
        yield built


@pytest.fixture
def w1(db_url: str, rig: Rig) -> Iterator[tuple[Site, Rig]]:
    site = build_site(db_url, RigClock(rig), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
    site.assign(POCKET, ONDANSETRON_VIAL, par=8, critical_low=1, max_qty=12)
    inventory.refill(
        site.ctl,
        site.tech,
        CABINET,
        POCKET,
        parse_scan(datamatrix(ONDANSETRON_VIAL, GOOD, "A1")),
        4,
    )
    rig.advance(3.0)
    yield site, rig
    site.ctl.db.close()


# ------------------------------------------------------------------------------- the callers
@dataclass
class Caller:
    """One caller of the access, driven through its own calls."""

    name: str
    site: Site
    rig: Rig
    obj: Any = None
    notes: list[str] = field(default_factory=list)

    def begin(self) -> None:
        ctl, driver = self.site.ctl, self.rig.driver
        if self.name == "restock":
            self.obj = begin_restock(ctl, driver, CABINET, self.site.tech)
            self.obj.select(POCKET, LineKind.REFILL)
            self.obj.scan(datamatrix(ONDANSETRON_VIAL, GOOD, "A2"))
        elif self.name == "withdrawal":
            self.obj = withdrawal.begin_withdrawal(ctl, driver, CABINET, self.site.nurse, POCKET, 1)
        else:
            (target,) = cycle_targets(ctl, CABINET, pockets=[POCKET])
            self.obj = CountVisit.begin(ctl, driver, self.waiter, CABINET, target, self.site.nurse)

    @property
    def waiter(self) -> SteppedTime:
        return SteppedTime(self.rig.advance, lambda: float(self.rig.cabinet.env.now))

    @property
    def access(self) -> PocketAccess:
        if self.name == "restock":
            return self.obj.line.access if self.obj.line else self._last
        return self.obj.access

    def unlock(self) -> None:
        if self.name == "restock":
            self._last = self.obj.line.access
        self.obj.unlock()

    def poll(self) -> Any:
        return self.obj.poll() if self.name != "count" else self.obj.access.poll()

    def wait(self, seconds: float, step: float = 0.1) -> None:
        end = self.rig.cabinet.env.now + seconds
        while self.rig.cabinet.env.now < end - 1e-9:
            self.rig.advance(step)
            self.poll()

    def end(self) -> None:
        """The caller's own last steps, where the access lets it get that far."""
        if self.name == "restock":
            s = self.obj
            if s.state is State.CLOSED and s.line.measured:
                s.confirm_quantity(None)
            elif s.line is not None:  # nothing moved (the scale weighed it) or never opened
                try:
                    s.cancel()
                except Refused:
                    s.abandon("test: left")
        elif self.name == "withdrawal":
            if self.obj.unlocked_at is not None and self.obj.access.opened:
                self.obj.record()
            self.obj.finish()
        else:
            self.obj.finish("counted")


def _person_open(rig: Rig) -> None:
    rig.advance(0.05)  # the latch retracts a few ms after the pulse
    assert rig.cabinet.sim_open(DRAWER) and rig.cabinet.sim_open(POCKET)


def _person_close(rig: Rig) -> None:
    rig.cabinet.sim_close(DRAWER)  # shuts the lid inside it first


def _events(site: Site) -> list[tuple[str, str | None, str | None]]:
    with site.ctl.read() as s:
        rows = s.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars()
        return [(e.kind, e.drawer_code, e.pocket_code) for e in rows]


def _audit(site: Site) -> list[tuple[str, str | None]]:
    """The audit entries of maintenance events: (action, kind)."""
    with site.ctl.read() as s:
        rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
        out = []
        for r in rows:
            if r.action.startswith("maintenance."):
                out.append((r.action, json.loads(r.payload).get("kind")))
        return out


def _open_rows(site: Site) -> list[AccessLog]:
    with site.ctl.read() as s:
        return list(s.execute(select(AccessLog).where(AccessLog.closed_at.is_(None))).scalars())  # type: ignore[union-attr]


@pytest.fixture(params=CALLERS)
def caller(request: pytest.FixtureRequest, w1: tuple[Site, Rig]) -> Caller:
    site, rig = w1
    return Caller(request.param, site, rig)


# --------------------------------------------------------------------------------- the cases
def test_a_partial_unlock_with_the_drawer_locked_is_an_alarm_and_may_try_again(caller) -> None:
    site, rig = caller.site, caller.rig
    caller.begin()
    rig.cabinet.device("lb0").unlock(2)  # another master: D3's lock re-arms for 2 s
    rig.advance(0.6)
    with pytest.raises(UnlockIncomplete) as failed:
        caller.unlock()
    assert not failed.value.out_of_service
    assert (failed.value.released, failed.value.not_released) == ((LID_LOCK,), (DRAWER_LOCK,))
    assert _events(site) == [("alarm-partial-unlock", DRAWER, POCKET)]
    assert _audit(site) == [("maintenance.alarm", "alarm-partial-unlock")]
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    assert caller.access.state is AccessState.READY
    rig.advance(2.5)
    caller.unlock()  # try again: both together
    _person_open(rig)
    assert caller.poll() is not None and caller.access.state is AccessState.OPEN
    _person_close(rig)
    caller.wait(2.0)
    assert caller.access.settled
    caller.end()
    assert _events(site) == [("alarm-partial-unlock", DRAWER, POCKET)]
    assert not _open_rows(site)


def test_a_pocket_lock_that_does_not_relatch_takes_the_drawer_out(caller) -> None:
    site, rig = caller.site, caller.rig
    caller.begin()
    rig.cabinet.sim_inject_fault("lock_no_reengage", LID_LOCK)
    caller.unlock()
    _person_open(rig)
    caller.poll()
    rig.advance(1.0)  # past the pulse
    _person_close(rig)
    caller.wait(3.0)
    assert caller.access.settled
    assert _events(site) == [("relock-failed", DRAWER, POCKET)]
    assert _audit(site) == [("maintenance.failed", "relock-failed")]
    assert LID_LOCK in caller.access.failures[0].detail
    caller.end()  # the person's record is still taken
    assert [f.kind for f in maintenance.out_of_service(site.ctl, CABINET)[DRAWER]] == [
        "relock-failed"
    ]
    assert not _open_rows(site)


def test_a_drawer_switch_stuck_closed_with_the_lid_open_is_a_switch_failure(caller) -> None:
    site, rig = caller.site, caller.rig
    caller.begin()
    rig.cabinet.sim_inject_fault("switch_stuck", DRAWER_SWITCH, active=True)
    caller.unlock()
    _person_open(rig)
    caller.poll()
    caller.poll()  # seen again: recorded once
    assert _events(site) == [("switch-failed", DRAWER, POCKET)]
    assert _audit(site) == [("maintenance.failed", "switch-failed")]
    _person_close(rig)
    caller.wait(3.0)
    caller.end()
    assert _events(site) == [("switch-failed", DRAWER, POCKET)]


def test_a_pocket_never_opened_relatches_and_records_nothing(caller) -> None:
    site = caller.site
    caller.begin()
    caller.unlock()
    timeout = site.ctl.policy.unlock_timeout_s
    caller.wait(timeout + 2, step=0.5)
    assert caller.access.state is AccessState.READY and caller.access.settled
    assert caller.access.latched() is True
    caller.end()
    assert _events(site) == [] and _audit(site) == []
    assert not _open_rows(site)


@pytest.mark.parametrize("who", ["restock", "withdrawal"])
def test_a_person_saying_it_did_not_open_is_an_open_failure(w1, who: str) -> None:
    site, rig = w1
    caller = Caller(who, site, rig)
    caller.begin()
    caller.unlock()
    caller.wait(0.2)
    caller.obj.not_opened()
    assert _events(site) == [("open-failed", DRAWER, POCKET)]
    assert _audit(site) == [("maintenance.failed", "open-failed")]
    assert caller.access.state is AccessState.FAILED
    caller.end()
    assert not _open_rows(site)


def test_a_drawer_left_open_raises_one_alarm(caller) -> None:
    site, rig = caller.site, caller.rig
    caller.begin()
    caller.unlock()
    _person_open(rig)
    caller.wait(caller.access.open_alarm_s + 5, step=5.0)
    assert _events(site) == [("alarm-left-open", DRAWER, POCKET)]
    assert _audit(site) == [("maintenance.alarm", "alarm-left-open")]
    _person_close(rig)
    caller.wait(3.0)
    caller.end()
    assert _events(site) == [("alarm-left-open", DRAWER, POCKET)]
    assert maintenance.out_of_service(site.ctl, CABINET) == {}


@pytest.mark.parametrize("who", ["restock", "count"])  # a withdrawal has no Ctrl-C: no terminal
def test_ctrl_c_during_the_pulse_waits_for_the_latches_and_records_nothing(w1, who) -> None:
    site, rig = w1
    caller = Caller(who, site, rig)
    caller.begin()
    caller.unlock()
    assert caller.access.pulsing()
    if who == "restock":
        runner = Runner(caller.obj, caller.waiter, NoHands(), lambda event: None)
        runner.interrupt("Ctrl-C")
        assert caller.obj.line is None
    else:
        caller.obj.interrupted()
        caller.obj.finish("interrupted")
    assert not caller.access.pulsing()
    assert caller.access.latched() is True
    assert _events(site) == [] and _audit(site) == []
    assert not _open_rows(site)


def test_a_drawer_out_of_service_is_not_unlocked(caller) -> None:
    site, rig = caller.site, caller.rig
    maintenance.mark_failed(site.ctl, site.service, CABINET, DRAWER, "failed", "by hand")
    before = _events(site)
    if caller.name != "count":  # refused at selection, before the access exists
        with pytest.raises(Refused, match="out of service"):
            caller.begin()
        return
    caller.begin()
    with pytest.raises(Refused, match=f"drawer {DRAWER} is out of service"):
        caller.unlock()
    assert not rig.cabinet.sim_open(DRAWER)
    assert _events(site) == before
    with site.ctl.read() as s:
        assert s.execute(select(AccessLog)).first() is None  # nothing on record: no pulse


def test_an_old_no_relock_event_still_keeps_the_drawer_out(w1) -> None:
    """Databases from before the merge hold `no-relock`: read as a failure."""
    site, _ = w1
    maintenance.mark_failed(site.ctl, site.service, CABINET, DRAWER, "no-relock", "legacy")
    assert _events(site) == [("relock-failed", DRAWER, None)]  # written as the merged kind
    with site.ctl.write(None, None) as tx:
        tx.session.add(
            MaintenanceEvent(
                cabinet_id=CABINET, drawer_code="D1", kind="no-relock", detail="old", at=tx.now
            )
        )
        tx.audit("test.legacy_row", {"kind": "no-relock"})
    assert sorted(maintenance.out_of_service(site.ctl, CABINET)) == ["D1", DRAWER]


def test_a_failure_the_database_refuses_after_the_stock_is_recorded_waits_for_the_close(
    w1: tuple[Site, Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stock is on record when the access learns its switch never read open; the database
    refuses that switch failure just then. The caller's record must not fail (a retry would record
    the stock twice): the failure is kept, the access stays open on record until it is written,
    then both are written once."""
    from adc.controller import access as access_module
    from adc.controller.dberrors import DatabaseUnavailable

    site, rig = w1
    access = PocketAccess.for_pocket(
        site.ctl, rig.driver, CABINET, site.nurse, POCKET, "withdrawal"
    )
    access.unlock()
    busy = [True]
    real = access_module.raise_alarm

    def raise_alarm(*args: Any, **kwargs: Any) -> Any:
        if busy[0]:
            raise DatabaseUnavailable("the database is busy: test")
        return real(*args, **kwargs)

    monkeypatch.setattr(access_module, "raise_alarm", raise_alarm)
    access.stock_moved()  # the person's record stands
    assert any("could not be recorded yet" in note for note in access.notes)
    assert _events(site) == []
    assert access.finish("recorded") is False  # still not recordable: the row stays open
    assert len(_open_rows(site)) == 1
    busy[0] = False
    assert access.finish("recorded") is True
    assert _events(site) == [("switch-failed", DRAWER, POCKET)]
    assert _audit(site) == [("maintenance.failed", "switch-failed")]
    assert not _open_rows(site)
