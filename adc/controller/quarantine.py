"""Quarantine: stock nobody may remove until a pharmacist has judged it.

Placed by the station's supervision (a fridge outside its range for longer than the allowed
excursion: `supervision.record`), by the system, with the reason and the lots it held, an
audit entry and a notification to pharmacists. While it is open every removal from the pocket
is refused: `refuse_if_quarantined` is called where removals are checked (a nurse's withdrawal
before anything unlocks, and the removal itself), next to the expired/recalled block. Restocking
(a refill or load) into it is refused too, where a restock line is selected (before anything
unlocks) and where the stock is received (`inventory._receive`): new stock would mix with stock
of unknown fitness, and a later pull could not tell them apart on the shelf. An unload (a removal
by a technician) is refused the same way, at its select and at its record.

A pharmacist then either **releases** it (the stock is fit for use: a note says why, e.g. the
manufacturer's stability data covers the excursion) or **pulls** it (every lot held is written
off as a pull, what was taken out counted; a difference opens a discrepancy). Both are audited.
Anyone else is refused and the refusal is audited (`notifications.require_pharmacist`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.sql import ClauseElement

from adc.controller import notifications, rows
from adc.controller.cabinet_scope import Cabinets, scoped
from adc.controller.context import Actor, Controller
from adc.controller.lots import lot_key
from adc.controller.models import Pocket, TxnKind, User
from adc.controller.permissions import Action
from adc.controller.station_tables import Quarantine
from adc.controller.stock import find_pocket, held_lots
from adc.controller.store import Store
from adc.errors import BadInput, Refused

OPEN, RELEASED, PULLED = "open", "released", "pulled"
_q = Quarantine.__table__.c  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- the removal check
def _q_open_quarantine() -> ClauseElement:
    return (
        select(_q.id, _q.reason)
        .where(_q.pocket_id == bindparam("pocket"), _q.status == OPEN)
        .order_by(_q.id)
        .limit(1)
    )


def refuse_if_quarantined(store: Store, pocket_id: int, code: str, action: str = "removal") -> None:
    """Refused while the pocket's stock is quarantined (one indexed probe on the raw cursor).
    `action` names what is blocked in the message (removal, restocking)."""
    _refuse(store.row(_q_open_quarantine, pocket=pocket_id), code, action)


def refuse_if_quarantined_orm(session: Any, pocket_id: int, code: str, action: str) -> None:
    """The same rule for a transaction on the ORM session (an unload)."""
    found = session.execute(_q_open_quarantine(), {"pocket": pocket_id}).first()
    _refuse(found, code, action)


def _refuse(found: Any, code: str, action: str) -> None:
    if found is not None:
        raise Refused(
            f"pocket {code} is quarantined (#{found[0]}: {found[1]}): {action} blocked until a "
            f"pharmacist releases or pulls it (adc quarantine release|pull {found[0]})"
        )


# ------------------------------------------------------------------------------- placing it
def place(
    ctl: Controller, cabinet: str, pocket_code: str, reason: str, *, alarm_event: int | None
) -> int | None:
    """Quarantine the stock the pocket holds now (by the system); the id, or None when it holds
    nothing. A pocket already under an open quarantine keeps that one (its id is returned)."""
    with ctl.write(None, None, cabinet=cabinet) as tx:
        pocket = find_pocket(tx.session, cabinet, pocket_code)
        assert pocket.id is not None
        existing = tx.session.execute(
            select(Quarantine.id).where(
                Quarantine.pocket_id == pocket.id, Quarantine.status == OPEN
            )
        ).scalar()
        if existing is not None:
            return int(existing)
        lots = held_lots(tx.session, pocket.id)
        if not lots:
            return None
        held = [
            {"lot": lot.lot, "gtin": lot.gtin, "expiry": lot.expiry.isoformat(), "qty": lot.qty}
            for lot in lots
        ]
        row = Quarantine(
            cabinet_id=cabinet,
            pocket_id=pocket.id,
            pocket_code=pocket.code,
            reason=reason,
            lots=json.dumps(held),
            placed_at=tx.now,
            alarm_event_id=alarm_event,
        )
        tx.session.add(row)
        tx.session.flush()
        tx.audit(
            "quarantine.placed",
            {
                "id": row.id,
                "cabinet": cabinet,
                "pocket": pocket.code,
                "reason": reason,
                "lots": held,
                "alarm_event": alarm_event,
            },
        )
        notifications.notify(
            tx,
            cabinet,
            notifications.QUARANTINE,
            f"quarantine:{row.id}",
            f"pocket {pocket.code} quarantined: {reason}; release or pull it "
            f"(adc quarantine release|pull {row.id})",
            pocket=pocket.code,
        )
        return row.id


# --------------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class QuarantineView:
    id: int
    cabinet: str
    pocket: str
    status: str
    reason: str
    placed_at: str
    qty: int  # units held when it was placed
    lots: list[dict[str, Any]]
    resolved_by: str | None
    resolved_at: str | None
    note: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def list_quarantines(
    ctl: Controller, cabinet: Cabinets = None, *, open_only: bool = False
) -> list[QuarantineView]:
    query = select(Quarantine, User.username).outerjoin(User, User.id == Quarantine.resolved_by)
    query = scoped(query, Quarantine.cabinet_id, cabinet)
    if open_only:
        query = query.where(Quarantine.status == OPEN)
    with ctl.read() as session:
        found = session.execute(query.order_by(Quarantine.id)).all()
    out = []
    for q, who in found:
        lots = json.loads(q.lots or "[]")
        out.append(
            QuarantineView(
                id=q.id or 0,
                cabinet=q.cabinet_id,
                pocket=q.pocket_code,
                status=q.status,
                reason=q.reason,
                placed_at=q.placed_at.isoformat(),
                qty=sum(int(lot.get("qty", 0)) for lot in lots),
                lots=lots,
                resolved_by=who,
                resolved_at=q.resolved_at.isoformat() if q.resolved_at else None,
                note=q.note,
            )
        )
    return out


def _open_one(ctl: Controller, quarantine_id: int) -> QuarantineView:
    found = [q for q in list_quarantines(ctl) if q.id == quarantine_id]
    if not found:
        raise BadInput(f"no quarantine {quarantine_id}")
    if found[0].status != OPEN:
        raise Refused(
            f"quarantine {quarantine_id} is {found[0].status} already"
            + (
                f" (by {found[0].resolved_by} at {found[0].resolved_at})"
                if found[0].resolved_by
                else ""
            )
        )
    return found[0]


# ---------------------------------------------------------------------- a pharmacist decides
def release(ctl: Controller, actor: Actor, quarantine_id: int, note: str) -> QuarantineView:
    """The stock is fit for use after all: removal allowed again. Pharmacists only."""
    notifications.require_pharmacist(
        ctl, actor, "release a quarantine", {"quarantine": quarantine_id}
    )
    note = note.strip()
    if not note:
        raise BadInput("a release needs a note saying why the stock is fit for use")
    _open_one(ctl, quarantine_id)
    with ctl.write(actor, Action.PULL) as tx:
        row = tx.session.get(Quarantine, quarantine_id)
        if row is None or row.status != OPEN:
            raise Refused(f"quarantine {quarantine_id} is not open any more")
        if tx.user is None or tx.user.role != "pharmacist":
            raise Refused(f"user {actor.username} is not a pharmacist")
        row.status, row.resolved_by, row.resolved_at, row.note = (
            RELEASED,
            actor.user_id,
            tx.now,
            note,
        )
        tx.session.add(row)
        tx.audit(
            "quarantine.released",
            {
                "id": quarantine_id,
                "cabinet": row.cabinet_id,
                "pocket": row.pocket_code,
                "reason": row.reason,
                "note": note,
            },
        )
    return next(q for q in list_quarantines(ctl) if q.id == quarantine_id)


def _q_close() -> ClauseElement:
    return (
        update(Quarantine.__table__)  # type: ignore[arg-type]
        .where(_q.id == bindparam("qid"), _q.status == OPEN)
        .values(
            status=bindparam("status"),
            resolved_by=bindparam("user"),
            resolved_at=bindparam("at"),
            note=bindparam("note"),
        )
    )


@dataclass(frozen=True)
class Pulled:
    quarantine: QuarantineView
    movement: Any  # inventory.Movement


def pull(ctl: Controller, actor: Actor, quarantine_id: int, removed: int, note: str = "") -> Pulled:
    """Every lot the quarantine holds is written off as a pull (`removed`: what the pharmacist
    took out; a difference from the record opens a discrepancy). Pharmacists only."""
    from adc.controller import inventory  # inventory's removal imports this module

    if removed < 0:
        raise BadInput(f"quantity removed cannot be negative, got {removed}")
    notifications.require_pharmacist(ctl, actor, "pull a quarantine", {"quarantine": quarantine_id})
    view = _open_one(ctl, quarantine_id)
    with ctl.write_fast(actor, Action.PULL, cabinet=view.cabinet) as tx:
        store = tx.store
        if tx.user is None or tx.user.role != "pharmacist":
            raise Refused(f"user {actor.username} is not a pharmacist")
        pocket = rows.pocket(store, view.cabinet, view.pocket)
        placed = {(lot_key(lot["lot"]), lot["expiry"]) for lot in view.lots}
        lots = [  # the lots it quarantined (stock added since is not written off with them)
            lot
            for lot in rows.held_lots(store, pocket.id)
            if (lot_key(lot.lot), lot.expiry.isoformat()) in placed
        ]
        expected = sum(lot.qty for lot in lots)
        seq = tx.upcoming_seq()
        moved: list[tuple[int, int | None, int]] = []
        reason = f"quarantine {quarantine_id}: {view.reason}"
        for lot in lots:
            rows.take_from_lot(store, lot.id, lot.qty)
            txn_id = rows.insert_txn(
                store,
                at=tx.now,
                kind=TxnKind.PULL.value,
                cabinet_id=pocket.cabinet_id,
                pocket_id=pocket.id,
                item_id=pocket.item_id,
                lot_id=lot.id,
                qty=-lot.qty,
                expected=expected,
                counted=removed,
                user_id=tx.user.id,
                reason=reason[:200],
                audit_seq=seq,
            )
            moved.append((txn_id, lot.id, -lot.qty))
        pocket = pocket._replace(on_hand=pocket.on_hand - expected)
        rows.set_on_hand(store, pocket.id, pocket.on_hand)
        disc = None
        if removed != expected:
            disc = inventory.open_discrepancy(
                tx, ctl, pocket, "pull", expected, removed, moved[0][0] if moved else None
            )
        closed = store.run(
            _q_close, qid=quarantine_id, status=PULLED, user=actor.user_id, at=tx.now,
            note=note.strip() or None,
        )  # fmt: skip
        if closed != 1:
            raise Refused(f"quarantine {quarantine_id} is not open any more")
        movement = inventory.finish_fast(
            tx,
            pocket,
            TxnKind.PULL,
            moved,
            {
                "quarantine": quarantine_id,
                "reason": view.reason,
                "expected": expected,
                "removed": removed,
                "discrepancy": disc,
                "note": note.strip() or None,
            },
        )
        movement.discrepancy_id = disc
    return Pulled(next(q for q in list_quarantines(ctl) if q.id == quarantine_id), movement)


def open_for_pocket(ctl: Controller, cabinet: str, pocket_code: str) -> int | None:
    with ctl.read() as session:
        pocket = session.execute(
            select(Pocket.id).where(Pocket.cabinet_id == cabinet, Pocket.code == pocket_code)
        ).scalar()
        if pocket is None:
            return None
        return session.execute(
            select(Quarantine.id).where(Quarantine.pocket_id == pocket, Quarantine.status == OPEN)
        ).scalar()
