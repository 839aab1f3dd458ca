"""Reading a pocket's stock: lots in first-expiry-first-out order, and why a pocket is blocked.

Shared by the inventory operations, the restock session and the reports, so "expired" and
"recalled" mean the same everywhere: a lot is expired once its expiry date is before the site's
today; a pocket is blocked for removal while it holds an expired or a recalled lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, exists, select
from sqlalchemy.sql.expression import Exists
from sqlmodel import Session

from adc.controller.models import Drawer, Item, Pocket, Recall, StockLot
from adc.errors import BadInput


def find_pocket(session: Session, cabinet_id: str, code: str) -> Pocket:
    query = select(Pocket).where(Pocket.cabinet_id == cabinet_id, Pocket.code == code)
    pocket = session.execute(query).scalar()
    if pocket is None:
        raise BadInput(f"cabinet {cabinet_id} has no pocket {code!r}")
    return pocket


def held_lots(session: Session, pocket_id: int) -> list[StockLot]:
    """Lots with stock in the pocket, earliest expiry first (FEFO), then oldest received."""
    return list(
        session.execute(
            select(StockLot)
            .where(StockLot.pocket_id == pocket_id, StockLot.qty > 0)
            .order_by(StockLot.expiry, StockLot.id)
        ).scalars()
    )


def recalled(session: Session, lot: StockLot) -> bool:
    return (
        session.execute(
            select(Recall.id).where(Recall.gtin == lot.gtin, Recall.lot == lot.lot)
        ).first()
        is not None
    )


@dataclass(frozen=True)
class Block:
    """Why removal from a pocket is blocked, and which lots must be pulled."""

    reason: str
    lot_ids: tuple[int, ...]


def block_of(session: Session, pocket: Pocket, today: date) -> Block | None:
    """Why removal from the pocket is blocked (expired or recalled lots held), or None."""
    assert pocket.id is not None
    rows = session.execute(
        select(StockLot.id, StockLot.lot, StockLot.expiry, Recall.id)
        .outerjoin(Recall, and_(Recall.gtin == StockLot.gtin, Recall.lot == StockLot.lot))
        .where(StockLot.pocket_id == pocket.id, StockLot.qty > 0)
        .order_by(StockLot.expiry, StockLot.id)
    ).all()
    expired = [(lot_id, lot, expiry) for lot_id, lot, expiry, _ in rows if expiry < today]
    called = [(lot_id, lot) for lot_id, lot, _, recall_id in rows if recall_id is not None]
    if not expired and not called:
        return None
    parts = []
    if expired:
        parts.append(
            "expired lot "
            + ", ".join(f"{lot} ({expiry.isoformat()})" for _, lot, expiry in expired)
        )
    if called:
        parts.append("recalled lot " + ", ".join(lot for _, lot in called))
    ids = tuple(sorted({lot_id for lot_id, *_ in expired + called}))
    return Block(reason=f"pocket {pocket.code} holds " + " and ".join(parts), lot_ids=ids)


def expired_held_clause(today: date) -> Exists:
    """SQL: the pocket (correlated) holds a lot that expired before `today`."""
    return exists().where(
        StockLot.pocket_id == Pocket.id, StockLot.qty > 0, StockLot.expiry < today
    )


def recalled_held_clause() -> Exists:
    """SQL: the pocket (correlated) holds a lot under recall."""
    return exists().where(
        StockLot.pocket_id == Pocket.id,
        StockLot.qty > 0,
        exists().where(and_(Recall.gtin == StockLot.gtin, Recall.lot == StockLot.lot)),
    )


def item_label(item: Item) -> str:
    return f"{item.name} {item.strength} {item.form}"


def drawer_of(session: Session, pocket: Pocket) -> Drawer:
    drawer = session.get(Drawer, pocket.drawer_id)
    assert drawer is not None
    return drawer
