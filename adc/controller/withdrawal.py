"""Taking doses out at the cabinet (a nurse's withdrawal) and the cabinet's own hardware watch.

A withdrawal is a state machine driven by calls, like the restock session, so a CLI, a script or a
SimPy process can drive it and owns the waiting:

    begin_withdrawal(ctl, driver, cabinet, actor, pocket, qty)   rules first: may remove, item
        assigned, drawer in service, nothing expired or recalled in it, enough on hand
    unlock()        pulse the drawer lock and the pocket's own lock or lid        → UNLOCKED
    count(n)        the count on access, before anything is taken (`count_due`: always blind for
                    controlled substances, else the cabinet's count mode): recorded at once; a
                    `recount` outcome asks for one more count (counts.py)
    poll()          UNLOCKED → OPEN (the access switch reads open)
                    OPEN → CLOSED (access and drawer switches closed; once the unlock pulse
                    is over the drawer lock must read engaged, within `RELOCK_GRACE_S`:
                    a pulsing lock reads released, so a fast close is no failure) →
                    watched: a drawer that opens again without an unlock did not relock;
                    one left open past `open_alarm_s` raises an alarm
    record(count)   the removal (refused while a count on access is due and not given), one
                    transaction with its audit entry; where a blind count-back
                    is due (controlled substances, or `count_back=True`), the count the person
                    entered is a second transaction (a difference opens a discrepancy)
    not_opened()    the person could not open it: the drawer goes out of service (open-failed)

Hardware trouble is recorded through `maintenance.mark_failed` (the drawer leaves service until a
recovery) or, for what does not block a drawer (a left-open drawer, a sensor, a device), as an
audited `alarm-*` maintenance event. `CabinetWatch.check()` reads the whole cabinet in one
snapshot and raises alarms for devices that stop answering, answer garbage, or weigh nonsense.
Nothing here knows which backend is behind the driver.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from adc.controller import counts, inventory, maintenance, rows
from adc.controller.access_log import close_access, open_access
from adc.controller.cabinet_policy import CountMode
from adc.controller.cabinets import get_cabinet
from adc.controller.context import Actor, Controller, require
from adc.controller.models import Drawer, MaintenanceEvent
from adc.controller.permissions import Action
from adc.controller.restock import DEFAULT_PULSE_S, RELOCK_GRACE_S, Points, pulse_length_s
from adc.controller.stock import block_from_rows
from adc.drivers.base import DriverError, PartialUnlock, Quality, WeightReading
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.drivers.base import CabinetDriver


class Phase(StrEnum):
    READY = "ready"
    UNLOCKED = "unlocked"
    OPEN = "open"
    CLOSED = "closed"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Alarm:
    """Something the cabinet noticed about its hardware (recorded, audited)."""

    kind: str  # open-failed, no-relock, switch-failed (drawer out of service); alarm-* otherwise
    detail: str
    drawer: str | None = None
    pocket: str | None = None
    device: str | None = None
    point: str | None = None
    event_id: int = 0


def raise_alarm(
    ctl: Controller,
    cabinet: str,
    kind: str,
    detail: str,
    *,
    drawer: str | None = None,
    pocket: str | None = None,
    device: str | None = None,
    point: str | None = None,
) -> Alarm:
    """Record what the cabinet noticed: a failure kind takes the drawer out of service, anything
    else is an `alarm-*` event for the service engineer. Both are audited, by the system."""
    if kind in maintenance.FAILURE_KINDS:
        assert drawer is not None
        event_id = maintenance.mark_failed(ctl, None, cabinet, drawer, kind, detail, pocket=pocket)
    else:
        with ctl.write(None, None) as tx:
            get_cabinet(tx.session, cabinet)
            event = MaintenanceEvent(
                cabinet_id=cabinet,
                drawer_code=drawer,
                pocket_code=pocket,
                kind=kind,
                detail=detail,
                at=tx.now,
            )
            tx.session.add(event)
            tx.session.flush()
            event_id = event.id or 0
            tx.audit(
                "maintenance.alarm",
                {
                    "cabinet": cabinet,
                    "kind": kind,
                    "detail": detail,
                    "drawer": drawer,
                    "pocket": pocket,
                    "device": device,
                    "point": point,
                    "id": event_id,
                },
            )
    return Alarm(kind, detail, drawer, pocket, device, point, event_id)


PARTIAL_UNLOCK_ALARM = "alarm-partial-unlock"  # a pocket's latch released, its drawer stayed shut
PARTIAL_UNLOCK_FAILURE = "failed"  # the drawer may have opened without its pocket: out of service


class UnlockIncomplete(PartialUnlock):
    """A `PartialUnlock` of a withdrawal or a restock line, recorded: `alarm` is the maintenance
    event, `out_of_service` says the drawer left service. The message says which lock opened
    and what to do; `released`, `not_released`, `unconfirmed` are the driver's account."""

    def __init__(self, partial: PartialUnlock, alarm: Alarm, message: str) -> None:
        super().__init__(partial.released, partial.not_released, partial.cause, partial.unconfirmed)
        self.message = message
        self.args = (message,)
        self.details = [*partial.details, f"maintenance event {alarm.event_id} ({alarm.kind})"]
        self.alarm = alarm
        self.out_of_service = alarm.kind in maintenance.FAILURE_KINDS


