"""The discrepancy lifecycle: listed (overdue first), resolved with a reason and a witness, and
escalated to pharmacists when overdue or unresolvable.

A discrepancy is opened by the count that found it (counts.py, inventory.py). Closing it:
- `resolve` takes a reason from a fixed list (`Reason`), a note saying what was found, and a
  witness (a different, active pharmacist or nurse who authenticated: witness.py). Resolution
  never edits the original records: the count, its transaction and the discrepancy's evidence
  (expected, counted, who, when) stay as they were. It adds its own record, an `adjust`
  transaction of zero units carrying the reason, note and witness (so it also appears in the
  controlled-substance activity record), sets the discrepancy's lifecycle fields once (status,
  reason, resolver, witness, time), and appends its audit entry, in one transaction. Stock is not
  moved: the count that opened the discrepancy already made on-hand follow what was there.
- `unresolvable` closes it as *escalated*: the cabinet is done with it, the pharmacy is not.
- An open controlled-substance discrepancy past its deadline (set by the cabinet's policy when it
  opened) is *overdue*: `escalate_overdue` records the escalation (by the system, audited, once per
  discrepancy) and delivers a notification to pharmacists through the same sink as shortage
  notifications (`policy.shortage_sink`), at least once. Lists and reports put overdue ones first.

Nothing here deletes anything; see docs/controller.md for the retention policy.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from adc.controller.audit import format_time
from adc.controller.cabinet_scope import Cabinets, scoped
from adc.controller.formulary import SCHEDULE_NAMES
from adc.controller.models import (
    AuditEntry,
    Discrepancy,
    DiscrepancyStatus,
    Item,
    Pocket,
    Transaction,
    TxnKind,
    User,
)
from adc.controller.permissions import Action
from adc.controller.witness import check_witness
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from sqlmodel import Session

    from adc.controller.context import Actor, Controller


class Reason(StrEnum):
    MISCOUNT = "miscount"
    DOCUMENTED_ELSEWHERE = "documented-elsewhere"
    WRONG_POCKET = "wrong-pocket"
    RESTOCK_ERROR = "restock-error"
    UNRESOLVABLE = "unresolvable"  # → escalated


REASONS: dict[Reason, str] = {
    Reason.MISCOUNT: "the count was wrong, the stock was right (or the other way round)",
    Reason.DOCUMENTED_ELSEWHERE: "the movement is documented elsewhere (paper record, chart)",
    Reason.WRONG_POCKET: "stock was taken from or put into a neighbouring pocket",
    Reason.RESTOCK_ERROR: "the refill was recorded with a wrong quantity",
    Reason.UNRESOLVABLE: "no explanation found: escalated to pharmacy",
}

ESCALATE = "discrepancy.escalate"
NOTIFIED = "discrepancy.notified"


def parse_reason(text: str | Reason) -> Reason:
    key = str(text).strip().lower().replace("_", "-").replace(" ", "-")
    try:
        return Reason(key)
    except ValueError:
        raise BadInput(
            f"unknown reason {str(text)!r}; one of {', '.join(r.value for r in Reason)}"
        ) from None


def _split_reason(reason: str | Reason, note: str) -> tuple[Reason, str]:
    """`miscount: what was found` is accepted as reason and note (the scenario runner's form)."""
    text = str(reason)
    if not note and ":" in text and not isinstance(reason, Reason):
        code, _, rest = text.partition(":")
        return parse_reason(code), rest.strip()
    return parse_reason(reason), note.strip()


# ------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class DiscrepancyRow:
    id: int
    status: str
    overdue: bool  # open past its deadline (escalated to pharmacists)
    escalated: bool  # overdue and notified, or closed as unresolvable
    cabinet: str
    pocket: str
    item: str
    schedule: str | None
    trigger: str
    expected: int
    counted: int
    difference: int  # counted - expected
    opened_by: str
    opened_at: str
    deadline: str | None
    transaction_id: int | None
    reason: str | None
    note: str | None
    resolved_by: str | None
    resolved_at: str | None
    witness: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _audited_ids(session: Session, action: str) -> set[int]:
    ids: set[int] = set()
    for payload in session.execute(
        select(AuditEntry.payload).where(AuditEntry.action == action)
    ).scalars():
        ids.update(json.loads(payload).get("ids", []))
    return ids


def _notes(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    keys = [f"discrepancy:{i}" for i in ids]
    rows = session.execute(
        select(Transaction.session_id, Transaction.reason).where(
            Transaction.kind == TxnKind.ADJUST.value,
            Transaction.session_id.in_(keys),  # type: ignore[union-attr]
        )
    ).all()
    out = {}
    for key, reason in rows:
        _, _, note = (reason or "").partition(": ")
        out[int(key.removeprefix("discrepancy:"))] = note
    return out


def list_discrepancies(
    ctl: Controller,
    *,
    open_only: bool = False,
    overdue_only: bool = False,
    cabinet: Cabinets = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DiscrepancyRow]:
    """Overdue first (earliest deadline first), then the other open ones (oldest first), then the
    closed ones (newest first)."""
    now = ctl.now()
    opener, resolver, witness = aliased(User), aliased(User), aliased(User)
    query = (
        select(Discrepancy, Pocket.code, Item, opener.username, resolver.username, witness.username)
        .join(Pocket, Pocket.id == Discrepancy.pocket_id)
        .join(Item, Item.id == Discrepancy.item_id)
        .join(opener, opener.id == Discrepancy.opened_by)
        .outerjoin(resolver, resolver.id == Discrepancy.resolved_by)
        .outerjoin(witness, witness.id == Discrepancy.witness_id)
    )
    if open_only or overdue_only:
        query = query.where(Discrepancy.status == DiscrepancyStatus.OPEN.value)
    if overdue_only:
        query = query.where(Discrepancy.deadline < now)  # type: ignore[operator]
    query = scoped(query, Discrepancy.cabinet_id, cabinet)
    if since is not None:
        query = query.where(Discrepancy.opened_at >= since)
    if until is not None:
        query = query.where(Discrepancy.opened_at < until)
    with ctl.read() as session:
        rows = session.execute(query.order_by(Discrepancy.id)).all()
        notified = _audited_ids(session, ESCALATE)
        notes = _notes(session, [d.id for d, *_ in rows if d.status != DiscrepancyStatus.OPEN])
    out = []
    for disc, code, item, opened_by, resolved_by, witnessed_by in rows:
        overdue = (
            disc.status == DiscrepancyStatus.OPEN
            and disc.deadline is not None
            and disc.deadline < now
        )
        out.append(
            DiscrepancyRow(
                id=disc.id or 0,
                status=disc.status,
                overdue=overdue,
                escalated=disc.status == DiscrepancyStatus.ESCALATED
                or (overdue and disc.id in notified),
                cabinet=disc.cabinet_id,
                pocket=code,
                item=f"{item.name} {item.strength} {item.form}",
                schedule=SCHEDULE_NAMES.get(item.schedule) if item.schedule else None,
                trigger=disc.trigger,
                expected=disc.expected,
                counted=disc.counted,
                difference=disc.counted - disc.expected,
                opened_by=opened_by,
                opened_at=format_time(disc.opened_at),
                deadline=format_time(disc.deadline) if disc.deadline else None,
                transaction_id=disc.transaction_id,
                reason=disc.reason,
                note=notes.get(disc.id or 0),
                resolved_by=resolved_by,
                resolved_at=format_time(disc.resolved_at) if disc.resolved_at else None,
                witness=witnessed_by,
            )
        )

    def order(row: DiscrepancyRow) -> tuple[Any, ...]:
        if row.overdue:
            return (0, row.deadline or "", row.id)
        if row.status == DiscrepancyStatus.OPEN:
            return (1, row.opened_at, row.id)
        return (2, "", -row.id)

    return sorted(out, key=order)


def get_discrepancy(ctl: Controller, discrepancy_id: int) -> DiscrepancyRow:
    for row in list_discrepancies(ctl):
        if row.id == discrepancy_id:
            return row
    raise BadInput(f"no discrepancy {discrepancy_id}")


# ----------------------------------------------------------------------------------- resolving
@dataclass(frozen=True)
class Resolution:
    discrepancy_id: int
    status: str
    reason: str
    note: str
    witness: str
    late: bool  # resolved after its deadline
    txn_id: int
    audit_seq: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve(
    ctl: Controller,
    actor: Actor,
    discrepancy_id: int,
    reason: str | Reason,
    note: str = "",
    *,
    witness: Actor | None,
) -> Resolution:
    """Close an open discrepancy with a reason, a note and a witness; see the module docstring.

    Refused: unknown id (BadInput), not open any more, no witness, the actor as witness, a witness
    disabled, locked out or of a role that may not witness. Nothing is changed by a refusal.
    """
    code, text = _split_reason(reason, note)
    if not text:
        raise BadInput("a resolution needs a note saying what was found")
    with ctl.write(actor, Action.DISCREPANCY_RESOLVE) as tx:
        disc = tx.session.get(Discrepancy, discrepancy_id)
        if disc is None:
            raise BadInput(f"no discrepancy {discrepancy_id}")
        if disc.status != DiscrepancyStatus.OPEN:
            who = tx.session.get(User, disc.resolved_by) if disc.resolved_by else None
            when = format_time(disc.resolved_at) if disc.resolved_at else "?"
            raise Refused(
                f"discrepancy {discrepancy_id} is {disc.status} already"
                + (f" (by {who.username} at {when})" if who else "")
            )
        witness_user = check_witness(
            tx, Action.DISCREPANCY_RESOLVE, witness, required=True, what="a discrepancy resolution"
        )
        assert witness_user is not None and tx.user is not None
        status = (
            DiscrepancyStatus.ESCALATED
            if code is Reason.UNRESOLVABLE
            else DiscrepancyStatus.RESOLVED
        )
        late = disc.deadline is not None and tx.now > disc.deadline
        txn = Transaction(
            at=tx.now,
            kind=TxnKind.ADJUST,
            cabinet_id=disc.cabinet_id,
            pocket_id=disc.pocket_id,
            item_id=disc.item_id,
            qty=0,
            expected=disc.expected,
            counted=disc.counted,
            user_id=tx.user.id or 0,
            witness_id=witness_user.id,
            reason=f"{code.value}: {text}",
            session_id=f"discrepancy:{discrepancy_id}",
            related_id=disc.transaction_id,
            audit_seq=tx.upcoming_seq(),
        )
        tx.session.add(txn)
        disc.status = status
        disc.reason = code.value
        disc.resolved_by = tx.user.id
        disc.resolved_at = tx.now
        disc.witness_id = witness_user.id
        tx.session.flush()
        seq = tx.audit(
            "discrepancy.resolve",
            {
                "id": discrepancy_id,
                "cabinet": disc.cabinet_id,
                "pocket_id": disc.pocket_id,
                "reason": code.value,
                "note": text,
                "status": status.value,
                "late": late,
                "txn": txn.id,
            },
            witness=witness_user,
        )
        if status is DiscrepancyStatus.ESCALATED:
            tx.audit(ESCALATE, {"ids": [discrepancy_id], "why": "unresolvable"})
        result = Resolution(
            discrepancy_id,
            status.value,
            code.value,
            text,
            witness_user.username,
            late,
            txn.id or 0,
            seq,
        )
    if status is DiscrepancyStatus.ESCALATED:
        deliver_escalations(ctl)
    return result


# ---------------------------------------------------------------------------------- escalation
def escalate_overdue(ctl: Controller) -> list[int]:
    """Escalate every open discrepancy past its deadline not escalated before (recorded by the
    system, audited), then deliver pending notifications. Returns the ids newly escalated."""
    now = ctl.now()
    with ctl.read() as session:
        overdue = list(
            session.execute(
                select(Discrepancy.id).where(
                    Discrepancy.status == DiscrepancyStatus.OPEN.value,
                    Discrepancy.deadline < now,  # type: ignore[operator]
                )
            ).scalars()
        )
        done = _audited_ids(session, ESCALATE)
    new = [i for i in overdue if i not in done]
    if new:
        with ctl.write(None, None) as tx:
            done = _audited_ids(tx.session, ESCALATE)  # again, under the writer lock
            new = [
                i
                for i in new
                if i not in done
                and (d := tx.session.get(Discrepancy, i)) is not None
                and d.status == DiscrepancyStatus.OPEN
            ]
            if new:
                tx.audit(ESCALATE, {"ids": new, "why": "overdue", "notify": "pharmacists"})
    deliver_escalations(ctl)
    return new


def deliver_escalations(ctl: Controller) -> int:
    """Send escalations not yet delivered to the pharmacists' sink (`shortage-sink`): one JSON
    line each, `"notification": "discrepancy-escalated"`. At least once: marked delivered (an
    audit entry) only after the sink accepted them; a failing sink is noted in
    `ctl.delivery_errors` and retried next time. No sink: stored only (listed, reported)."""
    from adc.controller.shortages import _send

    sink = ctl.policy.shortage_sink
    if not sink:
        return 0
    with ctl.read() as session:
        pending = sorted(_audited_ids(session, ESCALATE) - _audited_ids(session, NOTIFIED))
    if not pending:
        return 0
    rows = {row.id: row for row in list_discrepancies(ctl) if row.id in set(pending)}
    lines = [
        json.dumps(
            {"notification": "discrepancy-escalated", "to": "pharmacists", **rows[i].as_json()},
            sort_keys=True,
        )
        for i in pending
        if i in rows
    ]
    try:
        _send(sink, lines)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        ctl.delivery_errors.append(f"discrepancy escalations not delivered to {sink}: {err}")
        return 0
    with ctl.write(None, None) as tx:
        tx.audit(NOTIFIED, {"ids": pending, "sink": sink})
    return len(pending)
