"""Notifications to pharmacists: what the station found that a pharmacist must act on.

Kinds: `quarantine` (stock blocked after a cold-chain excursion), `expired-lots` (the daily
expiry sweep), `discrepancy-escalated` (a controlled discrepancy past its deadline), and
`recount-due` (a drawer out of service until a blind recount). Each is stored once per cause
(`ref`, unique: a restart or a second sweep that finds the same thing adds nothing), listed
newest last, and acknowledged by a pharmacist (audited; anyone else is refused, and the refusal
is audited too). Shortage notifications keep their own table and sink (shortages.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from adc.controller.cabinet_scope import Cabinets, scoped
from adc.controller.context import Actor, Controller, Tx
from adc.controller.models import Role, User
from adc.controller.permissions import Action
from adc.controller.station_tables import StationNotification
from adc.errors import BadInput, Refused

QUARANTINE = "quarantine"
EXPIRED = "expired-lots"
ESCALATED = "discrepancy-escalated"
RECOUNT = "recount-due"
KINDS = (QUARANTINE, EXPIRED, ESCALATED, RECOUNT)
# A pharmacist-only action of the permission table (only pharmacists acknowledge shortages):
# `Controller.write` re-reads the user under its lock (active, not locked out, allowed), and the
# station's own pharmacist decisions check the role on top (`require_pharmacist`).
PHARMACIST_ACTION = Action.SHORTAGE_ACK


def notify(
    tx: Tx,
    cabinet: str,
    kind: str,
    ref: str,
    detail: str,
    *,
    drawer: str | None = None,
    pocket: str | None = None,
) -> int | None:
    """Store a notification in the caller's transaction (audited there); None when one for the
    same `ref` exists already."""
    found = tx.session.execute(
        select(StationNotification.id).where(StationNotification.ref == ref)
    ).scalar()
    if found is not None:
        return None
    note = StationNotification(
        cabinet_id=cabinet,
        kind=kind,
        ref=ref,
        drawer_code=drawer,
        pocket_code=pocket,
        detail=detail,
        created_at=tx.now,
    )
    tx.session.add(note)
    tx.session.flush()
    tx.audit(
        "notification.created",
        {
            "id": note.id,
            "cabinet": cabinet,
            "kind": kind,
            "ref": ref,
            "drawer": drawer,
            "pocket": pocket,
            "to": "pharmacists",
        },
    )
    return note.id


@dataclass(frozen=True)
class NotificationView:
    id: int
    cabinet: str
    kind: str
    drawer: str | None
    pocket: str | None
    detail: str
    created_at: str
    acknowledged_by: str | None
    acknowledged_at: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def list_notifications(
    ctl: Controller, cabinet: Cabinets = None, *, pending_only: bool = False
) -> list[NotificationView]:
    query = select(StationNotification, User.username).outerjoin(
        User, User.id == StationNotification.acknowledged_by
    )
    query = scoped(query, StationNotification.cabinet_id, cabinet)
    if pending_only:
        query = query.where(StationNotification.acknowledged_at.is_(None))  # type: ignore[union-attr]
    with ctl.read() as session:
        found = session.execute(query.order_by(StationNotification.id)).all()
    return [
        NotificationView(
            id=n.id or 0,
            cabinet=n.cabinet_id,
            kind=n.kind,
            drawer=n.drawer_code,
            pocket=n.pocket_code,
            detail=n.detail,
            created_at=n.created_at.isoformat(),
            acknowledged_by=who,
            acknowledged_at=n.acknowledged_at.isoformat() if n.acknowledged_at else None,
        )
        for n, who in found
    ]


def require_pharmacist(ctl: Controller, actor: Actor, what: str, subject: dict[str, Any]) -> None:
    """Refused (and the refusal audited, by the system, naming who asked) unless `actor` is an
    active pharmacist who is not locked out. The write that follows re-reads the user too."""
    with ctl.read() as session:
        user = session.get(User, actor.user_id)
    why = None
    if user is None or not user.active:
        why = f"user {actor.username} is not an active user"
    elif user.locked:
        why = f"user {actor.username} is locked out"
    elif user.role != Role.PHARMACIST:
        why = (
            f"user {actor.username} ({user.role}) is not a pharmacist: only a pharmacist may {what}"
        )
    if why is None:
        return
    with ctl.write(None, None) as tx:
        tx.audit(
            "station.refused",
            {
                "action": what,
                "user": actor.username,
                "role": str(actor.role),
                **subject,
                "why": why,
            },
        )
    raise Refused(why)


def acknowledge(ctl: Controller, actor: Actor, note_id: int) -> NotificationView:
    """A pharmacist has seen it and acts on it; audited. Refused for anyone else (audited)."""
    require_pharmacist(ctl, actor, "acknowledge a notification", {"notification": note_id})
    with ctl.write(actor, PHARMACIST_ACTION) as tx:
        note = tx.session.get(StationNotification, note_id)
        if note is None:
            raise BadInput(f"no notification {note_id}")
        if note.acknowledged_at is not None:
            raise Refused(f"notification {note_id} was acknowledged already")
        _check_pharmacist(tx, actor)
        note.acknowledged_by, note.acknowledged_at = actor.user_id, tx.now
        tx.session.add(note)
        tx.audit(
            "notification.acknowledged",
            {"id": note_id, "kind": note.kind, "ref": note.ref, "cabinet": note.cabinet_id},
        )
    return next(n for n in list_notifications(ctl) if n.id == note_id)


def _check_pharmacist(tx: Tx, actor: Actor) -> None:
    """Under the writer lock: the user is (still) a pharmacist."""
    if tx.user is None or tx.user.role != Role.PHARMACIST:
        raise Refused(f"user {actor.username} is not a pharmacist")
