"""Returns go to the cabinet's return bin, never back into the pocket they came from (ISMP): a
returned dose may have been tampered with, mixed up or mislabelled, and only a pharmacist
checking it can put it back into stock.

- `return_units`: units of a removal (not yet wasted or returned) go into the return bin, the
  pocket of kind `return-bin` the cabinet's profile declares. The bin keeps lots like any pocket
  (the lots the removal took), so the bin's on-hand = sum of its lots = replay of its records,
  and a returned controlled dose stays traceable to its lot and its removal (`related_id`).
- `clear_return_bin`: a pharmacist empties the bin. The bin is counted blind, item by item: the
  pharmacist is shown which items are on record (`return_bin_items`), not how many, and enters
  what they took out of each. Every lot goes to zero (an `unload` record with reason
  `return-bin clear-out`), and an item whose count differs opens a discrepancy on the bin.

A return bin is a one-way drop (a flap): putting a dose in does not expose what is inside, so a
return needs no count on access; the count happens at the clear-out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import Session

from adc.controller import study_rules
from adc.controller.cabinet_policy import cabinet_policy
from adc.controller.cabinets import get_cabinet
from adc.controller.models import Discrepancy, Item, Pocket, StockLot, Transaction, TxnKind
from adc.controller.permissions import Action
from adc.controller.stock import is_held, item_label, lot_on_record
from adc.controller.waste import check_owner, removal
from adc.controller.witness import check_witness
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller, Tx

CLEAR_OUT = "return-bin clear-out"


def return_bin(session: Session, cabinet: str) -> Pocket:
    get_cabinet(session, cabinet)
    bin_ = session.execute(
        select(Pocket)
        .where(Pocket.cabinet_id == cabinet, Pocket.kind == "return-bin")
        .order_by(Pocket.position)
        .limit(1)
    ).scalar()
    if bin_ is None:
        raise Refused(
            f"cabinet {cabinet} has no return bin (its profile declares no return-bin pocket): "
            "take the dose back to the pharmacy"
        )
    return bin_


@dataclass(frozen=True)
class ReturnRecord:
    txn_ids: list[int]
    bin: str
    item: str
    qty: int
    removal: int
    witness: str | None
    bin_on_hand: int
    audit_seq: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def return_units(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    removal_id: int,
    qty: int,
    *,
    witness: Actor | None = None,
) -> ReturnRecord:
    """Put `qty` units of removal `removal_id` into `cabinet`'s return bin."""
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise BadInput(f"quantity to return must be a whole number of at least 1, got {qty!r}")
    with ctl.write(actor, Action.RETURN, cabinet=cabinet) as tx:
        found = removal(tx.session, removal_id)
        check_owner(tx, found, "return from it")
        study_rules.refuse_cabinet_handling(
            tx.session, found.txns[0].item_id, "put in the return bin"
        )
        bin_ = return_bin(tx.session, cabinet)
        if qty > found.unaccounted:
            raise Refused(
                f"removal {found.id} has {found.unaccounted} unit(s) not yet wasted or "
                f"returned, not {qty}"
            )
        item = tx.session.get(Item, found.txns[0].item_id)
        assert item is not None and tx.user is not None
        witness_user = check_witness(tx, Action.RETURN, witness, required=False, what="a return")
        left, txns = qty, []
        for source in found.txns:
            if left == 0:
                break
            already = sum(
                t.qty
                for t in tx.session.execute(
                    select(Transaction).where(
                        Transaction.kind == TxnKind.RETURN.value,
                        Transaction.related_id == source.id,
                    )
                ).scalars()
            )
            take = min(-source.qty - already, left)
            if take <= 0:
                continue
            left -= take
            lot = _bin_lot(tx, bin_, source)
            lot.qty += take
            bin_.on_hand += take
            txn = Transaction(
                at=tx.now,
                kind=TxnKind.RETURN,
                cabinet_id=cabinet,
                pocket_id=bin_.id or 0,
                item_id=item.id or 0,
                lot_id=lot.id,
                qty=take,
                user_id=tx.user.id or 0,
                witness_id=witness_user.id if witness_user else None,
                related_id=source.id,
                audit_seq=tx.upcoming_seq(),
            )
            tx.session.add(txn)
            txns.append(txn)
        if left:
            raise RuntimeError(f"removal {found.id}: lots returned exceed lots removed")
        tx.session.flush()
        seq = tx.audit(
            "stock.return",
            {
                "cabinet": cabinet,
                "pocket": bin_.code,
                "item_id": item.id,
                "kind": "return",
                "of_removal": found.id,
                "units": qty,
                "on_hand": bin_.on_hand,
                "txns": [{"id": t.id, "lot_id": t.lot_id, "qty": t.qty} for t in txns],
            },
            witness=witness_user,
        )
        return ReturnRecord(
            [t.id or 0 for t in txns],
            bin_.code,
            item_label(item),
            qty,
            found.id,
            witness_user.username if witness_user else None,
            bin_.on_hand,
            seq,
        )


def _bin_lot(tx: Tx, bin_: Pocket, source: Transaction) -> StockLot:
    """The bin's lot matching the lot a removal took from (created at zero if new)."""
    origin = tx.session.get(StockLot, source.lot_id) if source.lot_id else None
    if origin is None:
        raise RuntimeError(f"removal transaction {source.id} names no lot")
    lot, _created = lot_on_record(
        tx.session, bin_.id or 0, origin.item_id, origin.gtin, origin.lot, origin.expiry, tx.now
    )
    return lot


