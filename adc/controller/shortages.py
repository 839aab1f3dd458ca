"""Shortage notifications for pharmacists: stored, listed, and delivered as JSON lines.

A pocket that reaches critical-low or runs out gets one open notification (not one per removal);
a worse level supersedes a milder one; a refill above critical-low resolves them. A refill line the
technician could not fill is an `unfilled` notification. Delivery happens after the change has
committed, to `policy.shortage_sink` (`file:PATH` appends JSON lines; `command:CMD` runs CMD with
the lines on stdin). Delivery is at-least-once: each line carries the notification id, and a
notification is marked delivered only after the sink accepted it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from adc.controller import rows
from adc.controller.audit import format_time
from adc.controller.cabinet_scope import Cabinets, scoped
from adc.controller.models import Item, Pocket, Shortage, ShortageKind, ShortageStatus
from adc.controller.permissions import Action
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller, FastTx, Tx

_SEVERITY = {ShortageKind.CRITICAL_LOW: 1, ShortageKind.STOCK_OUT: 2}
_ACTIVE = (ShortageStatus.OPEN, ShortageStatus.ACKNOWLEDGED)


def level_of(pocket: Any) -> ShortageKind | None:
    if pocket.item_id is None:
        return None
    if pocket.on_hand == 0:
        return ShortageKind.STOCK_OUT
    if pocket.on_hand <= pocket.critical_low:
        return ShortageKind.CRITICAL_LOW
    return None


def _active(tx: Tx, pocket_id: int) -> list[tuple[int, str]]:
    """(id, kind) of the pocket's open or acknowledged notifications (usually none)."""
    rows = tx.session.execute(
        select(Shortage.id, Shortage.kind).where(
            Shortage.pocket_id == pocket_id, Shortage.status.in_(_ACTIVE)
        )
    ).all()
    return [(note_id, kind) for note_id, kind in rows]


def _open(tx: Tx, pocket: Pocket, kind: ShortageKind) -> Shortage:
    assert pocket.id is not None and pocket.item_id is not None
    note = Shortage(
        cabinet_id=pocket.cabinet_id,
        pocket_id=pocket.id,
        item_id=pocket.item_id,
        kind=kind,
        on_hand=pocket.on_hand,
        par=pocket.par,
        critical_low=pocket.critical_low,
        created_at=tx.now,
    )
    tx.session.add(note)
    tx.session.flush()
    tx.new_shortages = True
    return note


def update_levels(tx: Tx, pocket: Pocket) -> dict[str, list[int]]:
    """Open, supersede or resolve the pocket's notifications after its on-hand changed.

    Returns the ids opened and resolved, for the audit payload of the change that caused them.
    """
    assert pocket.id is not None
    opening, resolved = plan_levels(level_of(pocket), _active(tx, pocket.id))
    opened = [_open(tx, pocket, opening).id or 0] if opening is not None else []
    if resolved:
        tx.session.execute(
            update(Shortage)
            .where(Shortage.id.in_(resolved))
            .values(status=ShortageStatus.RESOLVED, resolved_at=tx.now)
        )
    return {"opened": opened, "resolved": resolved} if opened or resolved else {}


def update_levels_fast(tx: FastTx, pocket: rows.PocketRow) -> dict[str, list[int]]:
    """`update_levels` on the hot path (store.py): the same rule, the same rows written."""
    active = rows.active_shortages(tx.store, pocket.id)
    opening, resolved = plan_levels(level_of(pocket), active)
    opened = []
    if opening is not None:
        assert pocket.item_id is not None
        opened.append(
            rows.insert_shortage(
                tx.store,
                cabinet_id=pocket.cabinet_id,
                pocket_id=pocket.id,
                item_id=pocket.item_id,
                kind=opening.value,
                on_hand=pocket.on_hand,
                par=pocket.par,
                critical_low=pocket.critical_low,
                status=ShortageStatus.OPEN.value,
                created_at=tx.now,
            )
        )
        tx.new_shortages = True
    for note_id in resolved:
        rows.resolve_shortage(tx.store, note_id, tx.now)
    return {"opened": opened, "resolved": resolved} if opened or resolved else {}


