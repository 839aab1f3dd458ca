"""The hot path's reads and writes: one small function per statement, over `store.Store`.

Each `_q_*` builds a Core statement once (see store.py); the public functions run it and hand
back plain named tuples, which carry the attribute names of the ORM models they mirror so that
the rule functions (stock.block_from_rows, counts.check_access_count, shortages.plan_levels …)
read either. Only what the busiest operations need lives here: everything else uses the ORM.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.sql import ClauseElement

from adc.controller import models as m
from adc.controller.lots import recall_covers, same_lot
from adc.controller.stock import is_held, no_such_pocket, recall_id_of
from adc.controller.store import Store

_user = m.User.__table__.c  # type: ignore[attr-defined]
_pocket = m.Pocket.__table__.c  # type: ignore[attr-defined]
_drawer = m.Drawer.__table__.c  # type: ignore[attr-defined]
_item = m.Item.__table__.c  # type: ignore[attr-defined]
_gtin = m.ItemGtin.__table__.c  # type: ignore[attr-defined]
_lot = m.StockLot.__table__.c  # type: ignore[attr-defined]
_recall = m.Recall.__table__.c  # type: ignore[attr-defined]
_txn = m.Transaction.__table__.c  # type: ignore[attr-defined]
_shortage = m.Shortage.__table__.c  # type: ignore[attr-defined]
_setting = m.Setting.__table__.c  # type: ignore[attr-defined]
_event = m.MaintenanceEvent.__table__.c  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ row types
class UserRow(NamedTuple):
    id: int
    username: str
    role: str
    active: bool
    locked: bool


class PocketRow(NamedTuple):
    id: int
    cabinet_id: str
    drawer_id: int
    code: str
    kind: str
    capacity: int
    sensor_kind: str
    sensor_point: str | None
    lock_point: str | None
    switch_point: str | None
    lid_lock_point: str | None
    lid_switch_point: str | None
    light_point: str | None
    item_id: int | None
    par: int
    critical_low: int
    max_qty: int
    on_hand: int


class DrawerRow(NamedTuple):
    id: int
    cabinet_id: str
    code: str
    position: int
    lock_point: str
    switch_point: str
    light_point: str | None


class ItemRow(NamedTuple):
    id: int
    name: str
    strength: str
    form: str
    schedule: int | None
    active: bool
    unit_weight_g: float | None

    @property
    def label(self) -> str:
        return f"{self.name} {self.strength} {self.form}"


class LotRow(NamedTuple):
    """A held lot (qty > 0) with whether it is under recall: FEFO order from `held_lots`."""

    id: int
    lot: str
    expiry: date
    qty: int
    recall_id: int | None


class TouchRow(NamedTuple):
    """The fields of a pocket's latest transaction that the count-on-access rule reads."""

    id: int
    kind: str
    user_id: int
    at: datetime
    reason: str | None


# ------------------------------------------------------------------------------------ statements
def _q_user() -> ClauseElement:
    return select(_user.id, _user.username, _user.role, _user.active, _user.locked).where(
        _user.id == bindparam("id")
    )


_POCKET_COLUMNS = [getattr(_pocket, name) for name in PocketRow._fields]


def _q_pocket() -> ClauseElement:
    return select(*_POCKET_COLUMNS).where(
        _pocket.cabinet_id == bindparam("cabinet"), _pocket.code == bindparam("code")
    )


def _q_drawer() -> ClauseElement:
    return select(*[getattr(_drawer, name) for name in DrawerRow._fields]).where(
        _drawer.id == bindparam("id")
    )


def _q_item() -> ClauseElement:
    return select(*[getattr(_item, name) for name in ItemRow._fields]).where(
        _item.id == bindparam("id")
    )


def _q_held_lots() -> ClauseElement:
    return (
        select(
            _lot.id,
            _lot.lot,
            _lot.expiry,
            _lot.qty,
            recall_id_of(_lot.gtin, _lot.item_id, _lot.lot),
        )
        .where(_lot.pocket_id == bindparam("pocket"), is_held())
        .order_by(_lot.expiry, _lot.id)
    )


def _q_cabinet_settings() -> ClauseElement:
    return select(_setting.key, _setting.value).where(
        _setting.key.startswith(bindparam("prefix", type_=_setting.key.type))
    )


