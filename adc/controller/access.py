"""One pocket access: the one state machine that opens a pocket for a person.

Every unlock in the product goes through here: a restock line, a nurse's withdrawal, a cycle
count, the demo, the service engineer's recovery. The caller keeps its own steps (scan, count,
weigh, record); the access owns everything between "this person may open this pocket" and "the
pocket is shut and locked again", and records every failure of it the same way for every caller.

    PocketAccess(...)          READY
    unlock()                   READY/CLOSED → UNLOCKED   in service? the access on record (the
                               access log, before the pulse), the drawer and pocket locks released
                               together (`unlock_together`), guide light on. A `PartialUnlock` is
                               recorded and raised as `UnlockIncomplete` (READY, or FAILED where
                               the drawer may have opened).
    poll()  (repeat; the caller waits in between, on its own waiter)
        UNLOCKED → OPEN        the access switch (lid, door, else the drawer) reads open
        UNLOCKED → READY       not opened within the policy's unlock-timeout: the latch holds again
        OPEN → CLOSED          every switch reads closed
        CLOSED → OPEN          opened again: inside the pulse that is the person; after it, a lock
                               that did not hold (relock-failed)
        in OPEN                a lid open inside a drawer whose switch reads closed: the drawer
                               switch lies (switch-failed); a lid shut and open again after the
                               pulse: its lock did not hold (relock-failed); open past
                               `open_alarm_s` since the unlock: `alarm-left-open` (once)
        after a close or a relatch   every lock must read engaged once the pulse is over, within
                               `RELOCK_GRACE_S` of the later of the pulse's end and the close:
                               one loose or unreadable is `relock-failed`. While a pulse is on a
                               lock reads released by design, so nothing is judged then.
    not_opened()               the person says it did not open: open-failed → FAILED
    stock_moved()              the caller recorded stock moved: an access switch that never read
                               open has failed (switch-failed)
    finish(outcome)            light off, the access closed on record → DONE (or FAILED)

A failure is a maintenance event of a `MaintenanceKind` failure (the drawer is out of service
until `adc diag recover`) with its audit entry (`maintenance.failed`), recorded once per access
and kind, by the system; an alarm likewise (`maintenance.alarm`). The access goes on after a
failure seen while it is open (the person's count and record are never lost); it is FAILED when
nothing more can come of it. The clock is the controller's; the machine never sleeps.

`ServiceCycle` is the machine's service mode: a service engineer cycling one lock (diagnostics:
`adc diag selftest`, `calibrate`, `recover`). It has no in-service check (a drawer out of service
is what the engineer tests and recovers) and no open/close tracking of its own (the procedure
watches the door and measures), but it shares the rest: the access is on the access log before the
pulse (so a kill -9 in the middle is flagged at the next start, as for any access), the relock is
judged by `relock_verdict`, the same judgement and grace as `PocketAccess`, and a relock failure
is recorded the same way (`relock-failed`, out of service). It pulses one lock, so a partial
unlock cannot arise; a pulse that failed after it may have gone out is judged as sent (fail
closed).

`service_pulse` releases a lock with no access at all: only for a virtual cabinet with no
database behind it (`adc demo`'s hardware scene), where nobody's access exists to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from adc.controller import maintenance
from adc.controller.access_log import close_access, open_access
from adc.controller.cabinets import get_cabinet
from adc.controller.context import Actor, Controller
from adc.controller.dberrors import DatabaseUnavailable
from adc.controller.maintenance import FAILURE_KINDS, MaintenanceKind, refuse_if_failed
from adc.controller.models import Drawer, MaintenanceEvent, Pocket
from adc.drivers.base import DriverError, PartialUnlock, RearmRefused

if TYPE_CHECKING:
    from adc.drivers.base import CabinetDriver
    from adc.profiles.models import Profile

RELOCK_GRACE_S = 1.0  # after the pulse ended (or the door shut, if later): time to re-engage
DEFAULT_PULSE_S = 0.5  # a lock whose device the profile does not describe (profiles default 500 ms)
OPEN_ALARM_S = 120.0  # open this long since the unlock: alarm-left-open

__all__ = [
    "DEFAULT_PULSE_S",
    "OPEN_ALARM_S",
    "RELOCK_GRACE_S",
    "AccessState",
    "Alarm",
    "MaintenanceKind",
    "PocketAccess",
    "Points",
    "RelockVerdict",
    "ServiceCycle",
    "UnlockIncomplete",
    "pulse_length_s",
    "raise_alarm",
    "record_partial_unlock",
    "relock_verdict",
    "service_pulse",
]


class AccessState(StrEnum):
    READY = "ready"
    UNLOCKED = "unlocked"
    OPEN = "open"
    CLOSED = "closed"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Points:
    """The device points of one pocket, as registered from the profile."""

    locks: tuple[str, ...]  # drawer lock, then the pocket's own lock or lid lock
    access_switch: str  # the switch that shows the pocket open: lid, door, or the drawer
    drawer_switch: str
    drawer_lock: str
    light: str | None
    sensor_kind: str
    sensor_point: str | None

    @classmethod
    def of(cls, pocket: Pocket, drawer: Drawer) -> Points:
        own_lock = pocket.lid_lock_point or pocket.lock_point
        return cls(
            locks=(drawer.lock_point, own_lock) if own_lock else (drawer.lock_point,),
            access_switch=pocket.lid_switch_point or pocket.switch_point or drawer.switch_point,
            drawer_switch=drawer.switch_point,
            drawer_lock=drawer.lock_point,
            light=pocket.light_point or drawer.light_point,
            sensor_kind=pocket.sensor_kind,
            sensor_point=pocket.sensor_point,
        )


def pulse_length_s(profile: Profile, locks: tuple[str, ...]) -> float:
    """The longest unlock pulse among `locks`, from their devices' solenoid settings in the
    profile (`DEFAULT_PULSE_S` for a lock whose device the profile does not describe)."""
    longest = 0.0
    for point in locks:
        device = profile.devices.get(point.partition(":")[0])
        solenoid = getattr(device, "solenoid", None)
        pulse_ms = getattr(solenoid, "pulse_ms", None)
        longest = max(longest, pulse_ms / 1000 if pulse_ms else DEFAULT_PULSE_S)
    return longest or DEFAULT_PULSE_S


# ------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Alarm:
    """Something the cabinet noticed about its hardware (recorded, audited)."""

    kind: str  # a MaintenanceKind: a failure (the drawer leaves service) or an alarm-*
    detail: str
    drawer: str | None = None
    pocket: str | None = None
    device: str | None = None
    point: str | None = None
    event_id: int = 0

    @property
    def is_failure(self) -> bool:
        return self.kind in FAILURE_KINDS


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
    kind = maintenance.canonical_kind(str(kind))
    if kind in FAILURE_KINDS:
        assert drawer is not None
        event_id = maintenance.mark_failed(ctl, None, cabinet, drawer, kind, detail, pocket=pocket)
    else:
        with ctl.write(None, None, cabinet=cabinet) as tx:
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


class UnlockIncomplete(PartialUnlock):
    """A `PartialUnlock` of an access, recorded: `alarm` is the maintenance event,
    `out_of_service` says the drawer left service. The message says which lock opened and what
    to do; `released`, `not_released`, `unconfirmed` are the driver's account."""

    def __init__(self, partial: PartialUnlock, alarm: Alarm, message: str) -> None:
        super().__init__(partial.released, partial.not_released, partial.cause, partial.unconfirmed)
        self.message = message
        self.args = (message,)
        self.details = [*partial.details, f"maintenance event {alarm.event_id} ({alarm.kind})"]
        self.alarm = alarm
        self.out_of_service = alarm.is_failure


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
    (`partial-unlock`: out of service until `adc diag recover` recounts every pocket in it).
    Where only the pocket's own latch was released inside a drawer that stayed locked, nothing
    was reachable: an `alarm-partial-unlock` for the service engineer, and the person may try
    again. Either way the event's detail names every lock released, not released and not
    confirmed.
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
        MaintenanceKind.PARTIAL_UNLOCK if fails else MaintenanceKind.ALARM_PARTIAL_UNLOCK,
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


