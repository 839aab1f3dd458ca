"""The accountability record of a study (DARF style): every receipt, dispense and return, per lot.

One row per movement of the protocol's stock, in the order the changes were made (their audit
sequence): receipts (restock: load, refill), dispenses (removals, with the subject's study id and
the dose), returns to the pharmacy (units a subject did not take: shown, but the pocket's balance
does not change, they never went back into it), and every other change of on-hand (count
corrections, unloads, pulls of expired or recalled lots), so that the running balance of each lot
is the lot's on-hand at every row and, at the end, equals what the pockets hold (`lots[].on_hand`,
`reconciled`).

Who may see it: pharmacists and the users authorized for the protocol; anyone else is refused
(audited). Every view is audited (`study.accountability.view`: who, protocol, lot, format, rows),
and the record is read in the same transaction as its audit entry, so what was seen is what the
audit says was seen. This is the only report that shows subject ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from adc.controller.context import Actor, Controller
from adc.controller.lots import lot_key
from adc.controller.models import Item, Pocket, Role, StockLot, Transaction, TxnKind, User
from adc.controller.stock import item_label
from adc.controller.study_rules import StudyRefused, audit_refusals
from adc.controller.study_tables import StudyDispense, StudyItem, StudyReturn, StudyUser
from adc.errors import Refused

KIND = {
    TxnKind.LOAD.value: "receipt",
    TxnKind.REFILL.value: "receipt",
    TxnKind.REMOVE.value: "dispense",
    TxnKind.COUNT.value: "count correction",
    TxnKind.UNLOAD.value: "unload to pharmacy",
    TxnKind.PULL.value: "pull (expired or recalled)",
    TxnKind.ADJUST.value: "adjustment",
    TxnKind.WASTE.value: "waste",
    TxnKind.RETURN.value: "return bin",
}
RETURN = "return to pharmacy"


@dataclass
class Row:
    at: str
    kind: str
    cabinet: str
    pocket: str
    item: str
    gtin: str
    lot: str
    expiry: str
    qty_in: int
    qty_out: int
    qty_returned: int
    balance: int  # the lot's balance after this row (all pockets of the study)
    subject: str | None
    dose: str | None
    recorder: str
    reason: str | None
    record: str  # T<transaction id>, or R<study return id>

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LotBalance:
    item: str
    lot: str
    expiry: str
    balance: int  # by the record
    on_hand: int  # what the pockets' lots hold now
    pockets: dict[str, int] = field(default_factory=dict)  # cabinet/pocket → held

    @property
    def reconciled(self) -> bool:
        return self.balance == self.on_hand

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "reconciled": self.reconciled}


@dataclass
class Accountability:
    protocol: str
    lot: str | None
    rows: list[Row]
    lots: list[LotBalance]
    audit_seq: int = 0

    @property
    def reconciled(self) -> bool:
        return all(b.reconciled for b in self.lots)

    def as_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "lot": self.lot,
            "reconciled": self.reconciled,
            "lots": [b.as_json() for b in self.lots],
            "rows": [r.as_json() for r in self.rows],
            "audit_seq": self.audit_seq,
        }


Key = tuple[int, str]  # (item id, lot key): a lot of one item, whatever pocket or expiry row


def _may_view(session: Any, user: User, protocol: str) -> bool:
    if user.role == Role.PHARMACIST:
        return True
    return session.get(StudyUser, (protocol, user.id)) is not None


@audit_refusals
def accountability(
    ctl: Controller,
    actor: Actor,
    protocol: str,
    *,
    lot: str | None = None,
    output: str = "table",
) -> Accountability:
    """The record of `protocol` (one lot with `lot`), audited as viewed by `actor`."""
    from adc.controller.studies import get_study

    with ctl.write(None, None) as tx:
        session = tx.session
        user = session.get(User, actor.user_id)
        if user is None or not user.active or user.locked:
            raise Refused(f"user {actor.username} may not view records now")
        tx.user = user
        study = get_study(session, protocol)
        if not _may_view(session, user, study.protocol):
            raise StudyRefused(
                f"user {user.username} ({user.role}) may not view the accountability record of "
                f"protocol {study.protocol}: pharmacists and its authorized users only",
                protocol=study.protocol,
                doing="view",
                user_id=user.id,
            )
        record = _read(session, study.protocol, lot)
        record.audit_seq = tx.audit(
            "study.accountability.view",
            {
                "protocol": study.protocol,
                "lot": lot,
                "output": output,
                "rows": len(record.rows),
                "reconciled": record.reconciled,
            },
        )
        return record


def _read(session: Any, protocol: str, only_lot: str | None) -> Accountability:
    items = {
        item.id: item
        for item in session.execute(
            select(Item)
            .join(StudyItem, StudyItem.item_id == Item.id)
            .where(StudyItem.protocol == protocol)
        ).scalars()
    }
    names = dict(session.execute(select(User.id, User.username)).all())
    pockets = {
        p.id: p
        for p in session.execute(
            select(Pocket).where(
                Pocket.item_id.in_(list(items))
                | Pocket.id.in_(  # type: ignore[union-attr]
                    select(StockLot.pocket_id).where(StockLot.item_id.in_(items))  # type: ignore[attr-defined]
                )
            )
        ).scalars()
    }
    lots = {
        s.id: s
        for s in session.execute(
            select(StockLot).where(StockLot.item_id.in_(items))  # type: ignore[attr-defined]
        ).scalars()
    }
    wanted = lot_key(only_lot) if only_lot else None
    events: list[tuple[int, int, Any]] = []
    txns = session.execute(
        select(Transaction, StudyDispense)
        .outerjoin(StudyDispense, StudyDispense.txn_id == Transaction.id)
        .where(
            Transaction.item_id.in_(items),  # type: ignore[attr-defined]
            Transaction.lot_id.is_not(None),  # type: ignore[union-attr]
            Transaction.qty != 0,
        )
    ).all()
    for txn, dispense in txns:
        events.append((txn.audit_seq, 0, (txn, dispense)))
    returns = session.execute(
        select(StudyReturn, StudyDispense)
        .outerjoin(StudyDispense, StudyDispense.txn_id == StudyReturn.removal_txn_id)
        .where(StudyReturn.protocol == protocol)
    ).all()
    for back, dispense in returns:
        events.append((back.audit_seq, 1, (back, dispense)))
    events.sort(key=lambda e: (e[0], e[1], (e[2][0].id or 0)))
    balance: dict[Key, int] = {}
    first_seen: dict[Key, StockLot] = {}
    rows: list[Row] = []
    for _seq, which, (record, dispense) in events:
        stock = lots[record.lot_id]
        key = (stock.item_id, lot_key(stock.lot))
        first_seen.setdefault(key, stock)
        if which == 0:
            balance[key] = balance.get(key, 0) + record.qty
            pocket = pockets[record.pocket_id]
            kind = KIND.get(record.kind, record.kind)
            qty_in, qty_out, returned = max(record.qty, 0), max(-record.qty, 0), 0
            cabinet, code, ident, reason = (
                pocket.cabinet_id,
                pocket.code,
                f"T{record.id}",
                (record.reason),
            )
        else:
            removal = session.get(Transaction, record.removal_txn_id)
            pocket = pockets.get(removal.pocket_id) if removal else None
            kind, qty_in, qty_out, returned = RETURN, 0, 0, record.qty
            cabinet = pocket.cabinet_id if pocket else ""
            code = pocket.code if pocket else ""
            ident, reason = (
                f"R{record.id}",
                f"{record.reason} (of removal T{record.removal_txn_id})",
            )
        if wanted is not None and key[1] != wanted:
            continue
        rows.append(
            Row(
                at=record.at.isoformat(timespec="seconds"),
                kind=kind,
                cabinet=cabinet,
                pocket=code,
                item=item_label(items[stock.item_id]),
                gtin=stock.gtin,
                lot=stock.lot,
                expiry=stock.expiry.isoformat(),
                qty_in=qty_in,
                qty_out=qty_out,
                qty_returned=returned,
                balance=balance[key],
                subject=dispense.subject if dispense else None,
                dose=dispense.dose if dispense and which == 0 else None,
                recorder=names.get(record.user_id, str(record.user_id)),
                reason=reason,
                record=ident,
            )
        )
    held: dict[Key, dict[str, int]] = {}
    for stock in lots.values():
        key = (stock.item_id, lot_key(stock.lot))
        first_seen.setdefault(key, stock)
        if stock.qty:
            pocket = pockets[stock.pocket_id]
            where = f"{pocket.cabinet_id}/{pocket.code}"
            held.setdefault(key, {})
            held[key][where] = held[key].get(where, 0) + stock.qty
    summary = []
    for key in sorted(set(balance) | set(held), key=lambda k: (k[0], k[1])):
        if wanted is not None and key[1] != wanted:
            continue
        stock = first_seen[key]
        in_pockets = held.get(key, {})
        summary.append(
            LotBalance(
                item=item_label(items[key[0]]),
                lot=stock.lot,
                expiry=stock.expiry.isoformat(),
                balance=balance.get(key, 0),
                on_hand=sum(in_pockets.values()),
                pockets=in_pockets,
            )
        )
    return Accountability(protocol, only_lot, rows, summary)