def _q_latest_touch() -> ClauseElement:
    return (
        select(_txn.id, _txn.kind, _txn.user_id, _txn.at, _txn.reason)
        .where(
            _txn.pocket_id == bindparam("pocket"),
            or_(_txn.qty != 0, _txn.kind == m.TxnKind.COUNT.value),
        )
        .order_by(_txn.id.desc())
        .limit(1)
    )


def _q_active_shortages() -> ClauseElement:
    return select(_shortage.id, _shortage.kind).where(
        _shortage.pocket_id == bindparam("pocket"),
        _shortage.status != m.ShortageStatus.RESOLVED.value,
    )


def _q_take_from_lot() -> ClauseElement:
    return (
        update(m.StockLot.__table__)
        .where(_lot.id == bindparam("lot_id"))
        .values(qty=_lot.qty - bindparam("take"))
    )


def _q_set_on_hand() -> ClauseElement:
    return (
        update(m.Pocket.__table__)
        .where(_pocket.id == bindparam("pocket_id"))
        .values(on_hand=bindparam("on_hand"))
    )


def _insert(model: Any, fields: tuple[str, ...], *, returning_id: bool = False) -> ClauseElement:
    """INSERT of `fields` (each bound under its own name, with its column's type)."""
    table = model.__table__
    statement = insert(table).values(
        {name: bindparam(name, type_=table.c[name].type) for name in fields}
    )
    return statement.returning(table.c.id) if returning_id else statement


_TXN_FIELDS = (
    "at",
    "kind",
    "cabinet_id",
    "pocket_id",
    "item_id",
    "lot_id",
    "qty",
    "expected",
    "counted",
    "user_id",
    "witness_id",
    "reason",
    "session_id",
    "related_id",
    "audit_seq",
)


def _q_insert_txn() -> ClauseElement:
    return _insert(m.Transaction, _TXN_FIELDS, returning_id=True)


_SHORTAGE_FIELDS = (
    "cabinet_id",
    "pocket_id",
    "item_id",
    "kind",
    "on_hand",
    "par",
    "critical_low",
    "status",
    "created_at",
)


def _q_insert_shortage() -> ClauseElement:
    return _insert(m.Shortage, _SHORTAGE_FIELDS, returning_id=True)


def _q_resolve_shortage() -> ClauseElement:
    return (
        update(m.Shortage.__table__)
        .where(_shortage.id == bindparam("note_id"))
        .values(
            status=m.ShortageStatus.RESOLVED.value,
            resolved_at=bindparam("at", type_=_shortage.resolved_at.type),
        )
    )


def _q_drawer_events() -> ClauseElement:
    """A drawer's failure events since its last recovery (what `fold_failures` reads), in order.

    The kinds are the ones `maintenance.FAILURE_KINDS` names when the statement is first built.
    """
    from adc.controller.maintenance import FAILURE_KINDS, RECOVERED

    here = and_(
        _event.cabinet_id == bindparam("cabinet"), _event.drawer_code == bindparam("drawer")
    )
    last_recovery = (
        select(func.coalesce(func.max(_event.id), 0))
        .where(here, _event.kind == bindparam("recovered", value=RECOVERED))
        .scalar_subquery()
    )
    kinds = [
        _event.kind == bindparam(f"kind_{n}", value=kind)
        for n, kind in enumerate(sorted(FAILURE_KINDS))
    ]
    return (
        select(
            _event.id,
            _event.drawer_code,
            _event.pocket_code,
            _event.kind,
            _event.detail,
            _event.at,
            _event.user_id,
        )
        .where(here, _event.id > last_recovery, or_(*kinds))
        .order_by(_event.id)
    )


def _q_cabinet_failures() -> ClauseElement:
    """Every drawer failure and recovery of a cabinet, in order (`fold_failures` folds them)."""
    from adc.controller.maintenance import FAILURE_KINDS, RECOVERED

    kinds = [
        _event.kind == bindparam(f"kind_{n}", value=kind)
        for n, kind in enumerate(sorted({*FAILURE_KINDS, RECOVERED}))
    ]
    return (
        select(
            _event.id,
            _event.drawer_code,
            _event.pocket_code,
            _event.kind,
            _event.detail,
            _event.at,
            _event.user_id,
        )
        .where(
            _event.cabinet_id == bindparam("cabinet"),
            _event.drawer_code.is_not(None),
            or_(*kinds),
        )
        .order_by(_event.id)
    )


