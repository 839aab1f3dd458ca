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

from sqlalchemy import ColumnElement, exists, literal_column, select
from sqlalchemy.sql.expression import Exists
from sqlmodel import Session

from adc.controller.lots import lot_key, recall_covers, same_lot
from adc.controller.models import Cabinet, Drawer, Pocket, Recall, StockLot
from adc.errors import BadInput


def is_held() -> ColumnElement[bool]:
    """SQL: the lot holds stock. The `0` is written into the SQL, not bound: a bound value makes
    SQLite re-plan the statement at every run to see whether the partial indexes on held lots
    (`WHERE qty > 0`) apply, which costs ten times the query itself."""
    return StockLot.qty > literal_column("0")


def no_such_cabinet(cabinet_id: str) -> BadInput:
    return BadInput(f"no cabinet {cabinet_id!r}: register it with `adc cabinet add`")


def no_such_pocket(cabinet_id: str, code: str, *, cabinet_known: bool) -> BadInput:
    """The error for a pocket not found: a misspelt cabinet is named as that, not as a cabinet
    that lacks the pocket."""
    if not cabinet_known:
        return no_such_cabinet(cabinet_id)
    return BadInput(f"cabinet {cabinet_id} has no pocket {code!r}")


def find_pocket(session: Session, cabinet_id: str, code: str) -> Pocket:
    query = select(Pocket).where(Pocket.cabinet_id == cabinet_id, Pocket.code == code)
    pocket = session.execute(query).scalar()
    if pocket is None:
        known = session.get(Cabinet, cabinet_id) is not None
        raise no_such_pocket(cabinet_id, code, cabinet_known=known)
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
    """The pocket's row for this lot (compared by `lots.lot_key`), created empty if it has none;
    True when created. A lot on record at zero is where a later count puts what it finds (see
    `inventory.apply_count`)."""
    found = session.execute(
        select(StockLot)
        .where(
            StockLot.pocket_id == pocket_id,
            StockLot.gtin == gtin,
            same_lot(StockLot.lot, lot),
            StockLot.expiry == expiry,
        )
        .order_by(StockLot.id)
        .limit(1)
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


def recall_id_of(gtin: Any, item_id: Any, lot: Any) -> Any:
    """SQL: the id of the first recall covering the lot (see `lots.recall_covers`), else NULL.
    A scalar, not a join: a lot several recalls cover is still one row."""
    recall = Recall.__table__
    return (
        select(recall.c.id)
        .where(recall_covers(gtin, item_id, lot))
        .order_by(recall.c.id)
        .limit(1)
        .scalar_subquery()
    )


def recalled(session: Session, lot: StockLot) -> bool:
    found = session.execute(select(recall_id_of(lot.gtin, lot.item_id, lot.lot))).scalar()
    return found is not None


@dataclass(frozen=True)
class Block:
    """Why removal from a pocket is blocked, and which lots must be pulled."""

    reason: str
    lot_ids: tuple[int, ...]


def block_of(session: Session, pocket: Pocket, today: date) -> Block | None:
    """Why removal from the pocket is blocked (expired or recalled lots held), or None."""
    assert pocket.id is not None
    rows = session.execute(
        select(
            StockLot.id,
            StockLot.lot,
            StockLot.expiry,
            recall_id_of(StockLot.gtin, StockLot.item_id, StockLot.lot),
        )
        .where(StockLot.pocket_id == pocket.id, is_held())
        .order_by(StockLot.expiry, StockLot.id)
    ).all()
    return block_from_rows(pocket.code, [tuple(row) for row in rows], today)


def block_from_rows(code: str, lots: Sequence[Sequence[Any]], today: date) -> Block | None:
    """The rule of `block_of` over the pocket's held lots, given as (id, lot, expiry, recall id,
    …) in FEFO order, however they were read. A lot held in several rows (two expiries, two
    GTINs, two spellings) is named once."""
    expired = [(lot[0], lot[1], lot[2]) for lot in lots if lot[2] < today]
    called = [(lot[0], lot[1]) for lot in lots if lot[-1] is not None]
    if not expired and not called:
        return None
    parts = []
    if expired:
        named = {
            (lot_key(lot), expiry): f"{lot} ({expiry.isoformat()})" for _, lot, expiry in expired
        }
        parts.append("expired lot " + ", ".join(named.values()))
    if called:
        named_called = {lot_key(lot): lot for _, lot in reversed(called)}  # first spelling wins
        parts.append("recalled lot " + ", ".join(reversed(named_called.values())))
    ids = tuple(sorted({lot_id for lot_id, *_ in expired + called}))
    return Block(reason=f"pocket {code} holds " + " and ".join(parts), lot_ids=ids)


def expired_held_clause(today: date) -> Exists:
    """SQL: the pocket (correlated) holds a lot that expired before `today`."""
    return exists().where(StockLot.pocket_id == Pocket.id, is_held(), StockLot.expiry < today)


def recalled_held_clause() -> Exists:
    """SQL: the pocket (correlated) holds a lot under recall (see `lots.recall_covers`)."""
    return exists().where(
        StockLot.pocket_id == Pocket.id,
        is_held(),
        exists().where(recall_covers(StockLot.gtin, StockLot.item_id, StockLot.lot)),
    )


def item_label(item: Any) -> str:
    return f"{item.name} {item.strength} {item.form}"


def drawer_of(session: Session, pocket: Pocket) -> Drawer:
    drawer = session.get(Drawer, pocket.drawer_id)
    assert drawer is not None
    return drawer
