"""The restock session: a state machine driven by calls, for a CLI, a script or a SimPy process.

    begin_restock(ctl, driver, cabinet, actor)            authenticated actor, driver of that cabinet
    └ per line: select(pocket, kind) or next_line()       IDLE → AWAITING_SCAN (refill, load)
                scan(raw)                                  → READY_TO_UNLOCK, or NEEDS_CONFIRMATION
                confirm_short_dated()                      NEEDS_CONFIRMATION → READY_TO_UNLOCK
                reject_short_dated()                       NEEDS_CONFIRMATION → AWAITING_SCAN
                unlock()                                   pulse drawer + pocket lock, light on → UNLOCKED
                poll()  (repeat; the caller waits)         → OPEN → SETTLING → CLOSED
                count(n)  where `line.count_due`           the count on access (OPEN to CLOSED)
                confirm_quantity(n | None)                 recorded in one transaction → IDLE
                skip(...) / cancel()                       → IDLE (nothing was opened)
                abandon(reason)                            → IDLE (opened: flagged for a count)
    end()

Unload, pull (expired or recalled stock) and count lines skip the scan: select → READY_TO_UNLOCK.
The session never sleeps and never reads the wall clock: timeouts (a pocket unlocked but not
opened, a scale that does not settle) are measured on the injected clock at each `poll()`. It
touches hardware only through the CabinetDriver port, and only the points registered for the
selected pocket. Where the pocket has a weight sensor and the item a unit weight, the scale counts
the units (difference across the access); a person's different count needs `accept_discrepancy`
and is recorded with a discrepancy. Every refusal leaves the state as it was, so the caller can
correct and retry.

Refill and unload lines of a pocket whose count is due on access (`line.count_due`: controlled
substances always, blind; others per the cabinet's count mode) need `count(n)`, what the person
found in the pocket before adding or taking anything, before `confirm_quantity`: the count is
recorded at once (counts.py), and a `recount` outcome asks for one more. A controlled refill
records `witness` (given to `begin_restock`), which the cabinet's policy may require.

The pocket itself is opened by the line's `PocketAccess` (access.py), the one machine every
unlock goes through: the in-service check, the access on record before the pulse, the locks
released together, the partial unlock, the guide light, the drawer-switch sanity, the relock
judged after the pulse and its grace, the left-open alarm, and the maintenance events of each
failure. The session maps its states onto the access's (SETTLING: closed, the relock not yet
judged or the scale not yet settled) and keeps the restock's own steps.

A line whose pocket was opened but cannot be finished (the sensor disagrees and the person cannot
recount, the count on access cannot be completed, the drawer will not close) is left with
`abandon(reason)`: no stock is moved (what is in the pocket is unknown), and the drawer is
flagged for a blind recount, a `failed` maintenance event (the drawer is out of service until
`adc diag recover` recounts every pocket in it) with its audit entry, in one transaction. The
session is IDLE afterwards and goes on with the next line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from adc.controller import counts, inventory, quarantine, rows, study_rules
from adc.controller.access import (
    DEFAULT_PULSE_S,
    RELOCK_GRACE_S,
    AccessState,
    Alarm,
    MaintenanceKind,
    PocketAccess,
    Points,
    pulse_length_s,
)
from adc.controller.access_log import InterruptedAccess, prove_writable, recover_interrupted
from adc.controller.cabinet_policy import CountMode
from adc.controller.cabinets import get_cabinet
from adc.controller.context import Actor, Controller, Tx, require
from adc.controller.formulary import find_item
from adc.controller.gs1 import Scan, parse_scan
from adc.controller.inventory import Movement, Sensed, Verdict, check_levels, verify_scan
from adc.controller.maintenance import fold_failures, out_of_service, refuse_if_failed
from adc.controller.models import MaintenanceEvent, Pocket
from adc.controller.permissions import Action
from adc.controller.reports import RefillLine, refill_list
from adc.controller.stock import (
    block_from_rows,
    expired_held_clause,
    find_pocket,
    item_label,
    lot_on_record,
    recalled_held_clause,
)
from adc.drivers.base import DriverError, Quality, WeightReading
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.drivers.base import CabinetDriver

__all__ = ["DEFAULT_PULSE_S", "RELOCK_GRACE_S", "Points", "pulse_length_s"]  # moved to access.py
ABANDONED = MaintenanceKind.FAILED  # what an abandoned line leaves (blind recount required)


class State(StrEnum):
    IDLE = "idle"
    AWAITING_SCAN = "awaiting-scan"
    NEEDS_CONFIRMATION = "needs-confirmation"
    READY_TO_UNLOCK = "ready-to-unlock"
    UNLOCKED = "unlocked"
    OPEN = "open"
    SETTLING = "settling"
    CLOSED = "closed"
    ENDED = "ended"


class LineKind(StrEnum):
    REFILL = "refill"
    LOAD = "load"
    UNLOAD = "unload"
    PULL = "pull"
    COUNT = "count"


_ACTION = {
    LineKind.REFILL: Action.RESTOCK,
    LineKind.LOAD: Action.RESTOCK,
    LineKind.UNLOAD: Action.RESTOCK,
    LineKind.PULL: Action.PULL,
    LineKind.COUNT: Action.COUNT,
}
_SCANNED = (LineKind.REFILL, LineKind.LOAD)
_STUDY: dict[LineKind, study_rules.Doing] = {
    LineKind.REFILL: "restock",
    LineKind.LOAD: "restock",
    LineKind.UNLOAD: "unload",
    LineKind.PULL: "unload",
    LineKind.COUNT: "count",
}


@dataclass
class Line:
    """The line being worked on: what, where, and what the scan and the sensors said."""

    kind: LineKind
    pocket: str
    drawer: str
    item_id: int | None
    item: str | None
    unit_weight_g: float | None
    on_hand: int
    need: int | None
    points: Points
    levels: tuple[int, int, int] | None = None  # load: (par, critical-low, max)
    scan: Scan | None = None
    verdict: Verdict | None = None
    baseline: WeightReading | None = None
    measured: int | None = None  # units the sensor counted in (refill) or out (unload, pull)
    sensor_detail: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # shared with the access: one screen
    count_due: CountMode = CountMode.NONE  # the count on access this line needs (refill, unload)
    counted: counts.CountResult | None = None
    access: PocketAccess | None = None  # the pocket's access (set by select)

    def _access(self) -> PocketAccess:
        assert self.access is not None, "a line gets its access when it is selected"
        return self.access

    # what the access knows, as the line's callers read it
    @property
    def unlocked_at(self) -> datetime | None:
        return self._access().unlocked_at

    @property
    def closed_at(self) -> datetime | None:
        return self._access().closed_at

    @property
    def opened(self) -> bool:
        """The access switch read open at least once in this line."""
        return self._access().opened

    @property
    def pulse_s(self) -> float:
        return self._access().pulse_s

    @property
    def access_id(self) -> int | None:
        return self._access().access_id

    @property
    def relock_event(self) -> int | None:
        found = self._access().failure(MaintenanceKind.RELOCK_FAILED)
        return found.event_id if found else None

    @property
    def switch_event(self) -> int | None:
        found = self._access().failure(MaintenanceKind.SWITCH_FAILED)
        return found.event_id if found else None

    @property
    def relock_failed(self) -> bool:
        return self.relock_event is not None

    def pulse_end(self) -> datetime | None:
        return self._access().pulse_end()


@dataclass(frozen=True)
class Abandoned:
    """A line left after its pocket was opened: nothing recorded as stock, the drawer flagged."""

    pocket: str
    drawer: str
    reason: str
    state: str  # where the line was when it was abandoned
    locked: bool | None  # the pocket's locks all engaged (None: unreadable or still pulsing)
    maintenance_event: int
    audit_seq: int
    detail: str


@dataclass
class Summary:
    session: str
    recorded: list[Movement]
    skipped: list[tuple[str, str]]
    abandoned: list[Abandoned] = field(default_factory=list)


class RestockSession:
    """One person's restock round at one cabinet; see the module docstring for the calls."""

    def __init__(
        self,
        ctl: Controller,
        driver: CabinetDriver,
        cabinet: str,
        actor: Actor,
        witness: Actor | None = None,
    ) -> None:
        self.ctl, self.driver, self.cabinet, self.actor = ctl, driver, cabinet, actor
        self.witness = witness
        self.id = ctl.new_id()
        self.state = State.IDLE
        self.line: Line | None = None
        self.recorded: list[Movement] = []
        self.skipped: list[tuple[str, str]] = []
        self.abandoned: list[Abandoned] = []
        self.recovered: list[InterruptedAccess] = []  # flagged at the start (access_log.py)
        self._done: set[str] = set()

    # ------------------------------------------------------------------------------ choosing
    def refill_list(self) -> list[RefillLine]:
        lines = refill_list(self.ctl, self.cabinet)
        return study_rules.lines_for(self.ctl, self.actor.user_id, self.cabinet, lines)

    def next_line(self) -> Line | None:
        """Select the next refill line not yet done or skipped in this session (None: all done)."""
        failed = out_of_service(self.ctl, self.cabinet)  # drawers blocked until recovered
        for entry in self.refill_list():
            if (
                entry.pocket not in self._done
                and entry.blocked is None
                and entry.drawer not in failed
            ):
                return self.select(entry.pocket)
        return None

    @study_rules.audit_refusals
    def select(
        self,
        pocket_code: str,
        kind: LineKind | str = LineKind.REFILL,
        *,
        item: str | None = None,
        levels: tuple[int, int, int] | None = None,
    ) -> Line:
        """Start a line on a pocket. A load names the item (id, NDC or GTIN) and its levels."""
        self._expect(State.IDLE)
        kind = LineKind(kind)
        load_item = None
        if kind is LineKind.LOAD:
            if item is None or levels is None:
                raise BadInput("a load names the item and its levels (par, critical-low, max)")
            with self.ctl.read() as session:  # not inside the raw read: one connection at a time
                load_item = find_item(session, item)
        with self.ctl.read_fast() as store:  # one snapshot on the raw cursor (store.py)
            user = require(rows.user(store, self.actor.user_id), self.actor.username, _ACTION[kind])
            pocket = rows.pocket(store, self.cabinet, pocket_code)
            drawer = rows.drawer(store, pocket.drawer_id)
            events = rows.drawer_events(store, self.cabinet, drawer.code)
            failures = fold_failures(events, lambda uid: rows.username(store, uid))
            refuse_if_failed(drawer.code, failures)
            item_row: Any = rows.item(store, pocket.item_id) if pocket.item_id else None
            held = rows.held_lots(store, pocket.id)
            if kind in (LineKind.REFILL, LineKind.LOAD, LineKind.UNLOAD):  # before any unlock
                what = "unloading" if kind is LineKind.UNLOAD else "restocking"
                quarantine.refuse_if_quarantined(store, pocket.id, pocket.code, what)
            if kind is LineKind.LOAD:
                assert levels is not None
                if pocket.kind == "return-bin":
                    raise Refused(
                        f"pocket {pocket.code} is a return bin: it holds no assigned item"
                    )
                if pocket.on_hand or held:
                    raise Refused(f"pocket {pocket.code} is not empty: unload it first")
                check_levels(*levels, pocket.capacity)
                item_row = load_item
            elif item_row is None:
                raise Refused(f"pocket {pocket.code} has no item assigned")
            study_rules.guard(store, pocket, user, _STUDY[kind], item_id=item_row.id)
            block = block_from_rows(pocket.code, held, self.ctl.today())
            if kind is LineKind.REFILL and block is not None:
                raise Refused(f"{block.reason}: pull it before restocking")
            if kind is LineKind.PULL and block is None:
                raise Refused(f"pocket {pocket.code} holds no expired or recalled stock")
            line = Line(
                kind=kind,
                pocket=pocket.code,
                drawer=drawer.code,
                item_id=item_row.id,
                item=item_label(item_row),
                unit_weight_g=item_row.unit_weight_g,
                on_hand=pocket.on_hand,
                need=max(pocket.par - pocket.on_hand, 0) if kind is LineKind.REFILL else None,
                points=Points.of(pocket, drawer),  # type: ignore[arg-type]
                levels=levels if kind is LineKind.LOAD else None,
            )
            line.access = PocketAccess(
                self.ctl,
                self.driver,
                self.cabinet,
                self.actor,
                drawer.code,
                pocket.code,
                line.points,
                "restock",
                self.id,
                pulse_s=pulse_length_s(self.driver.profile, line.points.locks),
                notes=line.notes,
            )
            if kind in (LineKind.REFILL, LineKind.UNLOAD):  # item_row is the pocket's item
                line.count_due = counts.count_mode_of_row(store, pocket, item_row)
        self.line = line
        self.state = State.AWAITING_SCAN if kind in _SCANNED else State.READY_TO_UNLOCK
        return line

    # --------------------------------------------------------------------------------- scanning
    def scan(self, raw: str) -> Verdict:
        """Parse and verify a pack's barcode against the line; refusals keep the state."""
        self._expect(State.AWAITING_SCAN, State.NEEDS_CONFIRMATION)
        line = self._line()
        scan = parse_scan(raw)
        with self.ctl.read_fast() as store:
            pocket = rows.pocket(store, self.cabinet, line.pocket)
            assert line.item_id is not None
            verdict = verify_scan(
                store, pocket.code, line.item_id, scan, self.ctl.today(), self.ctl.policy
            )
            capacity = line.levels[2] if line.levels else pocket.max_qty
            if pocket.on_hand >= capacity:
                raise Refused(f"pocket {pocket.code} is full ({pocket.on_hand} of max {capacity})")
        line.scan, line.verdict = scan, verdict
        self.state = State.NEEDS_CONFIRMATION if verdict.short_dated else State.READY_TO_UNLOCK
        return verdict

    def confirm_short_dated(self) -> None:
        """The person accepts stock that expires within the policy's short-dated window."""
        self._expect(State.NEEDS_CONFIRMATION)
        self.state = State.READY_TO_UNLOCK

    def reject_short_dated(self) -> None:
        """The person declines the short-dated pack: its scan is dropped, another one is awaited."""
        self._expect(State.NEEDS_CONFIRMATION)
        line = self._line()
        line.scan, line.verdict = None, None
        self.state = State.AWAITING_SCAN

    # -------------------------------------------------------------------------------- hardware
    def unlock(self) -> None:
        """Release the drawer and this pocket's own lock, light its guide light (the line's
        `PocketAccess`; see access.py).

        Also allowed from CLOSED, to open the pocket again and correct what is in it (the scale's
        baseline stays the one from before the first opening). Refused while the drawer is out
        of service for anything but this line's own failures. The locks are released together or
        not at all; a driver error leaves the state. A `PartialUnlock` is recorded and raised as
        `UnlockIncomplete`: the state stays, so the person may try again where the drawer stayed
        locked, or leave the line (skip, cancel); where the drawer may have opened it is out of
        service, and only leaving the line remains.
        """
        self._expect(State.READY_TO_UNLOCK, State.CLOSED)
        line = self._line()
        access = line._access()
        weighed = self.state is State.READY_TO_UNLOCK and line.baseline is None
        if weighed:
            line.baseline = self._weigh(line)
        try:
            access.unlock()
        except BaseException:
            if weighed:
                line.baseline = None
            raise
        self.state = State.UNLOCKED

    def poll(self) -> State:
        """Read the switches (and the scale) and advance; call repeatedly, waiting in between."""
        line = self.line
        if line is None:
            return self.state
        access = line._access()
        if self.state is State.READY_TO_UNLOCK and not access.relock_judged:
            access.poll()  # relatched unopened: its latches are still being judged
            return self.state
        if self.state not in (State.UNLOCKED, State.OPEN, State.SETTLING):
            return self.state
        now = self.ctl.now()
        seen = access.poll()
        if seen is AccessState.READY:  # not opened in time: the latch holds again
            self.state = State.READY_TO_UNLOCK
        elif seen is AccessState.UNLOCKED:
            self.state = State.UNLOCKED
        elif seen is AccessState.OPEN:
            self.state = State.OPEN
        elif seen is AccessState.CLOSED:
            if self.state is not State.SETTLING:
                self.state = State.SETTLING
            if access.relock_judged:
                self._settle(line, now)
        return self.state

    def _weigh(self, line: Line) -> WeightReading | None:
        if (
            line.points.sensor_kind != "weight"
            or not line.unit_weight_g
            or not line.points.sensor_point
        ):
            return None
        try:
            return self.driver.weight(line.points.sensor_point)
        except DriverError as err:
            line.notes.append(f"scale unreadable: {err.message}")
            return None

    def not_opened(self) -> Alarm:
        """The person says the unlocked pocket did not open (while unlocked, or after it relatched
        unopened): the access records open-failed and the drawer leaves service; the line can
        only be left (skip or cancel)."""
        self._expect(State.UNLOCKED, State.READY_TO_UNLOCK)
        line = self._line()
        alarm = line._access().not_opened()
        self.state = State.READY_TO_UNLOCK
        return alarm

    def _settle(self, line: Line, now: datetime) -> None:
        """Closed and its relock judged: wait for the scale, then the line is CLOSED."""
        points = line.points
        if points.sensor_kind == "weight" and line.baseline is not None:
            reading = self._weigh(line)
            if reading is not None and reading.quality is Quality.UNSTABLE:
                waited = (now - (line.closed_at or now)).total_seconds()
                if waited <= self.ctl.policy.settle_timeout_s:
                    return  # still settling: poll again
                line.notes.append("scale did not settle: count by hand")
            elif (
                reading is not None
                and reading.quality is Quality.OK
                and line.baseline.quality is Quality.OK
            ):
                self._count_by_weight(line, reading)
            elif reading is not None:
                line.notes.append(f"scale reports {reading.quality.value}: count by hand")
        elif points.sensor_kind == "presence" and points.sensor_point:
            try:
                present = self.driver.input_active(points.sensor_point)
                line.sensor_detail = {"present": present}
            except DriverError as err:
                line.notes.append(f"presence sensor unreadable: {err.message}")
        self.state = State.CLOSED

    def _count_by_weight(self, line: Line, after: WeightReading) -> None:
        assert line.baseline is not None and line.unit_weight_g
        units = (after.grams - line.baseline.grams) / line.unit_weight_g
        nearest = round(units)
        line.sensor_detail = {
            "baseline_g": round(line.baseline.grams, 2),
            "after_g": round(after.grams, 2),
            "unit_weight_g": line.unit_weight_g,
        }
        if abs(units - nearest) > self.ctl.policy.weight_tolerance:
            line.notes.append(
                f"scale change of {units:.2f} units is not a whole count: count by hand"
            )
            return
        line.measured = nearest if line.kind in _SCANNED else -nearest

    # ------------------------------------------------------------------------------ recording
    def count(self, counted: int) -> counts.CountResult:
        """The count on access: what the person found in the pocket before adding or taking
        anything (blind for a controlled substance). Recorded at once; see counts.py."""
        self._expect(State.OPEN, State.SETTLING, State.CLOSED)
        line = self._line()
        if line.count_due is CountMode.NONE:
            raise Refused(f"pocket {line.pocket} needs no count on access")
        if line.counted is not None and line.counted.outcome is not counts.Outcome.RECOUNT:
            raise Refused(f"pocket {line.pocket} is counted already")
        line.counted = counts.count_pocket(
            self.ctl,
            self.actor,
            self.cabinet,
            line.pocket,
            counted,
            access=line.kind.value,
            session_id=self.id,
        )
        return line.counted

    def confirm_quantity(
        self, qty: int | None = None, *, accept_discrepancy: bool = False
    ) -> Movement:
        """Record the line: units added (refill, load), removed (unload, pull) or counted (count).

        With a scale, `qty` may be left out (the scale's count is used); a different `qty` is
        refused unless `accept_discrepancy`, which records the person's count with a discrepancy.
        Without a usable scale, `qty` is required.
        """
        self._expect(State.CLOSED)
        line = self._line()
        if line.count_due is not CountMode.NONE and (
            line.counted is None or line.counted.outcome is counts.Outcome.RECOUNT
        ):
            what = "recount" if line.counted else f"{line.count_due.value} count"
            raise Refused(
                f"pocket {line.pocket} needs its {what} on access (what was in it before): "
                "count it first"
            )
        sensed = self._sensed(line, qty, accept_discrepancy)
        if qty is None:
            if sensed is None:
                raise BadInput(
                    f"enter the quantity: pocket {line.pocket} has no usable scale count"
                )
            qty = sensed.count
        movement = self._record(line, qty, sensed)
        line._access().stock_moved()
        self._finish_line("recorded")
        self.recorded.append(movement)
        self._done.add(line.pocket)
        return movement

    def _sensed(self, line: Line, qty: int | None, accept: bool) -> Sensed | None:
        """The sensor's view of the line; refuses a person's count it contradicts unless accepted."""
        moved = "added" if line.kind in _SCANNED else "removed"
        if line.kind is LineKind.COUNT:
            return None  # a count is absolute; the scale only sees changes
        if line.measured is not None:
            if qty is not None and qty != line.measured and not accept:
                raise Refused(
                    f"the scale counts {line.measured} units {moved}, you entered {qty}: "
                    "recount, or confirm your count to record a discrepancy"
                )
            if qty is None and line.measured <= 0:
                raise Refused(f"the scale saw no units {moved}: enter the quantity")
            return Sensed("weight", count=line.measured, detail=line.sensor_detail)
        present = line.sensor_detail.get("present")
        if present is None or qty is None or line.kind is LineKind.PULL:
            return None
        expected = line.on_hand + qty > 0 if line.kind in _SCANNED else False
        if present != expected and not accept:
            seen = "a pack" if present else "nothing"
            raise Refused(
                f"the presence sensor sees {seen} in pocket {line.pocket}: check the pocket, or "
                "confirm your count to record a discrepancy"
            )
        return Sensed("presence", present=present)

    def _record(self, line: Line, qty: int, sensed: Sensed | None) -> Movement:
        ctl, actor, cab = self.ctl, self.actor, self.cabinet
        if line.kind is LineKind.REFILL:
            assert line.scan is not None
            return inventory.refill(
                ctl,
                actor,
                cab,
                line.pocket,
                line.scan,
                qty,
                confirm_short_dated=bool(line.verdict and line.verdict.short_dated),
                session_id=self.id,
                sensor=sensed,
                witness=self.witness,
            )
        if line.kind is LineKind.LOAD:
            assert line.scan is not None and line.levels is not None and line.item_id is not None
            return inventory.load(
                ctl,
                actor,
                cab,
                line.pocket,
                line.item_id,
                line.levels,
                line.scan,
                qty,
                confirm_short_dated=bool(line.verdict and line.verdict.short_dated),
                session_id=self.id,
                sensor=sensed,
                witness=self.witness,
            )
        if line.kind is LineKind.UNLOAD:
            return inventory.unload(
                ctl, actor, cab, line.pocket, qty, session_id=self.id, sensor=sensed
            )
        if line.kind is LineKind.PULL:
            return inventory.pull(
                ctl, actor, cab, line.pocket, qty, session_id=self.id, sensor=sensed
            )
        return inventory.count(ctl, actor, cab, line.pocket, qty, session_id=self.id)

    def _event(self, tx: Tx, line: Line, kind: str, detail: str) -> MaintenanceEvent:
        """A maintenance event on this line's drawer and pocket, by the session's person."""
        event = MaintenanceEvent(
            cabinet_id=self.cabinet,
            drawer_code=line.drawer,
            pocket_code=line.pocket,
            kind=str(kind),
            detail=detail,
            user_id=self.actor.user_id,
            at=tx.now,
        )
        tx.session.add(event)
        tx.session.flush()
        return event

    # ------------------------------------------------------------------------- leaving a line
    def skip(self, reason: str = "", *, out_of_stock: bool = False) -> None:
        """Leave the line unfilled; `out_of_stock` tells pharmacists the drug is not available."""
        self._expect(State.AWAITING_SCAN, State.NEEDS_CONFIRMATION, State.READY_TO_UNLOCK)
        line = self._line()
        if out_of_stock:
            from adc.controller.shortages import open_unfilled

            with self.ctl.write(self.actor, _ACTION[line.kind], cabinet=self.cabinet) as tx:
                pocket = find_pocket(tx.session, self.cabinet, line.pocket)
                note = open_unfilled(tx, pocket)
                tx.audit(
                    "restock.unfilled",
                    {
                        "cabinet": self.cabinet,
                        "pocket": line.pocket,
                        "session": self.id,
                        "reason": reason,
                        "shortage": note,
                    },
                )
        self.skipped.append(
            (line.pocket, reason or ("out of stock" if out_of_stock else "skipped"))
        )
        self._done.add(line.pocket)
        self._finish_line("skipped")

    def cancel(self) -> None:
        """Leave the line without a record: only while nothing in the pocket can have moved.

        Not while the pocket is open, nor after the scale saw stock move (record it instead).
        Once the pocket was opened in this line, what is in it is known only to a count: the
        line is recorded or abandoned (a blind recount), unless the scale weighed it closed
        with nothing moved."""
        if self.state in (State.OPEN, State.SETTLING):
            raise Refused("the pocket is open: close it first")
        line = self._line()
        if self.state is State.CLOSED and line.measured:
            raise Refused(f"the scale saw {abs(line.measured)} units move: record the quantity")
        weighed_unchanged = self.state is State.CLOSED and line.measured == 0
        if line.opened and not weighed_unchanged:
            raise Refused(
                f"pocket {line.pocket} was opened in this line: record the quantity, or abandon "
                "the line (the drawer is flagged for a blind recount)"
            )
        self._finish_line("left")

    def abandon(self, reason: str) -> Abandoned:
        """Leave a line whose pocket was unlocked or opened, without recording stock.

        For a line that cannot be finished: the sensor disagrees with the person's count and
        they cannot recount, the count on access cannot be completed, the drawer will not close
        or the switches stopped answering. Something may have been put in or taken out, so the
        pocket's contents are unknown: the drawer is flagged for a blind recount (a `failed`
        maintenance event naming who, the session, the pocket, the lot, the state and the lock
        state; out of service until `adc diag recover`), with its audit entry, in one
        transaction. The guide light goes off and the session is IDLE, ready for the next line.
        Refused for a line nothing was unlocked for (skip or cancel it); BadInput without a reason.
        """
        line = self._line()
        why = " ".join(reason.split()) if isinstance(reason, str) else ""
        if not why:
            raise BadInput(
                f"say why line {line.pocket} is abandoned (a reason is recorded with the flag)"
            )
        state = self.state
        accessed = state in (State.UNLOCKED, State.OPEN, State.SETTLING, State.CLOSED)
        if not (accessed or line.opened):
            raise Refused(
                f"pocket {line.pocket} was not unlocked in this line: nothing to abandon; "
                "skip it (out of stock) or cancel it"
            )
        locked = line._access().latched()
        lock_text = {True: "locked", False: "NOT locked", None: "lock state unknown"}[locked]
        lot = f", lot {line.scan.lot} scanned" if line.scan else ""
        measured = (
            f", the scale counted {abs(line.measured)} "
            f"{'added' if line.kind in _SCANNED else 'removed'}"
            if line.measured is not None
            else ""
        )
        detail = (
            f"restock line abandoned: {why} ({state.value}; {lock_text}) by "
            f"{self.actor.username}, session {self.id}, pocket {line.pocket}{lot}{measured}: "
            "contents unknown, blind recount required"
        )
        with self.ctl.write(self.actor, _ACTION[line.kind], cabinet=self.cabinet) as tx:
            pocket = find_pocket(tx.session, self.cabinet, line.pocket)
            on_record = self._scanned_lot_on_record(tx, line, pocket)
            event = self._event(tx, line, ABANDONED, detail)
            seq = tx.audit(
                "restock.abandoned",
                {
                    "cabinet": self.cabinet,
                    "drawer": line.drawer,
                    "pocket": line.pocket,
                    "session": self.id,
                    "kind": line.kind.value,
                    "reason": why,
                    "state": state.value,
                    "locked": locked,
                    "lot": line.scan.lot if line.scan else None,
                    "measured": line.measured,
                    "maintenance_event": event.id,
                    "maintenance_kind": str(ABANDONED),
                    **on_record,
                },
            )
            event_id = event.id or 0
        result = Abandoned(
            pocket=line.pocket,
            drawer=line.drawer,
            reason=why,
            state=state.value,
            locked=locked,
            maintenance_event=event_id,
            audit_seq=seq,
            detail=detail,
        )
        self.abandoned.append(result)
        self._done.add(line.pocket)
        self._finish_line("abandoned")
        return result

    def _scanned_lot_on_record(self, tx: Tx, line: Line, pocket: Pocket) -> dict[str, Any]:
        """An abandoned refill or load may have left packs of the scanned (verified) lot in the
        pocket. The lot goes on record, empty, and a load's assignment with it, in the abandon's
        transaction: the blind recount of the recovery then finds the item the pocket really
        holds and a lot to count the packs into. Without it, a pocket that never held a lot
        could not take a count above zero, and the drawer could never return to service."""
        scan = line.scan
        if line.kind not in _SCANNED or scan is None or line.item_id is None:
            return {}
        out: dict[str, Any] = {}
        if line.kind is LineKind.LOAD and pocket.item_id != line.item_id:
            assert line.levels is not None  # select() requires them for a load
            if pocket.on_hand:  # stocked meanwhile by someone else: leave its assignment be
                return {}
            par, critical_low, max_qty = line.levels
            out["assigned"] = {
                "item_id": line.item_id,
                "previous_item_id": pocket.item_id,
                "par": par,
                "critical_low": critical_low,
                "max": max_qty,
            }
            pocket.item_id, pocket.par = line.item_id, par
            pocket.critical_low, pocket.max_qty = critical_low, max_qty
            tx.session.add(pocket)
        if pocket.item_id != line.item_id:
            return out
        _lot, created = lot_on_record(
            tx.session, pocket.id or 0, line.item_id, scan.gtin, scan.lot, scan.expiry, tx.now
        )
        if created:
            out["lot_on_record"] = {
                "gtin": scan.gtin,
                "lot": scan.lot,
                "expiry": scan.expiry.isoformat(),
            }
        return out

    def end(self) -> Summary:
        if self.line is not None:
            raise Refused(
                f"line {self.line.pocket} is not finished: record, skip, cancel or abandon it"
            )
        self.state = State.ENDED
        return Summary(self.id, list(self.recorded), list(self.skipped), list(self.abandoned))

    # ---------------------------------------------------------------------------------- helpers
    def _finish_line(self, outcome: str) -> None:
        line = self.line
        if line is not None and line.access is not None:
            line.access.finish(outcome)  # light off, the access closed on record
        self.line = None
        self.state = State.IDLE

    def _line(self) -> Line:
        if self.line is None:
            raise Refused("no line selected")
        return self.line

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            wanted = " or ".join(s.value for s in states)
            raise Refused(f"the session is {self.state.value}, this step needs {wanted}")


