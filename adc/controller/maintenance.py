"""Service work on a cabinet: failed drawers taken out of service, their recovery, and the record of
every diagnostics run.

State lives in the `maintenance_event` table only, so no schema change was needed:
- a drawer is **out of service** while it has a failure event (`FAILURE_KINDS`, the failure
  members of `MaintenanceKind`: did not open, did not relock, a partial unlock that may have
  opened the drawer without its pocket, open during a power loss, a switch that lies, or marked
  failed by hand, e.g. a restock line abandoned after its pocket was opened) newer than its last
  `recovered` event. Databases written before the kinds were merged also hold `no-relock` (what
  a withdrawal wrote for `relock-failed`): it is read as the same failure. A pocket's failure takes its whole drawer out: the
  drawer is what a person opens, and recovery works drawer by drawer. Whatever opens a drawer
  (`access.PocketAccess`) asks first.
- **recovery** (`adc diag recover`) clears it: the hardware is cycled and must pass, then every
  assigned pocket in the drawer gets a blind recount, recorded as a count transaction through the
  inventory API with session id `recovery:ID`; `complete_recovery` refuses until each one has it.
- every **diagnostics run** is one `diag-COMMAND` event (who, what, result) plus the failures it
  found, with their audit entries, in one transaction.

Controlled substances: service work runs under `Action.MAINTENANCE`; when it would expose a pocket
holding a scheduled item, `permissions.CS_WITNESS` says which role must witness it (a pharmacist),
and `access_refusals` says which locks may not be pulsed without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from adc.controller.cabinets import (
    check_item_measurement_source,
    check_measurement_source,
    get_cabinet,
    no_such_cabinet,
)
from adc.controller.context import Actor, Controller, Tx
from adc.controller.models import (
    AccessLog,
    Drawer,
    Item,
    MaintenanceEvent,
    Pocket,
    Transaction,
    TxnKind,
    User,
)
from adc.controller.permissions import CS_WITNESS, Action
from adc.controller.stock import find_pocket, item_label
from adc.errors import BadInput, Refused


class MaintenanceKind(StrEnum):
    """Every kind of maintenance event the cabinet records about its hardware.

    Failures take the drawer out of service until `adc diag recover` (`FAILURE_KINDS`); alarms
    are for the service engineer and block nothing. `access.PocketAccess` records the failures and
    alarms of an access; `withdrawal.CabinetWatch` the cabinet-wide alarms."""

    # failures
    OPEN_FAILED = "open-failed"  # unlocked, the person pulled, it did not open
    RELOCK_FAILED = "relock-failed"  # a lock not engaged after the pulse and its grace
    SWITCH_FAILED = "switch-failed"  # a switch that reads what cannot be
    PARTIAL_UNLOCK = "partial-unlock"  # the drawer may have opened without its pocket
    POWER_LOSS_OPEN = "power-loss-open"  # open when the power went
    FAILED = "failed"  # contents unknown (abandoned line, interrupted access, by hand)
    # alarms
    ALARM_PARTIAL_UNLOCK = "alarm-partial-unlock"  # a pocket latch released, its drawer shut
    ALARM_LEFT_OPEN = "alarm-left-open"  # open past the access's limit
    ALARM_DOOR_OPEN = "alarm-door-open"
    ALARM_DEVICE_OFFLINE = "alarm-device-offline"
    ALARM_BUS_ERRORS = "alarm-bus-errors"
    ALARM_SENSOR = "alarm-sensor"

    @property
    def is_failure(self) -> bool:
        return self.value in FAILURE_KINDS


# What older databases hold for a kind that was merged: read (and accepted) as the new one.
LEGACY_KINDS = {"no-relock": MaintenanceKind.RELOCK_FAILED}
_FAILURES = (
    MaintenanceKind.OPEN_FAILED,
    MaintenanceKind.RELOCK_FAILED,
    MaintenanceKind.SWITCH_FAILED,
    MaintenanceKind.PARTIAL_UNLOCK,
    MaintenanceKind.POWER_LOSS_OPEN,
    MaintenanceKind.FAILED,
)
# plain strings (bound as SQL parameters); the legacy spellings still count as failures
FAILURE_KINDS = frozenset({k.value for k in _FAILURES} | set(LEGACY_KINDS))


def canonical_kind(kind: str) -> str:
    """The kind as it is written now (`no-relock` → `relock-failed`)."""
    return str(LEGACY_KINDS.get(kind, kind))


RECOVERED = "recovered"
DIAGNOSTIC_PREFIX = "diag-"


@dataclass(frozen=True)
class Failure:
    """One open failure of a drawer (or of a pocket in it)."""

    id: int
    drawer: str
    pocket: str | None
    kind: str
    detail: str
    at: datetime
    user: str | None

    def describe(self) -> str:
        where = f"pocket {self.pocket}" if self.pocket else f"drawer {self.drawer}"
        return f"{where}: {self.kind} at {self.at:%Y-%m-%d %H:%M} UTC" + (
            f" ({self.detail})" if self.detail else ""
        )


def _drawer(session: Session, cabinet_id: str, code: str) -> Drawer:
    drawer = session.execute(
        select(Drawer).where(Drawer.cabinet_id == cabinet_id, Drawer.code == code)
    ).scalar()
    if drawer is None:
        codes = session.execute(
            select(Drawer.code).where(Drawer.cabinet_id == cabinet_id).order_by(Drawer.position)
        ).scalars()
        raise BadInput(f"cabinet {cabinet_id} has no drawer {code!r}; drawers: {', '.join(codes)}")
    return drawer


def open_failures(session: Session, cabinet_id: str, drawer: str | None = None) -> list[Failure]:
    """Failures not yet cleared by a recovery, oldest first (of one drawer, or of all)."""
    query = select(MaintenanceEvent).where(
        MaintenanceEvent.cabinet_id == cabinet_id,
        MaintenanceEvent.drawer_code.is_not(None),  # type: ignore[union-attr]
        MaintenanceEvent.kind.in_([*FAILURE_KINDS, RECOVERED]),  # type: ignore[attr-defined]
    )
    if drawer is not None:
        query = query.where(MaintenanceEvent.drawer_code == drawer)
    events = session.execute(query.order_by(MaintenanceEvent.id)).scalars().all()

    def name_of(user_id: int) -> str | None:
        user = session.get(User, user_id)
        return user.username if user else None

    return fold_failures(
        [
            (e.id or 0, e.drawer_code, e.pocket_code, e.kind, e.detail, e.at, e.user_id)
            for e in events
        ],
        name_of,
    )


def fold_failures(events: list[tuple[Any, ...]], name_of: Any) -> list[Failure]:
    """The rule of `open_failures` over (id, drawer, pocket, kind, detail, at, user id) events in
    order, however they were read: a drawer's failures since its last recovery."""
    pending: dict[str, list[Failure]] = {}
    for event_id, drawer_code, pocket_code, kind, detail, at, user_id in events:
        code = drawer_code or ""
        if kind == RECOVERED:
            pending.pop(code, None)
            continue
        if kind not in FAILURE_KINDS:
            continue
        pending.setdefault(code, []).append(
            Failure(
                event_id,
                code,
                pocket_code,
                kind,
                detail,
                at,
                name_of(user_id) if user_id else None,
            )
        )
    return [f for failures in pending.values() for f in failures]