def _q_cabinet_exists() -> ClauseElement:
    return select(m.Cabinet.__table__.c.id).where(m.Cabinet.__table__.c.id == bindparam("cabinet"))


def _q_username() -> ClauseElement:
    return select(_user.username).where(_user.id == bindparam("id"))


def _q_gtin_item() -> ClauseElement:
    return select(_gtin.item_id).where(_gtin.gtin == bindparam("gtin"))


def _q_recall_reason() -> ClauseElement:
    """The recall covering a scanned lot, for the item the scanned GTIN is (`verify_scan` has
    checked that it is the pocket's)."""
    gtin, lot = bindparam("gtin"), bindparam("lot")
    return (
        select(_recall.reason)
        .where(
            recall_covers(
                gtin, select(_gtin.item_id).where(_gtin.gtin == gtin).scalar_subquery(), lot
            )
        )
        .order_by(_recall.id)
        .limit(1)
    )


def _q_find_lot() -> ClauseElement:
    return (
        select(_lot.id, _lot.qty)
        .where(
            _lot.pocket_id == bindparam("pocket_id"),
            _lot.gtin == bindparam("gtin"),
            same_lot(_lot.lot, bindparam("lot")),
            _lot.expiry == bindparam("expiry", type_=_lot.expiry.type),
        )
        .order_by(_lot.id)
        .limit(1)
    )


def _q_earliest_lot() -> ClauseElement:
    return (
        select(_lot.id)
        .where(_lot.pocket_id == bindparam("pocket_id"), _lot.item_id == bindparam("item_id"))
        .order_by(_lot.expiry, _lot.id)
        .limit(1)
    )


_LOT_FIELDS = ("pocket_id", "item_id", "gtin", "lot", "expiry", "qty", "received_at")


def _q_insert_lot() -> ClauseElement:
    return _insert(m.StockLot, _LOT_FIELDS, returning_id=True)


def _q_add_to_lot() -> ClauseElement:
    return (
        update(m.StockLot.__table__)
        .where(_lot.id == bindparam("lot_id"))
        .values(qty=_lot.qty + bindparam("add"))
    )


_DISCREPANCY_FIELDS = (
    "cabinet_id",
    "pocket_id",
    "item_id",
    "transaction_id",
    "trigger",
    "expected",
    "counted",
    "status",
    "opened_by",
    "opened_at",
    "deadline",
)


def _q_insert_discrepancy() -> ClauseElement:
    return _insert(m.Discrepancy, _DISCREPANCY_FIELDS, returning_id=True)


def _q_assign_pocket() -> ClauseElement:
    return (
        update(m.Pocket.__table__)
        .where(_pocket.id == bindparam("pocket_id"))
        .values(
            item_id=bindparam("item_id"),
            par=bindparam("par"),
            critical_low=bindparam("critical_low"),
            max_qty=bindparam("max_qty"),
        )
    )


# ---------------------------------------------------------------------------------------- reads
def user(store: Store, user_id: int) -> UserRow | None:
    found = store.row(_q_user, id=user_id)
    return None if found is None else UserRow(*found)


def username(store: Store, user_id: int) -> str | None:
    found = store.row(_q_username, id=user_id)
    return None if found is None else str(found[0])


def pocket(store: Store, cabinet_id: str, code: str) -> PocketRow:
    """The pocket, or BadInput (the message `stock.find_pocket` gives)."""
    found = store.row(_q_pocket, cabinet=cabinet_id, code=code)
    if found is None:
        known = store.row(_q_cabinet_known, id=cabinet_id) is not None
        raise no_such_pocket(cabinet_id, code, cabinet_known=known)
    return PocketRow(*found)


def _q_cabinet_known() -> ClauseElement:
    return select(m.Cabinet.id).where(m.Cabinet.id == bindparam("id"))


def drawer(store: Store, drawer_id: int) -> DrawerRow:
    found = store.row(_q_drawer, id=drawer_id)
    assert found is not None, f"drawer {drawer_id} of a pocket is missing"
    return DrawerRow(*found)


def item(store: Store, item_id: int) -> ItemRow | None:
    found = store.row(_q_item, id=item_id)
    return None if found is None else ItemRow(*found)