# ----------------------------------------------------------------------------------- clear-out
@dataclass(frozen=True)
class BinItem:
    """An item on record in the return bin, as shown before the blind clear-out count."""

    item_id: int
    item: str
    controlled: bool


def _held(session: Session, bin_: Pocket) -> dict[int, list[StockLot]]:
    lots = session.execute(
        select(StockLot)
        .where(StockLot.pocket_id == bin_.id, is_held())
        .order_by(StockLot.item_id, StockLot.expiry, StockLot.id)
    ).scalars()
    out: dict[int, list[StockLot]] = {}
    for lot in lots:
        out.setdefault(lot.item_id, []).append(lot)
    return out


def return_bin_items(ctl: Controller, cabinet: str) -> list[BinItem]:
    with ctl.read() as session:
        bin_ = return_bin(session, cabinet)
        out = []
        for item_id in _held(session, bin_):
            item = session.get(Item, item_id)
            assert item is not None
            out.append(BinItem(item_id, item_label(item), item.schedule is not None))
        return out


@dataclass
class ClearOut:
    session: str
    bin: str
    counted: dict[int, int]
    expected_total: int
    txn_ids: list[int] = field(default_factory=list)
    discrepancy_ids: list[int] = field(default_factory=list)
    audit_seq: int = 0

    def as_json(self) -> dict[str, Any]:
        # expected per item is not shown (the count is blind); discrepancies say where it differed
        return {
            "session": self.session,
            "bin": self.bin,
            "counted": {str(k): v for k, v in self.counted.items()},
            "txn_ids": self.txn_ids,
            "discrepancy_ids": self.discrepancy_ids,
            "audit_seq": self.audit_seq,
        }


def clear_return_bin(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    counted: dict[int, int],
    *,
    witness: Actor | None = None,
) -> ClearOut:
    """Empty the return bin: `counted` is item id → units the pharmacist took out, one entry for
    every item on record (BadInput otherwise). Differences open discrepancies on the bin."""
    for item_id, n in counted.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise BadInput(f"count for item {item_id} must be a whole number ≥ 0, got {n!r}")
    with ctl.write(actor, Action.RETURN_BIN_CLEAR, cabinet=cabinet) as tx:
        bin_ = return_bin(tx.session, cabinet)
        held = _held(tx.session, bin_)
        if not held:
            raise Refused(f"return bin {bin_.code} of cabinet {cabinet} holds nothing on record")
        missing = sorted(set(held) - set(counted))
        unknown = sorted(set(counted) - set(held))
        if unknown:
            raise BadInput(
                f"item(s) {', '.join(map(str, unknown))} are not on record in the return bin"
            )
        if missing:
            raise BadInput(
                "count every item on record in the return bin; missing item(s) "
                + ", ".join(map(str, missing))
            )
        witness_user = check_witness(
            tx, Action.RETURN_BIN_CLEAR, witness, required=False, what="a return-bin clear-out"
        )
        assert tx.user is not None
        session_id = f"clear-out:{ctl.new_id()[:12]}"
        expected_by = {i: sum(lot.qty for lot in lots) for i, lots in held.items()}
        result = ClearOut(session_id, bin_.code, dict(counted), sum(expected_by.values()))
        deadline_policy = cabinet_policy(tx.session, cabinet)
        for item_id, lots in held.items():
            expected = expected_by[item_id]
            first: Transaction | None = None
            for lot in lots:
                taken, lot.qty = lot.qty, 0
                bin_.on_hand -= taken
                txn = Transaction(
                    at=tx.now,
                    kind=TxnKind.UNLOAD,
                    cabinet_id=cabinet,
                    pocket_id=bin_.id or 0,
                    item_id=item_id,
                    lot_id=lot.id,
                    qty=-taken,
                    expected=expected,
                    counted=counted[item_id],
                    user_id=tx.user.id or 0,
                    witness_id=witness_user.id if witness_user else None,
                    reason=CLEAR_OUT,
                    session_id=session_id,
                    audit_seq=tx.upcoming_seq(),
                )
                tx.session.add(txn)
                tx.session.flush()
                first = first or txn
                result.txn_ids.append(txn.id or 0)
            if counted[item_id] != expected:
                item = tx.session.get(Item, item_id)
                deadline = None
                if item is not None and item.schedule is not None:
                    deadline = deadline_policy.deadline(tx.now, ctl.policy)
                disc = Discrepancy(
                    cabinet_id=cabinet,
                    pocket_id=bin_.id or 0,
                    item_id=item_id,
                    transaction_id=first.id if first else None,
                    trigger="clear-out",
                    expected=expected,
                    counted=counted[item_id],
                    opened_by=tx.user.id or 0,
                    opened_at=tx.now,
                    deadline=deadline,
                )
                tx.session.add(disc)
                tx.session.flush()
                result.discrepancy_ids.append(disc.id or 0)
        result.audit_seq = tx.audit(
            "stock.clear_out",
            {
                "cabinet": cabinet,
                "pocket": bin_.code,
                "kind": "clear-out",
                "session": session_id,
                "items": {
                    str(i): {"expected": n, "counted": counted[i]} for i, n in expected_by.items()
                },
                "txns": result.txn_ids,
                "discrepancies": result.discrepancy_ids,
                "on_hand": bin_.on_hand,
            },
            witness=witness_user,
        )
        return result