def out_of_service(ctl: Controller, cabinet_id: str) -> dict[str, list[Failure]]:
    """Drawer code → its open failures, for every drawer out of service."""
    from adc.controller import rows

    with ctl.read_fast() as store:  # every restock line asks: on the raw cursor (store.py)
        if not rows.cabinet_exists(store, cabinet_id):
            raise no_such_cabinet(cabinet_id)
        events = rows.cabinet_failures(store, cabinet_id)
        out: dict[str, list[Failure]] = {}
        for failure in fold_failures(events, lambda uid: rows.username(store, uid)):
            out.setdefault(failure.drawer, []).append(failure)
        return out


def check_in_service(session: Session, cabinet_id: str, drawer_code: str) -> None:
    """Refused while the drawer is out of service (for whatever would open it)."""
    refuse_if_failed(drawer_code, open_failures(session, cabinet_id, drawer_code))


def refuse_if_failed(drawer_code: str, failures: list[Failure]) -> None:
    """Refused, naming the latest failure, while the drawer has failures not yet recovered."""
    if failures:
        raise Refused(
            f"drawer {drawer_code} is out of service: {failures[-1].describe()}; "
            f"recover it first (adc diag recover --drawer {drawer_code})"
        )


def _event(
    tx: Tx,
    cabinet_id: str,
    kind: str,
    detail: str,
    *,
    drawer: str | None = None,
    pocket: str | None = None,
) -> MaintenanceEvent:
    event = MaintenanceEvent(
        cabinet_id=cabinet_id,
        drawer_code=drawer,
        pocket_code=pocket,
        kind=kind,
        detail=detail,
        user_id=tx.user.id if tx.user else None,
        at=tx.now,
    )
    tx.session.add(event)
    tx.session.flush()
    return event