def held_lots(store: Store, pocket_id: int) -> list[LotRow]:
    """Lots with stock, earliest expiry first, then oldest (the order `stock.held_lots` gives)."""
    return [LotRow(*found) for found in store.rows(_q_held_lots, pocket=pocket_id)]


def cabinet_settings(store: Store, prefix: str) -> list[tuple[str, str]]:
    return [(key, value) for key, value in store.rows(_q_cabinet_settings, prefix=prefix)]


def latest_touch(store: Store, pocket_id: int) -> TouchRow | None:
    found = store.row(_q_latest_touch, pocket=pocket_id)
    return None if found is None else TouchRow(*found)


def active_shortages(store: Store, pocket_id: int) -> list[tuple[int, str]]:
    return [(note_id, kind) for note_id, kind in store.rows(_q_active_shortages, pocket=pocket_id)]


def drawer_events(store: Store, cabinet_id: str, drawer_code: str) -> list[tuple[Any, ...]]:
    """(id, drawer, pocket, kind, detail, at, user_id) of the drawer's failures since its last
    recovery, in order (see `maintenance.fold_failures`)."""
    return store.rows(_q_drawer_events, cabinet=cabinet_id, drawer=drawer_code)


def gtin_item(store: Store, gtin: str) -> int | None:
    found = store.row(_q_gtin_item, gtin=gtin)
    return None if found is None else int(found[0])


def recall_of(store: Store, gtin: str, lot: str) -> tuple[str] | None:
    """(reason,) of a recall covering this lot scanned as `gtin`, under any GTIN or the NDC of
    the item `gtin` is (see `lots.recall_covers`); None if it is not recalled."""
    found = store.row(_q_recall_reason, gtin=gtin, lot=lot)
    return None if found is None else (found[0],)


def earliest_lot(store: Store, pocket_id: int, item_id: int) -> int | None:
    """The earliest-expiring lot the pocket has held of its item, empty or not."""
    found = store.row(_q_earliest_lot, pocket_id=pocket_id, item_id=item_id)
    return None if found is None else int(found[0])


def find_lot(store: Store, pocket_id: int, gtin: str, lot: str, expiry: date) -> int | None:
    found = store.row(_q_find_lot, pocket_id=pocket_id, gtin=gtin, lot=lot, expiry=expiry)
    return None if found is None else int(found[0])


def cabinet_exists(store: Store, cabinet_id: str) -> bool:
    return store.row(_q_cabinet_exists, cabinet=cabinet_id) is not None


def cabinet_failures(store: Store, cabinet_id: str) -> list[tuple[Any, ...]]:
    """(id, drawer, pocket, kind, detail, at, user_id) of the cabinet's drawer failures and
    recoveries, in order (see `maintenance.fold_failures`)."""
    return store.rows(_q_cabinet_failures, cabinet=cabinet_id)


# --------------------------------------------------------------------------------------- writes
def take_from_lot(store: Store, lot_id: int, take: int) -> None:
    store.run(_q_take_from_lot, lot_id=lot_id, take=take)


def set_on_hand(store: Store, pocket_id: int, on_hand: int) -> None:
    store.run(_q_set_on_hand, pocket_id=pocket_id, on_hand=on_hand)


def insert_txn(store: Store, **fields: Any) -> int:
    values = dict.fromkeys(_TXN_FIELDS)
    values.update(fields)
    return store.insert(_q_insert_txn, **values)


def insert_shortage(store: Store, **fields: Any) -> int:
    return store.insert(_q_insert_shortage, **fields)


def resolve_shortage(store: Store, note_id: int, at: datetime) -> None:
    store.run(_q_resolve_shortage, note_id=note_id, at=at)


def insert_lot(store: Store, **fields: Any) -> int:
    return store.insert(_q_insert_lot, **fields)


def add_to_lot(store: Store, lot_id: int, add: int) -> None:
    store.run(_q_add_to_lot, lot_id=lot_id, add=add)


def insert_discrepancy(store: Store, **fields: Any) -> int:
    return store.insert(_q_insert_discrepancy, **fields)


def assign_pocket(
    store: Store, pocket_id: int, item_id: int | None, par: int, critical_low: int, max_qty: int
) -> None:
    store.run(
        _q_assign_pocket,
        pocket_id=pocket_id,
        item_id=item_id,
        par=par,
        critical_low=critical_low,
        max_qty=max_qty,
    )