def record_partial_unlock(
    ctl: Controller,
    cabinet: str,
    err: PartialUnlock,
    *,
    drawer: str,
    pocket: str,
    drawer_lock: str,
    during: str,
) -> UnlockIncomplete:
    """Record a drawer and its pocket's lock that were not released together; the error to raise.

    Fail closed: where the drawer's lock was released, or any lock was sent without an answer
    (it may have pulsed), the drawer may have opened while its pocket stayed shut: a failure
    (`failed`: out of service until `adc diag recover` recounts every pocket in it). Where only
    the pocket's own latch was released inside a drawer that stayed locked, nothing was reachable:
    an `alarm-partial-unlock` for the service engineer, and the person may try again. Either way
    the event's detail names every lock released, not released and not confirmed.
    """
    unsure = set(err.unconfirmed)
    refused = [p for p in err.not_released if p not in unsure]
    fails = drawer_lock in err.released or bool(unsure)

    def locks(points: list[str] | tuple[str, ...]) -> str:
        return ", ".join(
            f"drawer {drawer}'s lock {p}" if p == drawer_lock else f"pocket {pocket}'s lock {p}"
            for p in points
        )

    account = [f"released {', '.join(err.released)}"]
    if refused:
        account.append(f"not released {', '.join(refused)}")
    if unsure:
        account.append(f"sent but not confirmed (may have pulsed) {', '.join(err.unconfirmed)}")
    detail = (
        f"partial unlock of pocket {pocket} in drawer {drawer} ({during}): "
        f"{'; '.join(account)} ({err.cause.message}): "
        + (
            "the drawer may have opened while the pocket stayed shut: out of service until "
            "recovered, every pocket in it recounted"
            if fails
            else "the drawer stayed locked; the released latch re-engages at the end of its pulse"
        )
    )
    alarm = raise_alarm(
        ctl,
        cabinet,
        PARTIAL_UNLOCK_FAILURE if fails else PARTIAL_UNLOCK_ALARM,
        detail,
        drawer=drawer,
        pocket=pocket,
        device=err.device,
        point=err.point,
    )
    said = f"pocket {pocket} was not unlocked as asked: {locks(err.released)} opened"
    if refused:
        said += f", {locks(refused)} did not"
    if unsure:
        said += f"; {locks(err.unconfirmed)} did not answer and may have opened"
    said += f" ({err.cause.message}). "
    if fails:
        said += (
            f"Close drawer {drawer}: it is out of service until recovered "
            f"(adc diag recover --drawer {drawer}); call service "
            f"(maintenance event {alarm.event_id})"
        )
    else:
        said += (
            f"Drawer {drawer} stayed locked: try again once the lock has re-armed, or stop here "
            f"(nothing was taken or added; alarm recorded, maintenance event {alarm.event_id})"
        )
    return UnlockIncomplete(err, alarm, said)