def plan_levels(
    level: ShortageKind | None, active: list[tuple[int, str]]
) -> tuple[ShortageKind | None, list[int]]:
    """The rule of `update_levels`: (the kind to open, if any; the ids to resolve), given the
    pocket's level now and its (id, kind) notifications still open or acknowledged."""
    if level is None:
        return None, [note_id for note_id, _ in active]
    worst = max((_SEVERITY.get(ShortageKind(kind), 0) for _, kind in active), default=0)
    if _SEVERITY[level] > worst:
        return level, [note_id for note_id, kind in active if kind in _SEVERITY]
    return None, []


def open_unfilled(tx: Tx, pocket: Pocket) -> int:
    """A refill line that could not be filled: pharmacists should know the drug is not available."""
    return _open(tx, pocket, ShortageKind.UNFILLED).id or 0


# ------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class ShortageView:
    id: int
    kind: str
    status: str
    cabinet: str
    pocket: str
    item: str
    ndc: str | None
    on_hand: int
    par: int
    critical_low: int
    created_at: str
    delivered: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _views(rows: Any) -> list[ShortageView]:
    return [
        ShortageView(
            id=note.id,
            kind=note.kind,
            status=note.status,
            cabinet=note.cabinet_id,
            pocket=code,
            item=f"{item.name} {item.strength} {item.form}",
            ndc=item.ndc,
            on_hand=note.on_hand,
            par=note.par,
            critical_low=note.critical_low,
            created_at=format_time(note.created_at),
            delivered=note.delivered_at is not None,
        )
        for note, code, item in rows
    ]


def list_shortages(
    ctl: Controller, *, include_closed: bool = False, cabinet: Cabinets = None
) -> list[ShortageView]:
    """Open (and acknowledged) notifications, newest first; all of them with include_closed."""
    query = (
        select(Shortage, Pocket.code, Item)
        .join(Pocket, Pocket.id == Shortage.pocket_id)
        .join(Item, Item.id == Shortage.item_id)
    )
    if not include_closed:
        query = query.where(Shortage.status.in_(_ACTIVE))
    query = scoped(query, Shortage.cabinet_id, cabinet)
    query = query.order_by(Shortage.created_at.desc(), Shortage.id.desc())
    with ctl.read() as session:
        return _views(session.execute(query).all())


def acknowledge(ctl: Controller, actor: Actor, shortage_id: int) -> None:
    with ctl.write(actor, Action.SHORTAGE_ACK) as tx:
        note = tx.session.get(Shortage, shortage_id)
        if note is None:
            raise BadInput(f"no shortage notification {shortage_id}")
        if note.status != ShortageStatus.OPEN:
            raise Refused(f"shortage notification {shortage_id} is {note.status}, not open")
        note.status, note.acknowledged_by = ShortageStatus.ACKNOWLEDGED, actor.user_id
        tx.audit("shortage.acknowledge", {"shortage": shortage_id})


# ------------------------------------------------------------------------------------ delivery
def _send(sink: str, lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines)
    if sink.startswith("file:"):
        path = Path(sink.removeprefix("file:")).expanduser()
        with path.open("a", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return
    command = shlex.split(sink.removeprefix("command:"))
    subprocess.run(command, input=data, text=True, check=True, timeout=30, capture_output=True)


def deliver_pending(ctl: Controller) -> int:
    """Send every undelivered notification to the sink; returns how many were delivered.

    A sink that fails (unwritable file, command missing or failing) leaves the notifications
    undelivered for the next attempt and records the error in `ctl.delivery_errors`.
    """
    sink = ctl.policy.shortage_sink
    if not sink:
        return 0
    with ctl.read() as session:
        rows = session.execute(
            select(Shortage, Pocket.code, Item)
            .join(Pocket, Pocket.id == Shortage.pocket_id)
            .join(Item, Item.id == Shortage.item_id)
            .where(Shortage.delivered_at.is_(None))
            .order_by(Shortage.id)
        ).all()
    views = _views(rows)
    if not views:
        return 0
    lines = [json.dumps(v.as_json(), sort_keys=True) for v in views]
    try:
        _send(sink, lines)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        ctl.delivery_errors.append(f"shortage notifications not delivered to {sink}: {err}")
        return 0
    ids = [v.id for v in views]
    with ctl.write(None, None) as tx:
        tx.session.execute(
            update(Shortage)
            .where(Shortage.id.in_(ids), Shortage.delivered_at.is_(None))
            .values(delivered_at=tx.now)
        )
        tx.audit("shortage.delivered", {"ids": ids, "sink": sink})
    return len(ids)