def _check_kind(kind: str) -> None:
    if kind not in FAILURE_KINDS:
        kinds = ", ".join(sorted(k.value for k in _FAILURES))
        raise BadInput(f"{kind!r} is not a failure; one of {kinds}")


@dataclass(frozen=True)
class Found:
    """A failure a diagnostics run found, to be recorded with it."""

    drawer: str
    kind: str
    detail: str
    pocket: str | None = None


def _fail(tx: Tx, cabinet_id: str, found: Found) -> int:
    _check_kind(found.kind)
    kind = canonical_kind(found.kind)
    _drawer(tx.session, cabinet_id, found.drawer)
    event = _event(tx, cabinet_id, kind, found.detail, drawer=found.drawer, pocket=found.pocket)
    tx.audit(
        "maintenance.failed",
        {
            "cabinet": cabinet_id,
            "drawer": found.drawer,
            "pocket": found.pocket,
            "kind": kind,
            "detail": found.detail,
            "id": event.id,
        },
    )
    return event.id or 0


def mark_failed(
    ctl: Controller,
    actor: Actor | None,
    cabinet_id: str,
    drawer: str,
    kind: str,
    detail: str = "",
    *,
    pocket: str | None = None,
) -> int:
    """Take a drawer out of service (`actor` None: the system noticed, e.g. after a power loss)."""
    with ctl.write(actor, Action.MAINTENANCE if actor else None) as tx:
        get_cabinet(tx.session, cabinet_id)
        return _fail(tx, cabinet_id, Found(drawer, kind, detail, pocket))


INTERRUPTED = "interrupted"  # the outcome of an access closed because its process ended


def record_interrupted_access(
    tx: Tx, cabinet_id: str, row: AccessLog, who: str, detail: str, **why: Any
) -> tuple[int, int]:
    """The one record of an access whose process ended before it did (found at the next start,
    or by the station that was watching it): a `failed` maintenance event on its drawer and
    pocket, attributed to the access's user (out of service until a blind recount clears it),
    its `access.interrupted` audit entry (`why` adds the cause), and the row closed as
    interrupted, all in the caller's transaction. `row` is the open row read in it. Returns the
    maintenance event's id and the audit entry's sequence number."""
    kind = MaintenanceKind.FAILED.value
    event = MaintenanceEvent(
        cabinet_id=cabinet_id,
        drawer_code=row.drawer_code,
        pocket_code=row.pocket_code,
        kind=kind,
        detail=detail,
        user_id=row.user_id,
        at=tx.now,
    )
    tx.session.add(event)
    tx.session.flush()
    seq = tx.audit(
        "access.interrupted",
        {
            "cabinet": cabinet_id,
            "drawer": row.drawer_code,
            "pocket": row.pocket_code,
            "access": row.id,
            "purpose": row.purpose,
            "session": row.session,
            "user": who,
            "opened_at": row.opened_at.isoformat(),
            "owner": row.owner,
            **why,
            "maintenance_event": event.id,
            "maintenance_kind": kind,
        },
    )
    row.closed_at, row.outcome = tx.now, INTERRUPTED
    tx.session.add(row)
    return event.id or 0, seq


