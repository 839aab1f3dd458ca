"""Taking doses out at the cabinet (a nurse's withdrawal) and the cabinet's own hardware watch.

A withdrawal is a state machine driven by calls, like the restock session, so a CLI, a script or a
SimPy process can drive it and owns the waiting:

    begin_withdrawal(ctl, driver, cabinet, actor, pocket, qty)   rules first: may remove, item
        assigned, drawer in service, nothing expired or recalled in it, enough on hand
    unlock()        the access (access.py: `PocketAccess`) releases the drawer lock and the
                    pocket's own lock or lid together                              → UNLOCKED
    count(n)        the count on access, before anything is taken (`count_due`: always blind for
                    controlled substances, else the cabinet's count mode): recorded at once; a
                    `recount` outcome asks for one more count (counts.py)
    poll()          the access's poll: UNLOCKED → OPEN → CLOSED, every lock's relock judged
                    after the pulse and its grace, the drawer switch's sanity, a drawer that
                    opens again without an unlock, the left-open alarm; FAILED once the access
                    recorded a failure
    record(count)   the removal (refused while a count on access is due and not given), one
                    transaction with its audit entry; where a blind count-back
                    is due (controlled substances, or `count_back=True`), the count the person
                    entered is a second transaction (a difference opens a discrepancy)
    not_opened()    the person could not open it: the drawer goes out of service (open-failed)

Every failure of the access is recorded by the access (access.py), the same way as for a restock
line or a cycle count. `CabinetWatch.check()` reads the whole cabinet in one
snapshot and raises alarms for devices that stop answering, answer garbage, or weigh nonsense.
Nothing here knows which backend is behind the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from adc.controller import counts, inventory, maintenance, quarantine, rows, study_rules
from adc.controller.access import (
    OPEN_ALARM_S,
    AccessState,
    Alarm,
    PocketAccess,
    Points,
    UnlockIncomplete,
    pulse_length_s,
    raise_alarm,
    record_partial_unlock,
)
from adc.controller.cabinet_policy import CountMode
from adc.controller.context import Actor, Controller, require
from adc.controller.models import Drawer
from adc.controller.permissions import Action
from adc.controller.stock import block_from_rows
from adc.drivers.base import Quality, WeightReading
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.drivers.base import CabinetDriver


Phase = AccessState  # a withdrawal's phases are its access's states
__all__ = ["Alarm", "Phase", "UnlockIncomplete", "raise_alarm", "record_partial_unlock"]


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
    open_alarm_s: float = OPEN_ALARM_S
    count_due: CountMode = CountMode.NONE
    counted: counts.CountResult | None = None
    recorded: list[inventory.Movement] = field(default_factory=list)
    pulse_s: float = 0.0  # the longest unlock pulse among `points.locks` (0: from the profile)
    subject: str | None = None  # study stock: the subject's study id and the dose (study_rules)
    dose: str | None = None
    access: PocketAccess = field(init=False)

    def __post_init__(self) -> None:
        self.access = PocketAccess(
            self.ctl,
            self.driver,
            self.cabinet,
            self.actor,
            self.drawer,
            self.pocket,
            self.points,
            "withdrawal",
            pulse_s=self.pulse_s or pulse_length_s(self.driver.profile, self.points.locks),
            open_alarm_s=self.open_alarm_s,
        )
        self.pulse_s = self.access.pulse_s

    # what the access knows, as the withdrawal's callers read it
    @property
    def phase(self) -> Phase:
        """The access's state; FAILED once the access recorded a failure (the drawer is out of
        service), though the person's count and removal are still taken."""
        return Phase.FAILED if self.access.failures else self.access.state

    @property
    def alarms(self) -> list[Alarm]:
        return self.access.alarms

    @property
    def unlocked_at(self) -> datetime | None:
        return self.access.unlocked_at

    @property
    def closed_at(self) -> datetime | None:
        return self.access.closed_at

    @property
    def seen_open(self) -> bool:
        return self.access.opened

    @property
    def access_id(self) -> int | None:
        return self.access.access_id

    def unlock(self) -> None:
        """Release the drawer and the pocket's own lock together (a refusal releases neither);
        light the guide light.

        A `PartialUnlock` (one lock released, the other not, or not confirmed) is recorded and
        raised as `UnlockIncomplete`: where the drawer stayed locked the phase stays READY (try
        again, or stop: `finish()`); where it may have opened the drawer is out of service and
        the withdrawal FAILED (nothing can be recorded: the pocket was never unlocked)."""
        self._expect(Phase.READY)
        self.access.unlock()

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
        """Read the switches (and, once closed, the locks) and advance; call repeatedly."""
        if self.access.state not in (Phase.DONE, Phase.FAILED):
            self.access.poll()
        return self.phase

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
        movement = inventory.remove(
            self.ctl,
            self.actor,
            self.cabinet,
            self.pocket,
            self.qty,
            subject=self.subject,
            dose=self.dose,
        )
        self.recorded.append(movement)
        if self.count_back and count_back is not None:
            self.recorded.append(
                inventory.count(self.ctl, self.actor, self.cabinet, self.pocket, count_back)
            )
        self.access.stock_moved()
        return self.recorded

    def not_opened(self) -> Alarm:
        """The person pulled and it stayed shut: out of service until recovered."""
        return self.access.not_opened()

    def finish(self) -> None:
        """The person is done (whatever became of the access): the guide light goes off, the
        access is closed on record."""
        if self.access.state is Phase.DONE:
            return
        self.access.finish("recorded" if self.recorded else self.phase.value)

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


@study_rules.audit_refusals
def begin_withdrawal(
    ctl: Controller,
    driver: CabinetDriver,
    cabinet: str,
    actor: Actor,
    pocket_code: str,
    qty: int,
    *,
    count_back: bool | None = None,
    subject: str | None = None,
    dose: str | None = None,
) -> Withdrawal:
    """Check the rules before anything is unlocked; Refused says why not.

    `count_back` None: a blind count-back for controlled substances only (DEA counts).
    Investigational stock: `subject` (the study id) and `dose` are required (study_rules.py).
    """
    if qty <= 0:
        raise BadInput(f"quantity to remove must be at least 1, got {qty}")
    # Every nurse's visit starts here: read on the raw cursor (store.py), one snapshot.
    with ctl.read_fast() as store:
        user = require(rows.user(store, actor.user_id), actor.username, Action.REMOVE)
        pocket = rows.pocket(store, cabinet, pocket_code)
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned")
        study = study_rules.guard(store, pocket, user, "remove", subject=subject, dose=dose)
        drawer = rows.drawer(store, pocket.drawer_id)
        events = rows.drawer_events(store, cabinet, drawer.code)
        failures = maintenance.fold_failures(events, lambda uid: rows.username(store, uid))
        maintenance.refuse_if_failed(drawer.code, failures)
        block = block_from_rows(pocket.code, rows.held_lots(store, pocket.id), ctl.today())
        if block is not None:
            raise Refused(f"{block.reason}: removal blocked until it is pulled")
        quarantine.refuse_if_quarantined(store, pocket.id, pocket.code)
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
            subject=study.subject if study else None,
            dose=study.dose if study else None,
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
