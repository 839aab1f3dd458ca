"""Reading a pocket's stock: lots in first-expiry-first-out order, and why a pocket is blocked.

Shared by the inventory operations, the restock session and the reports, so "expired" and
"recalled" mean the same everywhere: a lot is expired once its expiry date is before the site's
today; a pocket is blocked for removal while it holds an expired or a recalled lot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, literal_column, select
from sqlalchemy.sql.expression import Exists
from sqlmodel import Session

from adc.controller.models import Drawer, Pocket, Recall, StockLot
from adc.errors import BadInput


def is_held() -> ColumnElement[bool]:
    """SQL: the lot holds stock. The `0` is written into the SQL, not bound: a bound value makes
    SQLite re-plan the statement at every run to see whether the partial indexes on held lots
    (`WHERE qty > 0`) apply, which costs ten times the query itself."""
    return StockLot.qty > literal_column("0")


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
            .where(StockLot.pocket_id == pocket_id, is_held())
            .order_by(StockLot.expiry, StockLot.id)
        ).scalars()
    )


def lot_on_record(
    session: Session,
    pocket_id: int,
    item_id: int,
    gtin: str,
    lot: str,
    expiry: date,
    received_at: datetime,
) -> tuple[StockLot, bool]:
    """The pocket's row for this lot, created empty if it has none; True when created. A lot
    on record at zero is where a later count puts what it finds (see `inventory.apply_count`)."""
    found = session.execute(
        select(StockLot).where(
            StockLot.pocket_id == pocket_id,
            StockLot.gtin == gtin,
            StockLot.lot == lot,
            StockLot.expiry == expiry,
        )
    ).scalar()
    if found is not None:
        return found, False
    created = StockLot(
        pocket_id=pocket_id,
        item_id=item_id,
        gtin=gtin,
        lot=lot,
        expiry=expiry,
        qty=0,
        received_at=received_at,
    )
    session.add(created)
    session.flush()
    return created, True


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
        .where(StockLot.pocket_id == pocket.id, is_held())
        .order_by(StockLot.expiry, StockLot.id)
    ).all()
    return block_from_rows(pocket.code, [tuple(row) for row in rows], today)


def block_from_rows(code: str, lots: Sequence[Sequence[Any]], today: date) -> Block | None:
    """The rule of `block_of` over the pocket's held lots, given as (id, lot, expiry, recall id,
    …) in FEFO order, however they were read."""
    expired = [(lot[0], lot[1], lot[2]) for lot in lots if lot[2] < today]
    called = [(lot[0], lot[1]) for lot in lots if lot[-1] is not None]
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
    return Block(reason=f"pocket {code} holds " + " and ".join(parts), lot_ids=ids)


def expired_held_clause(today: date) -> Exists:
    """SQL: the pocket (correlated) holds a lot that expired before `today`."""
    return exists().where(StockLot.pocket_id == Pocket.id, is_held(), StockLot.expiry < today)


def recalled_held_clause() -> Exists:
    """SQL: the pocket (correlated) holds a lot under recall."""
    return exists().where(
        StockLot.pocket_id == Pocket.id,
        is_held(),
        exists().where(and_(Recall.gtin == StockLot.gtin, Recall.lot == StockLot.lot)),
    )


def item_label(item: Any) -> str:
    return f"{item.name} {item.strength} {item.form}"


def drawer_of(session: Session, pocket: Pocket) -> Drawer:
    drawer = session.get(Drawer, pocket.drawer_id)
    assert drawer is not None
    return drawer
