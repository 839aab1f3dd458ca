"""Counting a pocket: the count on access (blind for controlled substances) and cycle counts.

Why a count on access: a controlled substance must be accounted for at every touch (DEA), and a
count taken *before* the person moves stock shows whether the record was right when they arrived,
so a difference is traced to the last access, not to this one. The count is blind: `count_prompt`
gives no expected number for a controlled pocket or a cabinet in `blind` mode (only `verify` shows
it), and `CountResult` never carries it, so a screen cannot leak it by accident.

The rule, enforced by the controller rather than by any screen:
- `require_access_count` is called inside remove, refill, unload and waste (from the pocket):
  where a count is due (controlled item, or the cabinet's `count-mode` is verify/blind), the
  pocket's latest count or movement must be a count by the same person, at most `ACCESS_WINDOW`
  old, that is not waiting for its recount. Anything moved in between (someone else's access)
  means count again; records that move nothing in the pocket (a waste of a dose removed earlier, a
  resolution) do not.
- `count_pocket` records one count in one transaction. A count that differs is either a *recount
  request* (the cabinet allows one immediate recount, and this is the person's first try): recorded
  as a count that changes nothing, with reason `recount requested`, and the person must count again;
  or it stands: on-hand follows the count and a discrepancy opens (expected, counted, who, when,
  pocket, transaction). A recount answers the request (`related_id` points at it); a second
  difference stands, so a person cannot guess their way to the expected number.
- Cycle counts use the same call (no access follows). Where the pocket has a scale, the caller
  passes what the scale implies (`SensorCount`); it is recorded beside the person's count and a
  disagreement opens its own `sensor` discrepancy for review.

Invariant (tests/controller/test_stateful.py): every count that stands and differs from what was
expected has exactly one discrepancy of its own; recount requests have none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlmodel import Session

from adc.controller import inventory, rows, study_rules
from adc.controller.cabinet_policy import (
    CountMode,
    cabinet_policy,
    policy_from_rows,
    settings_prefix,
)
from adc.controller.models import Item, Pocket, Transaction, TxnKind
from adc.controller.permissions import Action
from adc.controller.stock import find_pocket, item_label
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller, FastTx, Tx
    from adc.controller.store import Store

ACCESS_WINDOW = timedelta(minutes=15)  # a count opens the pocket for its counter this long
RECOUNT_REQUESTED = "recount requested"
RECOUNT = "recount"


class Outcome(StrEnum):
    MATCH = "match"  # the count agreed with the record
    RECOUNT = "recount"  # it differed; the cabinet allows one immediate recount: count again
    DISCREPANCY = "discrepancy"  # it differed and stands: on-hand follows it, a discrepancy opened


def controlled(session: Session, pocket: Pocket) -> Item | None:
    """The pocket's item if it is a controlled substance (schedule II–V), else None."""
    item = session.get(Item, pocket.item_id) if pocket.item_id else None
    return item if item is not None and item.schedule is not None else None


def count_mode_of(session: Session, pocket: Pocket) -> CountMode:
    """How this pocket is counted on access: blind for controlled items, else the cabinet's mode."""
    if pocket.item_id is None:
        return CountMode.NONE
    if controlled(session, pocket) is not None:
        return CountMode.BLIND
    return cabinet_policy(session, pocket.cabinet_id).count_mode


@dataclass(frozen=True)
class CountPrompt:
    """What a screen may show before the person counts: `expected` only in verify mode."""

    cabinet: str
    pocket: str
    item: str | None
    controlled: bool
    mode: CountMode
    expected: int | None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode.value}


def count_prompt(ctl: Controller, cabinet: str, pocket_code: str) -> CountPrompt:
    with ctl.read() as session:
        pocket = find_pocket(session, cabinet, pocket_code)
        item = session.get(Item, pocket.item_id) if pocket.item_id else None
        mode = count_mode_of(session, pocket)
        return CountPrompt(
            cabinet=cabinet,
            pocket=pocket.code,
            item=item_label(item) if item else None,
            controlled=item is not None and item.schedule is not None,
            mode=mode,
            expected=pocket.on_hand if mode is CountMode.VERIFY else None,
        )


@dataclass(frozen=True)
class SensorCount:
    """What a pocket's scale implies: `count` is None when the weight is not a whole number of
    units (within the site's weight tolerance)."""

    grams: float
    unit_weight_g: float
    count: int | None

    @classmethod
    def from_weight(cls, grams: float, unit_weight_g: float, tolerance: float) -> SensorCount:
        units = grams / unit_weight_g
        nearest = round(units)
        whole = abs(units - nearest) <= tolerance and nearest >= 0
        return cls(round(grams, 2), unit_weight_g, nearest if whole else None)


@dataclass
class CountResult:
    """A recorded count, as the person may see it (no expected number)."""

    cabinet: str
    pocket: str
    outcome: Outcome
    counted: int
    txn_id: int
    discrepancy_id: int | None = None
    recount_of: int | None = None
    sensor: SensorCount | None = None
    sensor_discrepancy_id: int | None = None
    audit_seq: int = 0
    txn_ids: list[int] = field(default_factory=list)

    @property
    def sensor_disagrees(self) -> bool:
        return self.sensor is not None and self.sensor.count != self.counted

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcome"] = self.outcome.value
        out["sensor_disagrees"] = self.sensor_disagrees
        return out