# --------------------------------------------------------------------- controlled substances
def exposed_pockets(session: Session, cabinet_id: str, lock_point: str) -> list[Pocket]:
    """Pockets a hand can reach once this lock is pulsed: a drawer lock exposes the pockets of the
    drawer that have no lock of their own; a pocket's lock or lid lock exposes that pocket."""
    pockets = session.execute(select(Pocket).where(Pocket.cabinet_id == cabinet_id)).scalars()
    drawers = {
        d.id: d
        for d in session.execute(select(Drawer).where(Drawer.cabinet_id == cabinet_id)).scalars()
    }
    out = []
    for pocket in pockets:
        own = pocket.lid_lock_point or pocket.lock_point
        drawer = drawers[pocket.drawer_id]
        if own == lock_point or (own is None and drawer.lock_point == lock_point):
            out.append(pocket)
    return out


def _controlled(session: Session, pockets: list[Pocket]) -> list[str]:
    out = []
    for pocket in pockets:
        item = session.get(Item, pocket.item_id) if pocket.item_id else None
        if item is not None and item.schedule is not None:
            roman = {2: "II", 3: "III", 4: "IV", 5: "V"}.get(item.schedule, str(item.schedule))
            out.append(f"{pocket.code}: {item_label(item)}, C-{roman}")
    return out


def _witness_user(session: Session, actor: Actor, witness: Actor | None) -> User | None:
    if witness is None:
        return None
    if witness.user_id == actor.user_id:
        raise Refused(f"{actor.username} cannot witness their own service work")
    user = session.get(User, witness.user_id)
    if user is None or not user.active or user.locked:
        raise Refused(f"witness {witness.username} is not an active user")
    return user


def access_refusals(
    ctl: Controller,
    actor: Actor,
    cabinet_id: str,
    locks: list[str],
    witness: Actor | None = None,
) -> dict[str, str]:
    """Lock point → why `actor` may not pulse it now; locks not listed may be pulsed.

    The actor must be allowed service work; a lock that exposes a controlled substance also needs
    a witness of a role `CS_WITNESS` names for it.
    """
    ctl.check(actor, Action.MAINTENANCE)
    roles = CS_WITNESS.get(Action.MAINTENANCE, frozenset())
    out: dict[str, str] = {}
    with ctl.read() as session:
        get_cabinet(session, cabinet_id)
        user = _witness_user(session, actor, witness)
        if user is not None and user.role not in roles:
            allowed = " or ".join(sorted(roles))
            raise Refused(f"witness {user.username} is a {user.role}, not a {allowed}")
        for lock in locks:
            controlled = _controlled(session, exposed_pockets(session, cabinet_id, lock))
            if controlled and user is None:
                out[lock] = (
                    f"needs a {' or '.join(sorted(roles))} witness: it exposes controlled "
                    f"substances ({', '.join(controlled)}); give --witness"
                )
    return out


# ------------------------------------------------------------------------ diagnostics runs
def record_run(
    ctl: Controller,
    actor: Actor,
    cabinet_id: str,
    *,
    command: str,
    result: str,
    summary: str,
    details: dict[str, Any] | None = None,
    found: list[Found] | None = None,
    witness: Actor | None = None,
) -> int:
    """Record one diagnostics run (and the failures it found) in one transaction."""
    found = found or []
    with ctl.write(actor, Action.MAINTENANCE) as tx:
        get_cabinet(tx.session, cabinet_id)
        witness_user = _witness_user(tx.session, actor, witness)
        payload = {
            "cabinet": cabinet_id,
            "command": command,
            "result": result,
            "summary": summary,
            **(details or {}),
        }
        detail = json.dumps(payload, sort_keys=True, default=str)
        event = _event(tx, cabinet_id, DIAGNOSTIC_PREFIX + command, detail)
        failed = [_fail(tx, cabinet_id, f) for f in found]
        tx.audit(
            "maintenance.diagnostic",
            {**payload, "id": event.id, "failures_recorded": failed},
            witness=witness_user,
        )
        return event.id or 0