@dataclass
class Withdrawal:
    """One person's removal from one pocket; see the module docstring for the calls."""

    ctl: Controller
    driver: CabinetDriver
    cabinet: str
    actor: Actor
    pocket: str
    drawer: str
    qty: int
    count_back: bool
    points: Points
    open_alarm_s: float = 120.0
    count_due: CountMode = CountMode.NONE
    counted: counts.CountResult | None = None
    phase: Phase = Phase.READY
    unlocked_at: datetime | None = None
    closed_at: datetime | None = None
    seen_open: bool = False
    recorded: list[inventory.Movement] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    pulse_s: float = DEFAULT_PULSE_S  # the longest unlock pulse among `points.locks`
    access_id: int | None = None  # the access_log row written before the pulse
    _left_open_alarm: bool = False
    _door_shut: bool = False
    _relock_pending: bool = False

    def unlock(self) -> None:
        """Release the drawer and the pocket's own lock together (a refusal releases neither);
        light the guide light.

        A `PartialUnlock` (one lock released, the other not, or not confirmed) is recorded and
        raised as `UnlockIncomplete`: where the drawer stayed locked the phase stays READY (try
        again, or stop: `finish()`); where it may have opened the drawer is out of service and
        the withdrawal FAILED (nothing can be recorded: the pocket was never unlocked)."""
        self._expect(Phase.READY)
        if self.access_id is None:  # on record before the pulse: a crash is found next start
            self.access_id = open_access(
                self.ctl, self.actor, self.cabinet, self.drawer, self.pocket, "withdrawal"
            )
        try:
            self.driver.unlock_together(self.points.locks)  # all or none; PartialUnlock says which
        except PartialUnlock as err:
            failed = record_partial_unlock(
                self.ctl,
                self.cabinet,
                err,
                drawer=self.drawer,
                pocket=self.pocket,
                drawer_lock=self.points.drawer_lock,
                during=f"removal by {self.actor.username}",
            )
            self.alarms.append(failed.alarm)
            if failed.out_of_service:
                self.phase = Phase.FAILED
            raise failed from err
        if self.points.light:
            with contextlib.suppress(DriverError):  # a guide light helps; access goes on without
                self.driver.set_light(self.points.light, True)
        self.unlocked_at = self.ctl.now()
        self.phase = Phase.UNLOCKED

    def count(self, counted: int) -> counts.CountResult:
        """The person's count of the pocket as they find it, before taking anything (blind for a
        controlled substance: nothing here shows the expected number)."""
        self._expect_access(Phase.UNLOCKED, Phase.OPEN)
        if self.count_due is CountMode.NONE:
            raise Refused(f"pocket {self.pocket} needs no count on access")
        if self.counted is not None and self.counted.outcome is not counts.Outcome.RECOUNT:
            raise Refused(f"pocket {self.pocket} is counted already")
        self.counted = counts.count_pocket(
            self.ctl, self.actor, self.cabinet, self.pocket, counted, access="remove"
        )
        return self.counted

    def poll(self) -> Phase:
        """Read the switches (and, once closed, the drawer lock) and advance; call repeatedly."""
        if self.phase is Phase.UNLOCKED and not self.driver.input_active(self.points.access_switch):
            self.seen_open = True
            self.phase = Phase.OPEN
        if self.phase is Phase.OPEN and self.points.access_switch != self.points.drawer_switch:
            # a lid or door shut inside the open drawer latches at once: open again, it did not
            if self.driver.input_active(self.points.access_switch):
                self._door_shut = True
            elif self.driver.input_active(self.points.drawer_switch):
                # the pocket inside the drawer is open, so the drawer is: its switch is wrong
                self._fail(
                    "switch-failed",
                    f"{self.points.drawer_switch} reads drawer {self.drawer} closed while "
                    f"{self.points.access_switch} of {self.pocket} inside it reads open",
                )
                return self.phase
            elif self._door_shut:
                lock = self.points.locks[-1]
                self._fail("no-relock", f"{lock} let {self.pocket} open again")
                return self.phase
        if self.phase is Phase.OPEN:
            # in a fixed order (a set's order follows the hash seed): the same reads every run
            switches = dict.fromkeys((self.points.access_switch, self.points.drawer_switch))
            if all(self.driver.input_active(s) for s in switches):
                self.closed_at = self.ctl.now()
                self.phase = Phase.CLOSED
                self._relock_pending = True
            elif not self._left_open_alarm and self._open_for() > self.open_alarm_s:
                self._left_open_alarm = True
                self.alarms.append(
                    raise_alarm(
                        self.ctl,
                        self.cabinet,
                        "alarm-left-open",
                        f"drawer {self.drawer} open for over {self.open_alarm_s:g} s",
                        drawer=self.drawer,
                        point=self.points.drawer_switch,
                    )
                )
        elif self.phase is Phase.CLOSED and not self.driver.input_active(self.points.drawer_switch):
            self._fail("no-relock", f"drawer {self.drawer} opened again without an unlock")
        if self.phase is Phase.CLOSED and self._relock_pending:
            self._judge_relock()
        return self.phase

    def _judge_relock(self) -> None:
        """The drawer lock must read engaged once the unlock pulse is over (while it is on, the
        lock reads released by design: a fast close is no failure), within `RELOCK_GRACE_S` of
        the later of the pulse's end and the close; else the drawer leaves service."""
        now = self.ctl.now()
        pulse_end = (self.unlocked_at or now) + timedelta(seconds=self.pulse_s)
        if now < pulse_end:
            return
        try:
            engaged = self.driver.lock_engaged(self.points.drawer_lock)
        except DriverError:
            engaged = False  # unreadable: judged at the deadline like a loose lock
        if engaged:
            self._relock_pending = False
            return
        deadline = max(pulse_end, self.closed_at or now) + timedelta(seconds=RELOCK_GRACE_S)
        if now < deadline:
            return
        self._relock_pending = False
        self._fail(
            "no-relock",
            f"drawer lock {self.points.drawer_lock} not engaged after the close and the "
            f"{self.pulse_s:g} s pulse",
        )

    def _open_for(self) -> float:
        start = self.unlocked_at or self.ctl.now()
        return (self.ctl.now() - start).total_seconds()

    def record(self, count_back: int | None = None) -> list[inventory.Movement]:
        """Record the removal (and the blind count-back, where one is due).

        Allowed once the pocket was unlocked; a removal the switch never saw open is still the
        person's word and is recorded, and the switch is reported failed.
        """
        self._expect_access(Phase.UNLOCKED, Phase.OPEN, Phase.CLOSED)
        if self.recorded:
            raise Refused(f"the removal from {self.pocket} is recorded already")
        if self.count_back and count_back is None:
            raise BadInput(f"pocket {self.pocket} needs a blind count-back: enter what is left")
        if self.count_due is not CountMode.NONE and (
            self.counted is None or self.counted.outcome is counts.Outcome.RECOUNT
        ):
            what = "recount" if self.counted else f"{self.count_due.value} count"
            raise Refused(f"pocket {self.pocket} needs its {what} on access before the removal")
        movement = inventory.remove(self.ctl, self.actor, self.cabinet, self.pocket, self.qty)
        self.recorded.append(movement)
        if self.count_back and count_back is not None:
            self.recorded.append(
                inventory.count(self.ctl, self.actor, self.cabinet, self.pocket, count_back)
            )
        if not self.seen_open:
            self._fail(
                "switch-failed",
                f"removal confirmed but {self.points.access_switch} never read open",
            )
        return self.recorded

    def not_opened(self) -> Alarm:
        """The person pulled and it stayed shut: out of service until recovered."""
        self._expect(Phase.UNLOCKED)
        return self._fail(
            "open-failed", f"unlocked {', '.join(self.points.locks)} but it did not open"
        )

    def finish(self) -> None:
        """The person is done (whatever became of the access); the guide light goes off."""
        if self.points.light and self.phase is not Phase.DONE:
            with contextlib.suppress(DriverError):
                self.driver.set_light(self.points.light, False)
        outcome = "recorded" if self.recorded else self.phase.value
        if self.phase is not Phase.FAILED:
            self.phase = Phase.DONE
        if close_access(self.ctl, self.access_id, outcome):
            self.access_id = None

    def _fail(self, kind: str, detail: str) -> Alarm:
        alarm = raise_alarm(
            self.ctl, self.cabinet, kind, detail, drawer=self.drawer, pocket=self.pocket
        )
        self.alarms.append(alarm)
        self.phase = Phase.FAILED
        return alarm

    def _expect_access(self, *phases: Phase) -> None:
        """`_expect`, but a drawer that failed during this access (it was unlocked) still takes
        the person's count and removal: a hardware failure must not lose what they did."""
        if self.phase is Phase.FAILED and self.unlocked_at is not None:
            return
        self._expect(*phases)

    def _expect(self, *phases: Phase) -> None:
        if self.phase not in phases:
            wanted = " or ".join(p.value for p in phases)
            raise Refused(f"the withdrawal is {self.phase.value}, this step needs {wanted}")