def _latest(tx: Tx, pocket: Pocket) -> Transaction | None:
    """The pocket's latest count or movement. Records that move nothing in it (the waste of a
    dose already removed, a discrepancy's resolution) do not touch the pocket: skipped."""
    return tx.session.execute(
        select(Transaction)
        .where(
            Transaction.pocket_id == pocket.id,
            or_(Transaction.qty != 0, Transaction.kind == TxnKind.COUNT.value),
        )
        .order_by(Transaction.id.desc())  # type: ignore[union-attr]
        .limit(1)
    ).scalar()


def fresh_own_count(user_id: int | None, now: datetime, last: Any) -> bool:
    """Is `last` (the pocket's latest count or movement) a count by this user, fresh enough?"""
    return (
        last is not None
        and last.kind == TxnKind.COUNT
        and last.user_id == user_id
        and timedelta(0) <= now - last.at <= ACCESS_WINDOW
    )


@study_rules.audit_refusals
def count_pocket(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    counted: int,
    *,
    access: str | None = None,
    session_id: str | None = None,
    sensor: SensorCount | None = None,
) -> CountResult:
    """Record a person's count of a pocket (see the module docstring for recount and sensor).

    `access` names what the count opens the way to (remove, refill, unload, waste), None for a
    cycle count; it becomes the trigger of a discrepancy.
    """
    if isinstance(counted, bool) or not isinstance(counted, int):
        raise BadInput(f"a count is a whole number, got {counted!r}")
    if counted < 0:
        raise BadInput(f"a count cannot be negative, got {counted}")
    with ctl.write_fast(actor, Action.COUNT, cabinet=cabinet) as tx:
        pocket = rows.pocket(tx.store, cabinet, pocket_code)
        if pocket.kind == "return-bin":
            raise Refused(
                f"pocket {pocket.code} is the return bin: it is counted item by item when a "
                "pharmacist clears it out"
            )
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned: nothing to count")
        assert tx.user is not None
        study_rules.guard(tx.store, pocket, tx.user, "count")
        last = rows.latest_touch(tx.store, pocket.id)
        fresh = fresh_own_count(tx.user.id, tx.now, last)
        pending = last if fresh and last.reason == RECOUNT_REQUESTED else None  # type: ignore[union-attr]
        settings = rows.cabinet_settings(tx.store, settings_prefix(cabinet))
        allow_recount = policy_from_rows(cabinet, settings).recount
        trigger = access or "count"
        extra: dict[str, Any] = {}
        if pending is not None:
            extra = {"related_id": pending.id, "reason": RECOUNT}
        payload: dict[str, Any] = {
            "access": access,
            "recount_of": pending.id if pending else None,
            "sensor": asdict(sensor) if sensor else None,
        }
        if counted != pocket.on_hand and pending is None and allow_recount:
            expected = pocket.on_hand
            txn_id = rows.insert_txn(
                tx.store,
                at=tx.now,
                kind=TxnKind.COUNT.value,
                cabinet_id=pocket.cabinet_id,
                pocket_id=pocket.id,
                item_id=pocket.item_id,
                lot_id=None,
                qty=0,
                user_id=tx.user.id,
                session_id=session_id,
                expected=expected,
                counted=counted,
                reason=RECOUNT_REQUESTED,
                audit_seq=tx.upcoming_seq(),
            )
            movement = inventory.finish_fast(
                tx,
                pocket,
                TxnKind.COUNT,
                [(txn_id, None, 0)],
                {**payload, "expected": expected, "counted": counted, "outcome": "recount"},
            )
            return CountResult(
                cabinet,
                pocket.code,
                Outcome.RECOUNT,
                counted,
                txn_id,
                sensor=sensor,
                audit_seq=movement.audit_seq,
                txn_ids=movement.txn_ids,
            )
        done = inventory.apply_count(
            tx, ctl, pocket, counted, trigger=trigger, session_id=session_id, **extra
        )
        first_txn = done.moved[0][0]
        sensor_disc = None
        if sensor is not None and sensor.count is not None and sensor.count != counted:
            sensor_disc = inventory.open_discrepancy(
                tx, ctl, done.pocket, "sensor", sensor.count, counted, first_txn
            )
        disc = done.discrepancy_id
        outcome = Outcome.DISCREPANCY if disc else Outcome.MATCH
        movement = inventory.finish_fast(
            tx,
            done.pocket,
            TxnKind.COUNT,
            done.moved,
            {
                **payload,
                "expected": done.expected,
                "counted": counted,
                "outcome": outcome.value,
                "discrepancy": disc,
                "sensor_discrepancy": sensor_disc,
            },
        )
        return CountResult(
            cabinet,
            pocket.code,
            outcome,
            counted,
            first_txn,
            discrepancy_id=disc,
            recount_of=pending.id if pending else None,
            sensor=sensor,
            sensor_discrepancy_id=sensor_disc,
            audit_seq=movement.audit_seq,
            txn_ids=movement.txn_ids,
        )