def check_calibration_source(
    ctl: Controller, cabinet_id: str, *, from_simulator: bool, pocket: str | None = None
) -> None:
    """Before a calibration runs: refused on a simulated backend unless the cabinet is a simulated
    one and no real cabinet stocks the pocket's item (its tare and unit weight would be the virtual
    cabinet's; `set_unit_weight` checks again), so nothing moves before the refusal."""
    with ctl.read() as session:
        check_measurement_source(
            get_cabinet(session, cabinet_id), from_simulator=from_simulator, what="a calibration"
        )
        if pocket is not None and from_simulator:
            item_id = find_pocket(session, cabinet_id, pocket).item_id
            if item_id is not None:
                check_item_measurement_source(
                    session,
                    item_id,
                    from_simulator=True,
                    what=f"the unit weight of {pocket}'s item",
                )


def check_record_source(ctl: Controller, cabinet_id: str, *, from_simulator: bool) -> None:
    """A diagnostic run on a simulated backend is recorded only against a simulated cabinet: its
    verdicts (a drawer back in service, a lock that relatched, a sensor that passes) are the virtual
    cabinet's, never evidence about a real cabinet's hardware."""
    with ctl.read() as session:
        check_measurement_source(
            get_cabinet(session, cabinet_id),
            from_simulator=from_simulator,
            what="a diagnostic run",
        )


def set_unit_weight(
    ctl: Controller,
    actor: Actor,
    cabinet_id: str,
    pocket_code: str,
    unit_weight_g: float,
    *,
    details: dict[str, Any] | None = None,
    witness: Actor | None = None,
    from_simulator: bool = False,
) -> tuple[str, float | None]:
    """A calibration's measured unit weight, written to the pocket's item; recorded. Returns the
    item's label and its previous unit weight. `from_simulator`: measured on a simulated backend,
    refused unless the cabinet is a simulated one (`cabinets.check_measurement_source`)."""
    if not 0 < unit_weight_g < 10_000:
        raise BadInput(f"a unit weight of {unit_weight_g} g is not plausible")
    with ctl.write(actor, Action.MAINTENANCE) as tx:
        cabinet = get_cabinet(tx.session, cabinet_id)
        check_measurement_source(
            cabinet,
            from_simulator=from_simulator,
            what=f"the unit weight of {pocket_code}'s item",
        )
        witness_user = _witness_user(tx.session, actor, witness)
        pocket = find_pocket(tx.session, cabinet_id, pocket_code)
        item = tx.session.get(Item, pocket.item_id) if pocket.item_id else None
        if item is None:
            raise Refused(f"pocket {pocket_code} has no item assigned: no unit weight to set")
        check_item_measurement_source(
            tx.session,
            item.id,
            from_simulator=from_simulator,
            what=f"the unit weight of {item_label(item)}",
        )
        before = item.unit_weight_g
        item.unit_weight_g = round(unit_weight_g, 4)
        drawer = tx.session.get(Drawer, pocket.drawer_id)
        payload = {
            "cabinet": cabinet_id,
            "pocket": pocket_code,
            "item_id": item.id,
            "unit_weight_g": {"before": before, "after": item.unit_weight_g},
            **(details or {}),
        }
        event = _event(
            tx,
            cabinet_id,
            "calibrated",
            json.dumps(payload, sort_keys=True, default=str),
            drawer=drawer.code if drawer else None,
            pocket=pocket_code,
        )
        tx.audit("maintenance.calibrated", {**payload, "id": event.id}, witness=witness_user)
        return item_label(item), before


# ----------------------------------------------------------------------------- recovery
@dataclass(frozen=True)
class RecountLine:
    """A pocket to recount: what is in it, never how many the system expects (a blind count)."""

    pocket: str
    item: str
    controlled: bool


