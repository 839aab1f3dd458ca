"""Recalls: a GTIN and a lot that must leave every cabinet.

Entering a recall does not move stock: it blocks removal from every pocket holding that lot (see
`stock.block_of`) and refuses the lot at restock. `adc report recalls` lists the pockets to pull;
the pull itself is `inventory.pull`, which records what came out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from adc.controller.context import Actor, Controller, Tx
from adc.controller.csvfile import bad_rows, read_rows
from adc.controller.gs1 import MAX_LOT, normalize_gtin
from adc.controller.models import Drawer, Item, Pocket, Recall, StockLot
from adc.controller.permissions import Action
from adc.controller.stock import is_held, item_label
from adc.errors import AdcError, BadInput, Refused


def _check(gtin: str, lot: str) -> tuple[str, str]:
    gtin14 = normalize_gtin(gtin)
    lot = lot.strip()
    if not lot:
        raise BadInput("lot is empty")
    if len(lot) > MAX_LOT or not lot.isprintable():
        raise BadInput(f"lot {lot!r} is not a GS1 lot (at most {MAX_LOT} printable characters)")
    return gtin14, lot


def _held(tx: Tx, gtin: str, lot: str) -> list[str]:
    rows = tx.session.execute(
        select(Pocket.cabinet_id, Pocket.code)
        .join(StockLot, StockLot.pocket_id == Pocket.id)
        .where(StockLot.gtin == gtin, StockLot.lot == lot, is_held())
    ).all()
    return [f"{cab}/{code}" for cab, code in rows]


def _insert(tx: Tx, actor: Actor, gtin: str, lot: str, reason: str) -> Recall:
    recall = Recall(gtin=gtin, lot=lot, reason=reason, created_by=actor.user_id, created_at=tx.now)
    tx.session.add(recall)
    tx.session.flush()
    return recall


def add_recall(ctl: Controller, actor: Actor, gtin: str, lot: str, reason: str = "") -> list[str]:
    """Record a recall; returns the pockets (cabinet/pocket) now blocked by it."""
    gtin14, lot = _check(gtin, lot)
    with ctl.write(actor, Action.RECALL_MANAGE) as tx:
        if tx.session.execute(
            select(Recall.id).where(Recall.gtin == gtin14, Recall.lot == lot)
        ).first():
            raise Refused(f"GTIN {gtin14} lot {lot} is recalled already")
        recall = _insert(tx, actor, gtin14, lot, reason.strip())
        blocked = _held(tx, gtin14, lot)
        tx.audit(
            "recall.add",
            {
                "id": recall.id,
                "gtin": gtin14,
                "lot": lot,
                "reason": recall.reason,
                "blocked_pockets": blocked,
            },
        )
        return blocked


@dataclass
class RecallImport:
    added: int
    already: int
    blocked_pockets: list[str]


def import_recalls(ctl: Controller, actor: Actor, path: Path) -> RecallImport:
    """CSV with columns gtin, lot (and optional reason): all rows or none; known recalls skipped."""
    ctl.check(actor, Action.RECALL_MANAGE)  # say "not allowed" before judging the file
    rows: list[tuple[int, str, str, str]] = []
    problems: list[tuple[int, str]] = []
    for line, row in read_rows(path, ["gtin", "lot"], ("reason",)):
        try:
            if "__error__" in row:
                raise BadInput(row["__error__"])
            gtin, lot = _check(row["gtin"], row["lot"])
        except AdcError as err:
            problems.append((line, err.message))
            continue
        rows.append((line, gtin, lot, row.get("reason", "")))
    if problems:
        raise bad_rows(path, problems, "recalls")
    if not rows:
        raise BadInput(f"{path}: no recalls in the file")
    with ctl.write(actor, Action.RECALL_MANAGE) as tx:
        known = {(g, lot) for g, lot in tx.session.execute(select(Recall.gtin, Recall.lot)).all()}
        added, blocked = [], []
        for _line, gtin, lot, reason in rows:
            if (gtin, lot) in known:
                continue
            known.add((gtin, lot))
            recall = _insert(tx, actor, gtin, lot, reason)
            added.append({"id": recall.id, "gtin": gtin, "lot": lot})
            blocked += _held(tx, gtin, lot)
        if added:
            tx.audit(
                "recall.import", {"file": str(path), "recalls": added, "blocked_pockets": blocked}
            )
        return RecallImport(len(added), len(rows) - len(added), blocked)


@dataclass(frozen=True)
class RecalledStock:
    cabinet: str
    drawer: str
    pocket: str
    item: str
    gtin: str
    lot: str
    expiry: str
    qty: int
    reason: str


def recalled_stock(ctl: Controller, cabinet: str | None = None) -> list[RecalledStock]:
    """Every pocket holding a recalled lot, by cabinet, drawer and pocket: the pull list."""
    query = (
        select(Pocket.cabinet_id, Drawer.code, Pocket.code, Item, StockLot, Recall.reason)
        .join(StockLot, StockLot.pocket_id == Pocket.id)
        .join(Recall, (Recall.gtin == StockLot.gtin) & (Recall.lot == StockLot.lot))
        .join(Drawer, Drawer.id == Pocket.drawer_id)
        .join(Item, Item.id == StockLot.item_id)
        .where(is_held())
        .order_by(Pocket.cabinet_id, Pocket.position)
    )
    if cabinet:
        query = query.where(Pocket.cabinet_id == cabinet)
    with ctl.read() as session:
        return [
            RecalledStock(
                cab,
                drawer,
                pocket,
                item_label(item),
                lot.gtin,
                lot.lot,
                lot.expiry.isoformat(),
                lot.qty,
                reason,
            )
            for cab, drawer, pocket, item, lot, reason in session.execute(query).all()
        ]