def begin_withdrawal(
    ctl: Controller,
    driver: CabinetDriver,
    cabinet: str,
    actor: Actor,
    pocket_code: str,
    qty: int,
    *,
    count_back: bool | None = None,
) -> Withdrawal:
    """Check the rules before anything is unlocked; Refused says why not.

    `count_back` None: a blind count-back for controlled substances only (DEA counts).
    """
    if qty <= 0:
        raise BadInput(f"quantity to remove must be at least 1, got {qty}")
    # Every nurse's visit starts here: read on the raw cursor (store.py), one snapshot.
    with ctl.read_fast() as store:
        require(rows.user(store, actor.user_id), actor.username, Action.REMOVE)
        pocket = rows.pocket(store, cabinet, pocket_code)
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned")
        drawer = rows.drawer(store, pocket.drawer_id)
        events = rows.drawer_events(store, cabinet, drawer.code)
        failures = maintenance.fold_failures(events, lambda uid: rows.username(store, uid))
        maintenance.refuse_if_failed(drawer.code, failures)
        block = block_from_rows(pocket.code, rows.held_lots(store, pocket.id), ctl.today())
        if block is not None:
            raise Refused(f"{block.reason}: removal blocked until it is pulled")
        if qty > pocket.on_hand:
            raise Refused(f"pocket {pocket.code} holds {pocket.on_hand}, cannot remove {qty}")
        item = rows.item(store, pocket.item_id)
        controlled = item is not None and item.schedule is not None
        points = Points.of(pocket, drawer)  # type: ignore[arg-type]
        return Withdrawal(
            ctl=ctl,
            driver=driver,
            cabinet=cabinet,
            actor=actor,
            pocket=pocket.code,
            drawer=drawer.code,
            qty=qty,
            count_back=controlled or bool(count_back),
            points=points,
            count_due=counts.count_mode_of_row(store, pocket, item),
            pulse_s=pulse_length_s(driver.profile, points.locks),
        )