@dataclass
class RecoveryPlan:
    cabinet: str
    drawer: str
    failures: list[Failure]
    recount: list[RecountLine] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # pockets with no item: nothing to count

    @property
    def session_id(self) -> str:
        return f"recovery:{self.cabinet}:{self.drawer}:{self.failures[-1].id}"


def recovery_plan(ctl: Controller, cabinet_id: str, drawer_code: str) -> RecoveryPlan:
    """What recovering a drawer involves; Refused when the drawer is in service."""
    with ctl.read() as session:
        get_cabinet(session, cabinet_id)
        drawer = _drawer(session, cabinet_id, drawer_code)
        failures = open_failures(session, cabinet_id, drawer_code)
        if not failures:
            raise Refused(f"drawer {drawer_code} is in service: nothing to recover")
        plan = RecoveryPlan(cabinet_id, drawer_code, failures)
        pockets = session.execute(
            select(Pocket).where(Pocket.drawer_id == drawer.id).order_by(Pocket.position)
        ).scalars()
        for pocket in pockets:
            item = session.get(Item, pocket.item_id) if pocket.item_id else None
            if item is None:
                plan.empty.append(pocket.code)
            else:
                plan.recount.append(
                    RecountLine(pocket.code, item_label(item), item.schedule is not None)
                )
        return plan


def recount(
    ctl: Controller, counter: Actor, plan: RecoveryPlan, pocket: str, counted: int
) -> int | None:
    """Record one pocket's blind recount as a count transaction (the inventory API: on-hand follows
    the count, a difference opens a discrepancy). Returns the discrepancy id, if one was opened."""
    from adc.controller.inventory import count

    if pocket not in {line.pocket for line in plan.recount}:
        raise BadInput(f"pocket {pocket} is not one to recount in drawer {plan.drawer}")
    movement = count(ctl, counter, plan.cabinet, pocket, counted, session_id=plan.session_id)
    return movement.discrepancy_id


def missing_recounts(session: Session, plan: RecoveryPlan) -> list[str]:
    counted = set(
        session.execute(
            select(Pocket.code)
            .join(Transaction, Transaction.pocket_id == Pocket.id)
            .where(
                Transaction.session_id == plan.session_id,
                Transaction.kind == TxnKind.COUNT.value,
                Pocket.cabinet_id == plan.cabinet,
            )
        ).scalars()
    )
    return [line.pocket for line in plan.recount if line.pocket not in counted]


def complete_recovery(
    ctl: Controller,
    actor: Actor,
    plan: RecoveryPlan,
    *,
    hardware: str,
    witness: Actor | None = None,
) -> int:
    """Return the drawer to service: Refused unless every assigned pocket was recounted in this
    recovery and no new failure arrived meanwhile. `hardware` says what the check found."""
    with ctl.write(actor, Action.MAINTENANCE) as tx:
        get_cabinet(tx.session, plan.cabinet)
        witness_user = _witness_user(tx.session, actor, witness)
        current = open_failures(tx.session, plan.cabinet, plan.drawer)
        if [f.id for f in current] != [f.id for f in plan.failures]:
            raise Refused(f"drawer {plan.drawer} failed again during the recovery: start over")
        missing = missing_recounts(tx.session, plan)
        if missing:
            raise Refused(
                f"drawer {plan.drawer} stays out of service: no blind recount of "
                f"{', '.join(missing)} in this recovery"
            )
        payload = {
            "cabinet": plan.cabinet,
            "drawer": plan.drawer,
            "cleared": [f.id for f in plan.failures],
            "recount_session": plan.session_id,
            "recounted": [line.pocket for line in plan.recount],
            "hardware": hardware,
        }
        event = _event(
            tx,
            plan.cabinet,
            RECOVERED,
            json.dumps(payload, sort_keys=True),
            drawer=plan.drawer,
        )
        tx.audit("maintenance.recovered", {**payload, "id": event.id}, witness=witness_user)
        return event.id or 0
