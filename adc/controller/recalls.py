"""Recalls: a product's lot that must leave every cabinet.

A recall is entered as a GTIN (or an NDC, kept as the GTIN that carries it) and a lot; it covers
that lot under every GTIN of the product (see `lots.recall_covers`), its case and surrounding
spaces ignored. Entering a recall does not move stock: it blocks removal from every pocket holding
that lot (see `stock.block_of`) and refuses the lot at restock. `adc report recalls` lists the
pockets to pull; the pull itself is `inventory.pull`, which records what came out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from adc.controller.cabinet_scope import Cabinets, cabinet_ids
from adc.controller.context import Actor, Controller, Tx
from adc.controller.csvfile import bad_rows, read_rows
from adc.controller.gs1 import MAX_LOT, gtin_for_ndc, normalize_gtin, normalize_ndc
from adc.controller.lots import (
    check_ascii,
    check_recall_lot,
    lot_key,
    recall_covers,
    same_lot,
    sql_lot_key,
)
from adc.controller.models import Drawer, Item, Pocket, Recall, StockLot
from adc.controller.permissions import Action
from adc.controller.stock import is_held, item_label
from adc.errors import AdcError, BadInput, Refused


def _check(gtin: str | None, lot: str, ndc: str | None = None) -> tuple[str, str]:
    """(GTIN-14, lot) of a recall given by GTIN or by NDC; BadInput naming the field."""
    if (gtin is None or not gtin.strip()) == (ndc is None or not ndc.strip()):
        raise BadInput("a recall names the product by GTIN or NDC: give exactly one")
    if gtin is not None and gtin.strip():
        gtin14 = normalize_gtin(check_ascii("GTIN", gtin.strip()))
    else:
        assert ndc is not None
        gtin14 = gtin_for_ndc(normalize_ndc(check_ascii("NDC", ndc.strip())))
    return gtin14, check_recall_lot(lot, MAX_LOT)


def _held(tx: Tx, recall_id: int) -> list[str]:
    """The pockets (cabinet/pocket) holding stock the recall covers, each once, in order."""
    recall = Recall.__table__
    rows = tx.session.execute(
        select(Pocket.cabinet_id, Pocket.code)
        .join(StockLot, StockLot.pocket_id == Pocket.id)
        .join(recall, recall.c.id == recall_id)
        .where(is_held(), recall_covers(StockLot.gtin, StockLot.item_id, StockLot.lot, recall))
        .group_by(Pocket.cabinet_id, Pocket.code, Pocket.position)
        .order_by(Pocket.cabinet_id, Pocket.position)
    ).all()
    return [f"{cab}/{code}" for cab, code in rows]


def _once(pockets: list[str]) -> list[str]:
    return list(dict.fromkeys(pockets))


def _insert(tx: Tx, actor: Actor, gtin: str, lot: str, reason: str) -> Recall:
    recall = Recall(gtin=gtin, lot=lot, reason=reason, created_by=actor.user_id, created_at=tx.now)
    tx.session.add(recall)
    tx.session.flush()
    return recall


def add_recall(
    ctl: Controller,
    actor: Actor,
    gtin: str | None,
    lot: str,
    reason: str = "",
    *,
    ndc: str | None = None,
) -> list[str]:
    """Record a recall of a lot of the product with this GTIN (or NDC); returns the pockets
    (cabinet/pocket) now blocked by it, each once."""
    gtin14, lot = _check(gtin, lot, ndc)
    with ctl.write(actor, Action.RECALL_MANAGE) as tx:
        if tx.session.execute(
            select(Recall.id).where(Recall.gtin == gtin14, same_lot(Recall.lot, lot))
        ).first():
            raise Refused(f"GTIN {gtin14} lot {lot} is recalled already")
        recall = _insert(tx, actor, gtin14, lot, reason.strip())
        blocked = _held(tx, recall.id or 0)
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
    """CSV with columns gtin or ndc, lot (and optional reason): all rows or none; known recalls
    (same GTIN, same lot by `lots.lot_key`) skipped."""
    ctl.check(actor, Action.RECALL_MANAGE)  # say "not allowed" before judging the file
    rows: list[tuple[int, str, str, str]] = []
    problems: list[tuple[int, str]] = []
    for line, row in read_rows(path, ["lot"], ("gtin", "ndc", "reason")):
        try:
            if "__error__" in row:
                raise BadInput(row["__error__"])
            gtin, lot = _check(row.get("gtin"), row["lot"], row.get("ndc"))
        except AdcError as err:
            problems.append((line, err.message))
            continue
        rows.append((line, gtin, lot, row.get("reason", "")))
    if problems:
        raise bad_rows(path, problems, "recalls")
    if not rows:
        raise BadInput(f"{path}: no recalls in the file")
    with ctl.write(actor, Action.RECALL_MANAGE) as tx:
        known = {
            (g, lot_key(lot)) for g, lot in tx.session.execute(select(Recall.gtin, Recall.lot))
        }
        added, blocked = [], []
        for _line, gtin, lot, reason in rows:
            if (gtin, lot_key(lot)) in known:
                continue
            known.add((gtin, lot_key(lot)))
            recall = _insert(tx, actor, gtin, lot, reason)
            added.append({"id": recall.id, "gtin": gtin, "lot": lot})
            blocked += _held(tx, recall.id or 0)
        blocked = _once(blocked)
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


MAX_CANDIDATES = 5_000  # lot ids passed as parameters (SQLite allows 32,766 a statement)


def recalled_stock(ctl: Controller, cabinet: Cabinets = None) -> list[RecalledStock]:
    """Every held lot a recall covers, by cabinet, drawer and pocket: the pull list. One row per
    lot held, however many recalls cover it (the reason is the first recall's)."""
    recall = Recall.__table__
    reason = (
        select(recall.c.reason)
        .where(recall_covers(StockLot.gtin, StockLot.item_id, StockLot.lot))
        .order_by(recall.c.id)
        .limit(1)
        .scalar_subquery()
    )
    # First the held lots whose lot key is a recalled one (a hash join over the lots: a fleet
    # holds 300,000), then whether a recall covers each of those few (its reason). In one query
    # PostgreSQL estimates the correlated reason for every lot and spends seconds compiling it (JIT).
    candidates = select(StockLot.id).where(
        is_held(), sql_lot_key(StockLot.lot).in_(select(sql_lot_key(recall.c.lot)))
    )
    ids = cabinet_ids(cabinet)
    if ids is not None:
        in_cabinets = select(Pocket.id).where(Pocket.cabinet_id.in_(ids))  # type: ignore[attr-defined]
        candidates = candidates.where(StockLot.pocket_id.in_(in_cabinets))  # type: ignore[attr-defined]
    with ctl.read() as session:
        lot_ids = list(session.connection().execute(candidates).scalars())
        if not lot_ids:
            return []
        # thousands of candidates (a lot number common to many products): one query after all
        chosen = (
            StockLot.id.in_(lot_ids)  # type: ignore[union-attr]
            if len(lot_ids) <= MAX_CANDIDATES
            else StockLot.id.in_(candidates)  # type: ignore[union-attr]
        )
        query = (
            select(Pocket.cabinet_id, Drawer.code, Pocket.code, Item, StockLot, reason)
            .select_from(StockLot)
            .join(Pocket, StockLot.pocket_id == Pocket.id)
            .join(Drawer, Drawer.id == Pocket.drawer_id)
            .join(Item, Item.id == StockLot.item_id)
            .where(chosen, reason.is_not(None))
            .order_by(Pocket.cabinet_id, Pocket.position, StockLot.expiry, StockLot.id)
        )
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