def service_pulse(driver: CabinetDriver, lock: str) -> None:
    """Pulse one lock with no access on record. Only for a virtual cabinet with no database behind
    it (`adc demo`'s hardware scene: nobody's access, nothing to flag at a next start). Anything
    with a database opens through a `PocketAccess` or a `ServiceCycle`."""
    driver.pulse(lock)


# ------------------------------------------------------------------------ the relock judgement
@dataclass(frozen=True)
class RelockVerdict:
    """`relock_verdict`'s answer: `judged` False means wait and ask again; judged and not `held`
    is a relock failure, `what` says how."""

    judged: bool
    held: bool = False
    what: str = ""


def relock_verdict(
    driver: CabinetDriver,
    locks: tuple[str, ...],
    pulse_s: float,
    *,
    pulse_end: datetime,
    closed_at: datetime | None,
    now: datetime,
    final: bool = False,
) -> RelockVerdict:
    """The one relock judgement (a person's access and a service cycle alike): every lock must
    read engaged once the pulse is over, within `RELOCK_GRACE_S` of the later of the pulse's end
    and the close; one still loose (or unreadable) after that is a failure. While the pulse is on
    nothing is judged (a pulsing lock reads released by design). `final`: no more waiting (the
    access ends now): judge what the locks read."""
    if now < pulse_end and not final:
        return RelockVerdict(False)
    loose: list[str] = []
    error: DriverError | None = None
    for point in locks:
        try:
            if not driver.lock_engaged(point):
                loose.append(point)
        except DriverError as err:
            error = err
    if not loose and error is None:
        return RelockVerdict(True, True)
    deadline = max(pulse_end, closed_at or now) + timedelta(seconds=RELOCK_GRACE_S)
    if now < deadline and not final:
        return RelockVerdict(False)  # a latch may take a moment after the pulse; a read may fail
    if loose:
        what = f"lock {', '.join(loose)} not engaged after the close and the {pulse_s:g} s pulse"
    else:
        assert error is not None
        what = f"lock state unreadable after the close ({error.message})"
    return RelockVerdict(True, False, what)


