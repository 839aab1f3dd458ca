"""The controlled-substance activity record: every event on a scheduled item, with the running
balance of each pocket, as a DEA-style record (21 CFR 1304: complete, with the actual date of
each event, per registered location, kept at least two years).

Unlike the other reports, which read current state, this one reads the transaction history, the
record itself: the balance before the period is the sum of the pocket's earlier movements, and
each event adds its signed change. Because a pocket's on-hand is the replay of its transactions
(the controller's invariant), the last balance of a period that ends now equals the on-hand.
Waste of a removal and the resolution of a discrepancy move nothing (change 0): they appear so
the record shows who accounted for what, with which witness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from adc.controller.audit import format_time
from adc.controller.cabinet_scope import Cabinets, cabinet_ids
from adc.controller.formulary import SCHEDULE_NAMES
from adc.controller.models import Discrepancy, Item, Pocket, StockLot, Transaction, User
from adc.errors import BadInput

if TYPE_CHECKING:
    from adc.controller.context import Controller


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{option} takes a date like 2026-03-01, got {text!r}") from None


def period(ctl: Controller, start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the site's time zone; default the last 30 days."""
    zone = ctl.policy.zone()
    end = end or ctl.today()
    start = start or end - timedelta(days=30)
    if start > end:
        raise BadInput(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    return (
        datetime.combine(start, time(), tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
    )


@dataclass(frozen=True)
class CsEvent:
    at: str
    record: int  # the transaction id
    cabinet: str
    pocket: str
    item: str
    ndc: str | None
    schedule: str
    kind: str
    lot: str | None
    expiry: str | None
    change: int  # signed change of the pocket's on-hand
    balance: int  # the pocket's balance of this item after the event
    units: int | None  # waste of a removal: units wasted; counts: units counted
    expected: int | None
    user: str
    witness: str | None
    reason: str | None
    related: int | None  # e.g. the removal a waste or return accounts for
    discrepancy: int | None  # a discrepancy this event opened

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_TXN_COLUMNS = (
    Transaction.id,
    Transaction.at,
    Transaction.kind,
    Transaction.cabinet_id,
    Transaction.pocket_id,
    Transaction.item_id,
    Transaction.qty,
    Transaction.counted,
    Transaction.expected,
    Transaction.reason,
    Transaction.related_id,
)


def cs_activity(
    ctl: Controller, start: datetime, end: datetime, cabinet: Cabinets = None
) -> list[CsEvent]:
    """Every controlled-substance event in [start, end), oldest first, with running balances (of
    every cabinet, one, or a list of them)."""
    user, witness = aliased(User), aliased(User)
    # the controlled items by id: both queries then range-scan the index on (item_id, at) for
    # those items only, not every transaction of the period (a fleet's month: 80,000)
    controlled = select(Item.id).where(Item.schedule.is_not(None))  # type: ignore[union-attr]
    scope = [Transaction.item_id.in_(controlled)]  # type: ignore[attr-defined]
    ids = cabinet_ids(cabinet)
    if ids is not None:  # by the cabinets' pockets: the index on (pocket_id, id), not a scan
        pockets = select(Pocket.id).where(Pocket.cabinet_id.in_(ids))  # type: ignore[attr-defined]
        scope.append(Transaction.pocket_id.in_(pockets))  # type: ignore[attr-defined]
    with ctl.read() as session:
        opening = {
            (pocket_id, item_id): int(total)
            for pocket_id, item_id, total in session.execute(
                select(Transaction.pocket_id, Transaction.item_id, func.sum(Transaction.qty))
                .where(*scope, Transaction.at < start)
                .group_by(Transaction.pocket_id, Transaction.item_id)
            ).all()
        }
        rows = (
            session.connection()
            .execute(  # Core rows: no ORM loading
                select(
                    *_TXN_COLUMNS,
                    Pocket.code,
                    Item.name,
                    Item.strength,
                    Item.form,
                    Item.ndc,
                    Item.schedule,
                    StockLot.lot,
                    StockLot.expiry,
                    user.username,
                    witness.username,
                )
                .join(Pocket, Pocket.id == Transaction.pocket_id)
                .join(Item, Item.id == Transaction.item_id)
                .join(user, user.id == Transaction.user_id)
                .outerjoin(witness, witness.id == Transaction.witness_id)
                .outerjoin(StockLot, StockLot.id == Transaction.lot_id)
                .where(*scope, Transaction.at >= start, Transaction.at < end)
                .order_by(Transaction.at, Transaction.id)
            )
            .all()
        )
        opened: dict[int, int] = {}
        if rows:  # the discrepancies of the same transactions (a join, not 17,000 parameters)
            for disc_id, txn_id, trigger in session.execute(
                select(Discrepancy.id, Discrepancy.transaction_id, Discrepancy.trigger)
                .join(Transaction, Transaction.id == Discrepancy.transaction_id)
                .where(*scope, Transaction.at >= start, Transaction.at < end)
                .order_by(Discrepancy.id)
            ).all():
                if txn_id not in opened or trigger != "sensor":
                    opened.setdefault(txn_id, disc_id)
    balance = dict(opening)
    out = []
    for txn in rows:  # Core rows (no ORM objects: a fleet's month is tens of thousands)
        key = (txn.pocket_id, txn.item_id)
        balance[key] = balance.get(key, 0) + txn.qty
        out.append(
            CsEvent(
                at=format_time(txn.at),
                record=txn.id or 0,
                cabinet=txn.cabinet_id,
                pocket=txn.code,
                item=f"{txn.name} {txn.strength} {txn.form}",
                ndc=txn.ndc,
                schedule=SCHEDULE_NAMES.get(txn.schedule or 0, str(txn.schedule)),
                kind=txn.kind,
                lot=txn.lot,
                expiry=txn.expiry.isoformat() if txn.expiry else None,
                change=txn.qty,
                balance=balance[key],
                units=txn.counted,
                expected=txn.expected,
                user=txn[-2],
                witness=txn[-1],
                reason=txn.reason,
                related=txn.related_id,
                discrepancy=opened.get(txn.id or 0),
            )
        )
    return out