def require_access_count(tx: Tx, pocket: Pocket, what: str) -> Transaction | None:
    """Inside an access's transaction: Refused unless the count due on this pocket was just made
    by the acting user (their latest record on it, within `ACCESS_WINDOW`, not awaiting a recount).

    Returns that count (None where no count is due).
    """
    mode = count_mode_of(tx.session, pocket)
    if mode is CountMode.NONE:
        return None
    item = tx.session.get(Item, pocket.item_id)
    assert tx.user is not None
    last = _latest(tx, pocket)
    check_access_count(mode, last, tx.user.id, tx.now, pocket.code, item, what)
    return last


def count_mode_of_row(store: Store, pocket: rows.PocketRow, item: rows.ItemRow | None) -> CountMode:
    """`count_mode_of` over rows (store.py): blind for a controlled item, else the cabinet's."""
    if pocket.item_id is None:
        return CountMode.NONE
    if item is not None and item.schedule is not None:
        return CountMode.BLIND
    settings = rows.cabinet_settings(store, settings_prefix(pocket.cabinet_id))
    return policy_from_rows(pocket.cabinet_id, settings).count_mode


def require_access_count_fast(tx: FastTx, pocket: rows.PocketRow, what: str) -> Any:
    """`require_access_count` on the hot path (store.py): the same rule over the same rows."""
    if pocket.item_id is None:
        return None
    item = rows.item(tx.store, pocket.item_id)
    mode = count_mode_of_row(tx.store, pocket, item)
    if mode is CountMode.NONE:
        return None
    assert tx.user is not None
    last = rows.latest_touch(tx.store, pocket.id)
    check_access_count(mode, last, tx.user.id, tx.now, pocket.code, item, what)
    return last


def check_access_count(
    mode: CountMode,
    last: Any,
    user_id: int | None,
    now: datetime,
    code: str,
    item: Any,
    what: str,
) -> None:
    """The rule of `require_access_count`, over what it read (`last`: the pocket's latest count
    or movement; `item`: the pocket's item), however it was read."""
    if mode is CountMode.NONE:
        return
    if fresh_own_count(user_id, now, last):
        if last.reason == RECOUNT_REQUESTED:
            raise Refused(f"your count of pocket {code} differed: recount it before you {what}")
        return
    label = item_label(item) if item else "its item"
    why = "a controlled substance" if item is not None and item.schedule else f"{mode.value} count"
    raise Refused(
        f"pocket {code} holds {label} ({why}): count it first "
        f"(a {mode.value} count, on access) before you {what}"
    )


def count_mode_from(schedule: int | None, cabinet_mode: CountMode) -> CountMode:
    """Blind for a controlled item, else the cabinet's mode (see `count_mode_of`)."""
    return CountMode.BLIND if schedule is not None else cabinet_mode


# ---------------------------------------------------------------------------------- cycle counts
@dataclass(frozen=True)
class CycleTarget:
    """A pocket to count in a cycle count: what is in it, never how many (a blind count)."""

    pocket: str
    drawer: str
    item: str
    controlled: bool
    sensor_kind: str
    sensor_point: str | None
    unit_weight_g: float | None


def cycle_targets(
    ctl: Controller,
    cabinet: str,
    *,
    controlled_only: bool = False,
    pockets: list[str] | None = None,
) -> list[CycleTarget]:
    """The pockets a cycle count covers, in cabinet order: every assigned pocket (return bins
    are counted at their clear-out), only controlled ones, or the ones named (BadInput for a
    pocket the cabinet does not have or that holds nothing assigned)."""
    from adc.controller.cabinets import get_cabinet
    from adc.controller.models import Drawer

    with ctl.read() as session:
        get_cabinet(session, cabinet)
        rows = session.execute(
            select(Pocket, Drawer.code)
            .join(Drawer, Drawer.id == Pocket.drawer_id)
            .where(Pocket.cabinet_id == cabinet)
            .order_by(Pocket.position)
        ).all()
        by_code = {pocket.code: (pocket, drawer) for pocket, drawer in rows}
        if pockets:
            unknown = [p for p in pockets if p not in by_code]
            if unknown:
                raise BadInput(f"cabinet {cabinet} has no pocket {', '.join(unknown)}")
            empty = [p for p in pockets if by_code[p][0].item_id is None]
            if empty:
                raise BadInput(f"pocket {', '.join(empty)} has no item assigned: nothing to count")
        out = []
        for pocket, drawer in rows:
            if pockets and pocket.code not in pockets:
                continue
            if pocket.item_id is None or pocket.kind == "return-bin":
                continue
            item = session.get(Item, pocket.item_id)
            assert item is not None
            if controlled_only and item.schedule is None:
                continue
            out.append(
                CycleTarget(
                    pocket.code,
                    drawer,
                    item_label(item),
                    item.schedule is not None,
                    pocket.sensor_kind,
                    pocket.sensor_point,
                    item.unit_weight_g,
                )
            )
        return out