# ---------------------------------------------------------------------------- the machine
@dataclass
class PocketAccess:
    """One person's access to one pocket; see the module docstring for the calls."""

    ctl: Controller
    driver: CabinetDriver
    cabinet: str
    actor: Actor | None
    drawer: str
    pocket: str
    points: Points
    purpose: str  # restock, withdrawal, count, recovery, demo: on the access log and in details
    session: str = ""
    pulse_s: float = DEFAULT_PULSE_S
    open_alarm_s: float = OPEN_ALARM_S
    state: AccessState = AccessState.READY
    unlocked_at: datetime | None = None
    closed_at: datetime | None = None
    opened: bool = False  # the access switch read open at least once
    access_id: int | None = None  # the access_log row, written before the first pulse
    alarms: list[Alarm] = field(default_factory=list)  # every event this access recorded
    notes: list[str] = field(default_factory=list)  # what the person's screen should say
    relock_judged: bool = True  # False from a close (or a relatch) until its relock is judged
    timeouts: int = 0  # unlocks that relatched unopened
    _door_shut: bool = False
    _left_open_alarm: bool = False
    _unrecorded: list[tuple[MaintenanceKind, str]] = field(default_factory=list)

    @classmethod
    def for_pocket(
        cls,
        ctl: Controller,
        driver: CabinetDriver,
        cabinet: str,
        actor: Actor | None,
        pocket_code: str,
        purpose: str,
        session: str = "",
    ) -> PocketAccess:
        """An access to a registered pocket, its points read from the database."""
        from adc.controller import rows

        with ctl.read_fast() as store:
            pocket = rows.pocket(store, cabinet, pocket_code)
            drawer = rows.drawer(store, pocket.drawer_id)
            points = Points.of(pocket, drawer)  # type: ignore[arg-type]
            drawer_code = drawer.code
        return cls(
            ctl,
            driver,
            cabinet,
            actor,
            drawer_code,
            pocket.code,
            points,
            purpose,
            session,
            pulse_s=pulse_length_s(driver.profile, points.locks),
        )

    # ------------------------------------------------------------------------------- reading
    @property
    def failures(self) -> list[Alarm]:
        """The failures recorded in this access (each took the drawer out of service)."""
        return [a for a in self.alarms if a.is_failure]

    def failure(self, kind: MaintenanceKind) -> Alarm | None:
        return next((a for a in self.alarms if a.kind == kind), None)

    @property
    def during(self) -> str:
        who = self.actor.username if self.actor else "the system"
        return f"{self.purpose} by {who}"  # the session is on the access log row

    def pulse_end(self) -> datetime | None:
        """When the last unlock pulse ends (None: never unlocked). Until then a latch read says
        nothing: the bolt retracts a moment after the pulse starts and stays so to its end."""
        if self.unlocked_at is None:
            return None
        return self.unlocked_at + timedelta(seconds=self.pulse_s)

    def pulsing(self) -> bool:
        end = self.pulse_end()
        return end is not None and self.ctl.now() < end

    @property
    def settled(self) -> bool:
        """Closed (or relatched) and its relock judged: the caller may weigh and record."""
        return self.state in (AccessState.CLOSED, AccessState.READY) and self.relock_judged

    def latched(self) -> bool | None:
        """Whether the pocket is shut and locked: False while a door of it reads open; None while
        the unlock pulse is on (a pulsing lock reads released by design) or a switch or lock
        cannot be read; else whether every lock reads engaged."""
        points = self.points
        try:
            switches = dict.fromkeys((points.access_switch, points.drawer_switch))  # fixed order
            if not all(self.driver.input_active(s) for s in switches):
                return False
            if self.pulsing():
                return None
            return all(self.driver.lock_engaged(p) for p in points.locks)
        except DriverError:
            return None

    # ------------------------------------------------------------------------------- calls
    def unlock(self) -> None:
        """Release the drawer and the pocket's own lock together (a refusal releases neither);
        light the guide light. From READY, or from CLOSED to open again and correct.

        Refused while the drawer is out of service for anything but this access's own failures.
        The access is on the database before the pulse (a crash is found at the next start). A
        driver error leaves the state. A `PartialUnlock` is recorded and raised as
        `UnlockIncomplete`: where the drawer stayed locked the state stays READY (try again, or
        stop); where it may have opened the access is FAILED and the drawer out of service."""
        if self.state is AccessState.FAILED:
            out = maintenance.out_of_service(self.ctl, self.cabinet)
            refuse_if_failed(self.drawer, out.get(self.drawer, []))
        if self.state not in (AccessState.READY, AccessState.CLOSED):
            self._refuse("this step needs ready or closed")
        own = {a.event_id for a in self.alarms}
        failures = [
            f
            for f in maintenance.out_of_service(self.ctl, self.cabinet).get(self.drawer, [])
            if f.id not in own
        ]
        refuse_if_failed(self.drawer, failures)
        if self.access_id is None:
            self.access_id = open_access(
                self.ctl, self.actor, self.cabinet, self.drawer, self.pocket, self.purpose,
                self.session,
            )  # fmt: skip
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
                during=self.during,
            )
            self.alarms.append(failed.alarm)
            if failed.out_of_service:
                self.state = AccessState.FAILED
            raise failed from err
        self._light(True)
        self.unlocked_at = self.ctl.now()
        self.closed_at = None
        self._door_shut = False
        self.relock_judged = True  # nothing to judge until a close or a relatch
        self.state = AccessState.UNLOCKED

    def poll(self) -> AccessState:
        """Read the switches (and, after a close, the locks) and advance; call repeatedly."""
        now = self.ctl.now()
        points = self.points
        if self.state is AccessState.UNLOCKED:
            if not self.driver.input_active(points.access_switch):
                self.opened = True
                self.state = AccessState.OPEN
            elif (
                self._seconds_since(self.unlocked_at, now) > self.ctl.policy.unlock_timeout_s
                and self.driver.input_active(points.drawer_switch)  # a drawer held open waits
            ):
                timeout = self.ctl.policy.unlock_timeout_s
                self.notes.append(f"not opened within {timeout} s: unlock again")
                self.timeouts += 1
                self.closed_at = now
                self.relock_judged = False  # the latches must hold again
                self.state = AccessState.READY
        elif self.state is AccessState.CLOSED:
            switches = dict.fromkeys((points.access_switch, points.drawer_switch))
            if not all(self.driver.input_active(s) for s in switches):
                if not self.pulsing():
                    self._fail(
                        MaintenanceKind.RELOCK_FAILED,
                        f"{self._where()} opened again without an unlock after the "
                        f"{self.pulse_s:g} s pulse ({self.during})",
                    )
                self.relock_judged = True  # judged: it did not hold (or the pulse let it open)
                self.state = AccessState.OPEN
        if self.state is AccessState.OPEN:
            self._watch_open(now)
        if self.state in (AccessState.CLOSED, AccessState.READY) and not self.relock_judged:
            self._judge_relock(now)
        return self.state

    def _watch_open(self, now: datetime) -> None:
        points = self.points
        if points.access_switch != points.drawer_switch:
            if self.driver.input_active(points.access_switch):
                self._door_shut = True  # a lid or door shut inside the open drawer
            elif self.driver.input_active(points.drawer_switch):
                # the pocket inside the drawer is open, so the drawer is: its switch is wrong
                self._fail(
                    MaintenanceKind.SWITCH_FAILED,
                    f"{points.drawer_switch} reads drawer {self.drawer} closed while "
                    f"{points.access_switch} of {self.pocket} inside it reads open "
                    f"({self.during})",
                )
                self.notes.append(
                    f"drawer {self.drawer}'s switch reads closed while the pocket is open: the "
                    f"drawer is out of service until recovered (adc diag recover --drawer "
                    f"{self.drawer}); call service"
                )
            elif self._door_shut:
                self._door_shut = False
                if not self.pulsing():  # shut after the pulse, it latched: open again, it did not
                    lock = points.locks[-1]
                    self._fail(
                        MaintenanceKind.RELOCK_FAILED,
                        f"{lock} let {self.pocket} open again after it was shut ({self.during})",
                    )
        switches = dict.fromkeys((points.access_switch, points.drawer_switch))  # fixed order
        if all(self.driver.input_active(s) for s in switches):
            self.closed_at = now
            self._door_shut = False
            self.relock_judged = False
            self.state = AccessState.CLOSED
        elif (
            not self._left_open_alarm
            and self._seconds_since(self.unlocked_at, now) > self.open_alarm_s
        ):
            self.alarms.append(
                raise_alarm(
                    self.ctl,
                    self.cabinet,
                    MaintenanceKind.ALARM_LEFT_OPEN,
                    f"drawer {self.drawer} open for over {self.open_alarm_s:g} s ({self.during})",
                    drawer=self.drawer,
                    pocket=self.pocket,
                    point=points.drawer_switch,
                )
            )
            self._left_open_alarm = True  # once recorded (a busy database: the next poll tries)
            self.notes.append(f"drawer {self.drawer} is open too long: close it")

    def _judge_relock(self, now: datetime) -> None:
        """`relock_verdict` over every lock of the pocket; a failure takes the drawer out."""
        verdict = relock_verdict(
            self.driver,
            self.points.locks,
            self.pulse_s,
            pulse_end=self.pulse_end() or now,
            closed_at=self.closed_at,
            now=now,
        )
        if not verdict.judged:
            return
        if verdict.held:
            self.relock_judged = True
            return
        what = verdict.what
        self._fail(
            MaintenanceKind.RELOCK_FAILED,
            f"{what}: drawer {self.drawer}, pocket {self.pocket} ({self.during})",
        )  # a database that cannot take it raises: judged (and recorded) at the next poll
        self.relock_judged = True
        self.notes.append(
            f"drawer {self.drawer} did not lock again ({what}): it is out of service until "
            f"recovered (adc diag recover --drawer {self.drawer}); call service"
        )

    def not_opened(self) -> Alarm:
        """The person pulled and it stayed shut (while unlocked, or after it relatched unopened):
        open-failed, the drawer out of service until recovered; the access is FAILED."""
        if (
            self.opened
            or self.unlocked_at is None
            or self.state
            not in (
                AccessState.UNLOCKED,
                AccessState.READY,
            )
        ):
            self._refuse("this step needs a pocket unlocked and never opened")
        alarm = self._fail(
            MaintenanceKind.OPEN_FAILED,
            f"unlocked {', '.join(self.points.locks)} but it did not open ({self.during})",
        )
        self.state = AccessState.FAILED
        return alarm

    def stock_moved(self) -> None:
        """The caller recorded stock moved in this access: where the access switch never read
        open, the switch has failed (what the person did is recorded all the same)."""
        if self.unlocked_at is not None and not self.opened:
            detail = (
                f"stock recorded but {self.points.access_switch} never read open ({self.during})"
            )
            try:
                self._fail(MaintenanceKind.SWITCH_FAILED, detail)
            except DatabaseUnavailable:
                # The stock is on record: the caller must not see its record fail (a retry would
                # record it twice). The failure is tried again when the access closes; until it
                # is recorded the access stays open, so the next start flags the drawer.
                self._unrecorded.append((MaintenanceKind.SWITCH_FAILED, detail))
                self.notes.append(
                    f"the switch failure of drawer {self.drawer} could not be recorded yet: "
                    "it is tried again when the access closes"
                )

    def unlock_not_on_record(self, said: str) -> Alarm:
        """The database failed in the middle of this access's unlock, after the access was on
        record (while recording a partial unlock): a lock may have been released, so the drawer
        is flagged for a blind recount (`failed`, out of service until recovered).
        DatabaseUnavailable where the database refuses this too (the caller tries again)."""
        return self._fail(
            MaintenanceKind.FAILED,
            f"unlock of pocket {self.pocket} in drawer {self.drawer} not completed on record "
            f"({self.during}): {said}; a lock may have been released: contents unknown, "
            "blind recount required",
        )

    def flag_for_recount(self, reason: str) -> Alarm:
        """The access ends with what was done in the pocket unknown (opened, then interrupted
        before anything was recorded): `failed`, a blind recount clears it."""
        return self._fail(
            MaintenanceKind.FAILED,
            f"{reason}: pocket {self.pocket} was opened and nothing recorded ({self.during}): "
            "contents unknown, blind recount required",
        )

    def finish(self, outcome: str | None = None) -> bool:
        """The person is done (whatever became of the access): the guide light goes off and the
        access is closed on record. False where the database could not take it (the row stays
        open: the drawer is flagged for a blind recount at the next start)."""
        if self.unlocked_at is not None and self.state is not AccessState.DONE:
            self._light(False)
        if self.state is AccessState.FAILED and outcome != "recorded":
            # Nothing was recorded and the access failed: that is what happened (the caller's
            # word would read "left" or "abandoned", as if the person walked away).
            outcome = AccessState.FAILED.value
        if not self._record_deferred():
            return False  # left open on the access log: the next start flags the drawer
        done = close_access(self.ctl, self.access_id, outcome or self.state.value)
        if done:
            self.access_id = None
        else:
            self.notes.append(
                "the access could not be closed in the database: the drawer will be flagged "
                "for a blind recount at the next start"
            )
        if self.state is not AccessState.FAILED:
            self.state = AccessState.DONE
        return done

    # ------------------------------------------------------------------------------ helpers
    def _record_deferred(self) -> bool:
        """Record the failures the database could not take when they were found; False while
        one still cannot be."""
        while self._unrecorded:
            kind, detail = self._unrecorded[0]
            try:
                self._fail(kind, detail)
            except DatabaseUnavailable:
                return False
            self._unrecorded.pop(0)
        return True

    def _fail(self, kind: MaintenanceKind, detail: str) -> Alarm:
        """Record a failure once per access and kind (the first says it)."""
        already = self.failure(kind)
        if already is not None:
            return already
        alarm = raise_alarm(
            self.ctl, self.cabinet, kind, detail, drawer=self.drawer, pocket=self.pocket
        )
        self.alarms.append(alarm)
        return alarm

    def _light(self, on: bool) -> None:
        if not self.points.light:
            return
        try:
            self.driver.set_light(self.points.light, on)
        except DriverError as err:  # a guide light helps; the access goes on without it
            self.notes.append(
                f"guide light could not be turned {'on' if on else 'off'}: {err.message}"
            )

    def _where(self) -> str:
        return (
            f"drawer {self.drawer}"
            if self.points.access_switch == self.points.drawer_switch
            else f"pocket {self.pocket} in drawer {self.drawer}"
        )

    def _seconds_since(self, then: datetime | None, now: datetime) -> float:
        return (now - then).total_seconds() if then is not None else 0.0

    def _refuse(self, wanted: str) -> None:
        from adc.errors import Refused

        raise Refused(f"the access to {self.pocket} is {self.state.value}: {wanted}")


