"""Waste: doses destroyed instead of given (a partly used cartridge, a dropped tablet), with a
witness for controlled substances.

Two cases, one record kind (`waste`):
- **of a removal** (`removal=` a remove transaction id): the usual case. The dose left the pocket
  when it was removed, so the pocket does not change; the waste record (zero units on the pocket,
  `counted` = units wasted, `related_id` = the removal) accounts for part of the removal. What a
  removal may still account for (`unaccounted`) is what was removed minus what was wasted or
  returned from it, so the same dose cannot be both returned and wasted.
- **from the pocket** (`pocket=`): a unit spoiled in the pocket (broken vial). It is an access to
  the pocket: the count due on access comes first (counts.require_access_count), the units come
  off first-expiry-first, and the record carries the change like a removal.

Only the person who removed a dose, or a pharmacist, may waste or return it. The witness is
checked inside the transaction (witness.py): a different, active pharmacist or nurse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlmodel import Session

from adc.controller import counts, inventory, study_rules
from adc.controller.models import Item, Pocket, Role, Transaction, TxnKind, User
from adc.controller.permissions import Action
from adc.controller.stock import block_of, find_pocket, item_label
from adc.controller.witness import check_witness
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller, Tx


@dataclass(frozen=True)
class Removal:
    """A removal (its transactions, one per lot) and how much of it is not yet accounted for."""

    txns: list[Transaction]
    removed: int
    wasted: int
    returned: int

    @property
    def id(self) -> int:
        return self.txns[0].id or 0

    @property
    def unaccounted(self) -> int:
        return self.removed - self.wasted - self.returned


def removal(session: Session, txn_id: int) -> Removal:
    """The removal that transaction `txn_id` belongs to (BadInput if it is not a removal)."""
    first = session.get(Transaction, txn_id)
    if first is None or first.kind != TxnKind.REMOVE:
        raise BadInput(f"transaction {txn_id} is not a removal")
    txns = list(
        session.execute(
            select(Transaction)
            .where(
                Transaction.audit_seq == first.audit_seq,
                Transaction.kind == TxnKind.REMOVE.value,
                Transaction.pocket_id == first.pocket_id,
            )
            .order_by(Transaction.id)
        ).scalars()
    )
    ids = [t.id for t in txns]
    wasted = session.execute(
        select(func.coalesce(func.sum(Transaction.counted), 0)).where(
            Transaction.kind == TxnKind.WASTE.value,
            Transaction.qty == 0,
            Transaction.related_id.in_(ids),  # type: ignore[union-attr]
        )
    ).scalar_one()
    returned = session.execute(
        select(func.coalesce(func.sum(Transaction.qty), 0)).where(
            Transaction.kind == TxnKind.RETURN.value,
            Transaction.related_id.in_(ids),  # type: ignore[union-attr]
        )
    ).scalar_one()
    return Removal(txns, -sum(t.qty for t in txns), int(wasted), int(returned))


def found_user_id(tx: Tx) -> int:
    assert tx.user is not None and tx.user.id is not None
    return tx.user.id


def check_owner(tx: Tx, found: Removal, what: str) -> None:
    """Only the person who removed a dose, or a pharmacist, accounts for it."""
    assert tx.user is not None
    remover = found.txns[0].user_id
    if remover != tx.user.id and tx.user.role != Role.PHARMACIST:
        user = tx.session.get(User, remover)
        name = user.username if user else str(remover)
        raise Refused(
            f"removal {found.id} was made by {name}: only they or a pharmacist may {what}"
        )


@dataclass(frozen=True)
class WasteRecord:
    txn_ids: list[int]
    pocket: str
    item: str
    qty: int
    reason: str
    witness: str | None
    removal: int | None
    on_hand: int
    audit_seq: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_qty(qty: int, reason: str) -> str:
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise BadInput(f"quantity to waste must be a whole number of at least 1, got {qty!r}")
    if not reason.strip():
        raise BadInput("say why it is wasted (--reason)")
    return reason.strip()


def waste(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    qty: int,
    reason: str,
    *,
    witness: Actor | None,
    removal_id: int | None = None,
    pocket: str | None = None,
) -> WasteRecord:
    """Record `qty` units wasted, of a removal or straight from a pocket (see the module docstring).

    A controlled item needs a witness; Refused (nothing recorded) without a valid one.
    """
    why = _check_qty(qty, reason)
    if (removal_id is None) == (pocket is None):
        raise BadInput("waste names either the removal it comes from or the pocket, not both")
    with ctl.write(actor, Action.WASTE, cabinet=cabinet) as tx:
        if removal_id is not None:
            found = removal(tx.session, removal_id)
            check_owner(tx, found, "waste from it")
            study_rules.refuse_cabinet_handling(tx.session, found.txns[0].item_id, "wasted")
            source = tx.session.get(Pocket, found.txns[0].pocket_id)
            assert source is not None
            if source.cabinet_id != cabinet:
                raise BadInput(f"removal {removal_id} was from cabinet {source.cabinet_id}")
            item = tx.session.get(Item, found.txns[0].item_id)
            assert item is not None
            if qty > found.unaccounted:
                raise Refused(
                    f"removal {found.id} has {found.unaccounted} unit(s) not yet wasted or "
                    f"returned, not {qty}"
                )
            witness_user = check_witness(
                tx,
                Action.WASTE,
                witness,
                required=item.schedule is not None,
                what="a controlled-substance waste",
            )
            txn = Transaction(
                at=tx.now,
                kind=TxnKind.WASTE,
                cabinet_id=source.cabinet_id,
                pocket_id=source.id or 0,
                item_id=item.id or 0,
                lot_id=found.txns[0].lot_id,
                qty=0,
                counted=qty,
                user_id=found_user_id(tx),
                witness_id=witness_user.id if witness_user else None,
                reason=why,
                related_id=found.id,
                audit_seq=tx.upcoming_seq(),
            )
            tx.session.add(txn)
            tx.session.flush()
            seq = tx.audit(
                "stock.waste",
                {
                    "cabinet": source.cabinet_id,
                    "pocket": source.code,
                    "item_id": item.id,
                    "kind": "waste",
                    "of_removal": found.id,
                    "units": qty,
                    "reason": why,
                    "txns": [{"id": txn.id, "lot_id": txn.lot_id, "qty": 0}],
                    "on_hand": source.on_hand,
                },
                witness=witness_user,
            )
            return WasteRecord(
                [txn.id or 0],
                source.code,
                item_label(item),
                qty,
                why,
                witness_user.username if witness_user else None,
                found.id,
                source.on_hand,
                seq,
            )
        assert pocket is not None
        target = find_pocket(tx.session, cabinet, pocket)
        if target.item_id is None:
            raise Refused(f"pocket {target.code} has no item assigned")
        study_rules.refuse_cabinet_handling(tx.session, target.item_id, "wasted")
        item = tx.session.get(Item, target.item_id)
        assert item is not None
        counts.require_access_count(tx, target, f"waste {qty} from it")
        block = block_of(tx.session, target, ctl.today())
        if block is not None:
            raise Refused(
                f"{block.reason}: pull it (expired or recalled stock is pulled, not wasted)"
            )
        if qty > target.on_hand:
            raise Refused(f"pocket {target.code} holds {target.on_hand}, cannot waste {qty}")
        witness_user = check_witness(
            tx,
            Action.WASTE,
            witness,
            required=item.schedule is not None,
            what="a controlled-substance waste",
        )
        txns = inventory._take_fefo(
            tx,
            target,
            qty,
            TxnKind.WASTE,
            reason=why,
            counted=qty,
            witness_id=witness_user.id if witness_user else None,
        )
        movement = inventory._finish(
            tx,
            target,
            TxnKind.WASTE,
            txns,
            {"units": qty, "reason": why, "from_pocket": True},
            witness=witness_user,
        )
        return WasteRecord(
            movement.txn_ids,
            target.code,
            item_label(item),
            qty,
            why,
            witness_user.username if witness_user else None,
            None,
            target.on_hand,
            movement.audit_seq,
        )
