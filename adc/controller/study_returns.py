"""Units of a study removal that the subject did not take go back to the pharmacy, with a reason.

Never back into the pocket (nor into the cabinet's return bin: `study_rules.refuse_cabinet_handling`
refuses that): the pharmacy keeps them apart for the sponsor. The pocket's on-hand does not
change; the accountability record shows the return against the removal's lot and subject.
Only users authorized for the protocol return its units; the person who removed them or a
pharmacist accounts for a removal, as for any return (`waste.check_owner`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select

from adc.controller.context import Actor, Controller
from adc.controller.models import Item, StockLot
from adc.controller.permissions import Action
from adc.controller.stock import item_label
from adc.controller.study_rules import StudyRefused, audit_refusals, authorized, protocol_of_item
from adc.controller.study_tables import StudyDispense, StudyReturn
from adc.controller.waste import check_owner, removal
from adc.errors import BadInput, Refused


@dataclass(frozen=True)
class StudyReturnRecord:
    protocol: str
    removal: int
    item: str
    qty: int
    reason: str
    return_ids: list[int]
    audit_seq: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@audit_refusals
def return_to_pharmacy(
    ctl: Controller, actor: Actor, removal_id: int, qty: int, reason: str
) -> StudyReturnRecord:
    """Record `qty` units of study removal `removal_id` returned to the pharmacy, with `reason`."""
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise BadInput(f"quantity to return must be a whole number of at least 1, got {qty!r}")
    why = reason.strip()
    if not why:
        raise BadInput("say why the units come back (--reason), e.g. 'dose held: subject nauseous'")
    with ctl.write(actor, Action.RETURN) as tx:
        session = tx.session
        found = removal(session, removal_id)
        first = found.txns[0]
        protocol = protocol_of_item(session, first.item_id)
        if protocol is None:
            raise Refused(
                f"removal {found.id} is not investigational stock: return it to the cabinet's "
                "return bin (adc return)"
            )
        assert tx.user is not None
        if not authorized(session, protocol, tx.user.id or 0):
            raise StudyRefused(
                f"user {tx.user.username} is not authorized for protocol {protocol}: only its "
                "authorized users may return its stock",
                protocol=protocol,
                doing="return",
                user_id=tx.user.id,
            )
        check_owner(tx, found, "return from it")
        ids = [t.id for t in found.txns]
        per_txn = dict(
            session.execute(
                select(StudyReturn.removal_txn_id, func.sum(StudyReturn.qty))
                .where(StudyReturn.removal_txn_id.in_(ids))  # type: ignore[attr-defined]
                .group_by(StudyReturn.removal_txn_id)
            ).all()
        )
        left_over = found.removed - sum(per_txn.values())
        if qty > left_over:
            raise Refused(f"removal {found.id} has {left_over} unit(s) not yet returned, not {qty}")
        subject = session.get(StudyDispense, found.id)
        left, rows = qty, []
        for source in found.txns:
            take = min(-source.qty - per_txn.get(source.id, 0), left)
            if take <= 0:
                continue
            left -= take
            row = StudyReturn(
                protocol=protocol,
                removal_txn_id=source.id or 0,
                lot_id=source.lot_id or 0,
                qty=take,
                reason=why,
                user_id=tx.user.id or 0,
                at=tx.now,
                audit_seq=tx.upcoming_seq(),
            )
            session.add(row)
            rows.append(row)
            if left == 0:
                break
        session.flush()
        lots = {r.lot_id: session.get(StockLot, r.lot_id) for r in rows}
        seq = tx.audit(
            "study.return",
            {
                "protocol": protocol,
                "of_removal": found.id,
                "subject": subject.subject if subject else None,
                "units": qty,
                "reason": why,
                "lots": [
                    {"lot": lots[r.lot_id].lot if lots[r.lot_id] else None, "qty": r.qty}
                    for r in rows
                ],
            },
        )
        item = session.get(Item, first.item_id)
        return StudyReturnRecord(
            protocol,
            found.id,
            item_label(item),
            qty,
            why,
            [r.id or 0 for r in rows],
            seq,
        )