# ------------------------------------------------------------------------------ hardware watch
@dataclass
class CabinetWatch:
    """Checks the cabinet's hardware from one snapshot at a time and raises each alarm once.

    - a device that does not answer: `alarm-device-offline` (until it answers again);
    - a device whose requests failed or were retried since the last check: `alarm-bus-errors`;
    - a scale channel reporting FAULT, or UNSTABLE at two checks in a row (a settling scale is
      unstable for well under a second): `alarm-sensor`;
    - a drawer reading open at two checks in a row: `alarm-door-open`.
    """

    ctl: Controller
    driver: CabinetDriver
    cabinet: str
    _active: set[tuple[str, str]] = field(default_factory=set)
    _unstable: set[str] = field(default_factory=set)
    _open: set[str] = field(default_factory=set)
    _bad: dict[str, int] = field(default_factory=dict)
    _drawers: dict[str, str] | None = None

    def check(self) -> list[Alarm]:
        snap = self.driver.snapshot()
        raised: list[Alarm] = []
        now_active: set[tuple[str, str]] = set()
        for name, health in snap.health.items():
            if not health.online and health.requests:
                now_active.add(("alarm-device-offline", name))
            bad = health.errors + health.retries + health.timeouts
            if bad > self._bad.get(name, 0) and health.online:
                now_active.add(("alarm-bus-errors", name))
            self._bad[name] = bad
        unstable_now: set[str] = set()
        for point, reading in snap.weights.items():
            if not isinstance(reading, WeightReading):
                continue
            if reading.quality is Quality.FAULT or reading.quality is Quality.OVERLOAD:
                now_active.add(("alarm-sensor", point))
            elif reading.quality is Quality.UNSTABLE:
                unstable_now.add(point)
                if point in self._unstable:
                    now_active.add(("alarm-sensor", point))
        self._unstable = unstable_now
        open_now = {
            code
            for code, switch in self._drawer_switches().items()
            if snap.inputs.get(switch) is False
        }
        for code in open_now & self._open:
            now_active.add(("alarm-door-open", code))
        self._open = open_now
        for kind, what in sorted(now_active - self._active):
            raised.append(self._raise(kind, what))
        self._active = now_active
        return raised

    def _drawer_switches(self) -> dict[str, str]:
        if self._drawers is None:
            from sqlalchemy import select

            with self.ctl.read() as session:
                rows = session.execute(
                    select(Drawer.code, Drawer.switch_point).where(
                        Drawer.cabinet_id == self.cabinet
                    )
                ).all()
            self._drawers = {code: switch for code, switch in rows}
        return self._drawers

    def _raise(self, kind: str, what: str) -> Alarm:
        if kind == "alarm-door-open":
            return raise_alarm(
                self.ctl,
                self.cabinet,
                kind,
                f"drawer {what} reads open at two checks in a row",
                drawer=what,
                point=self._drawer_switches()[what],
            )
        if kind == "alarm-sensor":
            return raise_alarm(
                self.ctl,
                self.cabinet,
                kind,
                f"scale {what} reports a fault or does not settle",
                device=what.partition(":")[0],
                point=what,
            )
        detail = "does not answer" if kind == "alarm-device-offline" else "requests failing"
        return raise_alarm(self.ctl, self.cabinet, kind, f"device {what} {detail}", device=what)