def begin_restock(
    ctl: Controller,
    driver: CabinetDriver,
    cabinet: str,
    actor: Actor,
    *,
    witness: Actor | None = None,
) -> RestockSession:
    """Start a session: the actor may restock, and the driver drives the cabinet's profile.

    `witness` (authenticated) is recorded on controlled refills and loads, where the cabinet's
    policy may require one; it is checked at each record."""
    ctl.check(actor, Action.RESTOCK)
    with ctl.read() as session:
        registered = get_cabinet(session, cabinet).profile_name
    if driver.profile.name != registered:
        raise Refused(
            f"the driver is for a {driver.profile.name} cabinet, cabinet {cabinet} is a {registered}"
        )
    prove_writable(ctl, f"a restock session at cabinet {cabinet}")
    recovered = recover_interrupted(ctl, cabinet)  # drawers a dead process left: recount first
    session = RestockSession(ctl, driver, cabinet, actor, witness)
    session.recovered = recovered
    return session


def pockets_needing_pull(ctl: Controller, cabinet: str) -> list[str]:
    """Pocket codes that hold expired or recalled stock (removal blocked until pulled)."""
    query = (
        select(Pocket.code)
        .where(
            Pocket.cabinet_id == cabinet,
            or_(expired_held_clause(ctl.today()), recalled_held_clause()),
        )
        .order_by(Pocket.position)
    )
    with ctl.read() as session:
        return list(session.execute(query).scalars())