# ------------------------------------------------------------------------ the service mode
@dataclass
class ServiceCycle:
    """The access machine's service mode: a service engineer cycling one lock (diagnostics).

    READY --unlock()--> UNLOCKED --relock()/finish()--> DONE, or FAILED (relock-failed recorded).
    `unlock()` writes the access log row before the pulse (attributed to the service user; a
    database that cannot take it refuses with nothing pulsed) and may be called again after a
    `RearmRefused` (nothing was sent). `shut()` says the door was closed (the grace runs from the
    later of that and the pulse's end). `relock()` is `relock_verdict` on this lock: None while
    it is too early to say. `finish()` closes the row; a lock pulsed and never seen engaged is
    judged there and then (fail closed: an interrupted procedure leaves no lock unjudged).
    """

    ctl: Controller
    driver: CabinetDriver
    cabinet: str
    actor: Actor
    drawer: str
    pocket: str | None  # the pocket whose own lid or door this lock holds; None: the drawer's
    lock: str
    purpose: str  # selftest, calibrate, recover: on the access log row
    pulse_s: float = DEFAULT_PULSE_S
    session: str = ""
    state: AccessState = AccessState.READY
    access_id: int | None = None
    unlocked_at: datetime | None = None
    closed_at: datetime | None = None
    held: bool | None = None  # the relock verdict once judged
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def during(self) -> str:
        return f"{self.purpose} by {self.actor.username}"

    def unlock(self) -> None:
        """The row first, then the pulse. `RearmRefused` (nothing sent) leaves it READY; a
        `LockNotReleased` went out once, and any other driver error may have: either way the
        lock is UNLOCKED for the judgement, and the error is raised for the procedure to report."""
        if self.state is not AccessState.READY:
            from adc.errors import Refused

            raise Refused(f"the service cycle of {self.lock} is {self.state.value}: unlock once")
        if self.access_id is None:
            self.access_id = open_access(
                self.ctl, self.actor, self.cabinet, self.drawer, self.pocket, self.purpose,
                self.session,
            )  # fmt: skip
        self._unlocked()  # from here an interrupt (Ctrl-C) leaves the lock to be judged
        try:
            self.driver.pulse(self.lock)
        except RearmRefused:
            self.unlocked_at, self.state = None, AccessState.READY  # nothing was sent
            raise
        # any other DriverError propagates UNLOCKED: LockNotReleased went out once, any other
        # error may have gone out; the relock is judged as for a pulse that did
        self.unlocked_at = self.ctl.now()  # the pulse is judged from its return, as an access's

    def shut(self) -> None:
        """The door was closed (by the person, as the procedure saw it)."""
        self.closed_at = self.ctl.now()

    def relock(self, *, final: bool = False) -> bool | None:
        """Whether the lock holds again: None while it is too early to say (`final`: judge now).
        A failure is recorded once: relock-failed, the drawer out of service until recovered."""
        if self.held is not None or self.unlocked_at is None:
            return self.held
        verdict = relock_verdict(
            self.driver,
            (self.lock,),
            self.pulse_s,
            pulse_end=self.unlocked_at + timedelta(seconds=self.pulse_s),
            closed_at=self.closed_at,
            now=self.ctl.now(),
            final=final,
        )
        if not verdict.judged:
            return None
        self.held = verdict.held
        if not verdict.held:
            where = f"pocket {self.pocket} in drawer {self.drawer}" if self.pocket else (
                f"drawer {self.drawer}"
            )  # fmt: skip
            self.alarms.append(
                raise_alarm(
                    self.ctl,
                    self.cabinet,
                    MaintenanceKind.RELOCK_FAILED,
                    f"{verdict.what}: {where} ({self.during})",
                    drawer=self.drawer,
                    pocket=self.pocket,
                    point=self.lock,
                )
            )
            self.state = AccessState.FAILED
        return self.held

    def finish(self, outcome: str | None = None) -> bool:
        """The cycle is over (however it ended): judge a lock not yet judged, close the row.
        False where the database could not take the close (flagged at the next start)."""
        if self.state is AccessState.DONE:
            return True
        if self.unlocked_at is not None and self.held is None:
            self.relock(final=True)  # a failure that cannot be recorded leaves the row open
        if self.state is not AccessState.FAILED:
            self.state = AccessState.DONE
        done = close_access(self.ctl, self.access_id, outcome or self.state.value)
        if done:
            self.access_id = None
        return done

    def _unlocked(self) -> None:
        self.unlocked_at = self.ctl.now()
        self.closed_at = None
        self.state = AccessState.UNLOCKED
