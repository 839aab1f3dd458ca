"""Reports read current state (pockets, lots, notifications), never the transaction history, so
they stay fast however long the history grows; the indexes they use are declared in models.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, exists, func, select

from adc.controller.cabinet_scope import Cabinets, cabinet_ids, scoped
from adc.controller.context import Controller
from adc.controller.formulary import SCHEDULE_NAMES
from adc.controller.lots import recall_covers, sql_lot_key
from adc.controller.models import Drawer, Item, Pocket, Recall, StockLot
from adc.controller.station_tables import Quarantine
from adc.controller.stock import expired_held_clause, is_held, recalled_held_clause


def _label(name: str, strength: str, form: str) -> str:
    return f"{name} {strength} {form}"


@dataclass(frozen=True)
class RefillLine:
    cabinet: str
    drawer: str
    pocket: str
    item_id: int
    item: str
    ndc: str | None
    schedule: str | None
    high_alert: bool
    on_hand: int
    par: int
    critical_low: int
    max: int
    need: int
    critical: bool
    blocked: str | None  # "expired", "recalled": pull before refilling; "quarantined" (a cold-chain
    # quarantine still open): a pharmacist releases or pulls it first
    # why the line cannot be served now and what to do, e.g. "drawer D6 out of service (...):
    # recover it (adc diag recover --drawer D6)"; None when it can be
    out_of_service: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def refill_list(ctl: Controller, cabinet: Cabinets = None) -> list[RefillLine]:
    """Pockets below par: critical-low (and empty) first, then by drawer and pocket (of every
    cabinet, one, or a list of them)."""
    critical = Pocket.on_hand <= Pocket.critical_low
    query = (
        select(
            Pocket.cabinet_id,
            Drawer.code,
            Pocket.code,
            Pocket.item_id,
            Pocket.on_hand,
            Pocket.par,
            Pocket.critical_low,
            Pocket.max_qty,
            Pocket.id,
        )
        .join(Drawer, Drawer.id == Pocket.drawer_id)
        .where(Pocket.on_hand < Pocket.par, Pocket.item_id.is_not(None))  # type: ignore[union-attr]
        .order_by(case((critical, 0), else_=1), Pocket.cabinet_id, Drawer.position, Pocket.position)
    )
    with ctl.read() as session:
        conn = session.connection()  # Core rows: no ORM loading for a fleet's 100,000 lines
        rows = conn.execute(scoped(query, Pocket.cabinet_id, cabinet)).all()
        if not rows:
            return []
        items = {  # the formulary once, not its columns on every line
            r[0]: (_label(r[1], r[2], r[3]), r[4], SCHEDULE_NAMES.get(r[5] or 0), bool(r[6]))
            for r in conn.execute(
                select(
                    Item.id, Item.name, Item.strength, Item.form, Item.ndc, Item.schedule
                ).add_columns(Item.high_alert)
            )
        }
        failed = _out_of_service(session, cabinet)
        blocked = _blocked(session, ctl.today(), cabinet)
    out = []
    for cab, drawer, code, item_id, on_hand, par, low, max_qty, pocket_id in rows:
        label, ndc, schedule, high_alert = items[item_id]
        out.append(
            RefillLine(
                cabinet=cab,
                drawer=drawer,
                pocket=code,
                item_id=item_id,
                item=label,
                ndc=ndc,
                schedule=schedule,
                high_alert=high_alert,
                on_hand=on_hand,
                par=par,
                critical_low=low,
                max=max_qty,
                need=par - on_hand,
                critical=on_hand <= low,
                blocked=blocked.get(pocket_id),
                out_of_service=failed.get((cab, drawer)),
            )
        )
    return out


def _blocked(session: Any, today: Any, cabinets: Cabinets) -> dict[int, str]:
    """Pocket id → why removal from it is blocked ("recalled", else "expired", else "quarantined":
    pull or resolve it before refilling), for every blocked pocket of these cabinets.

    Three set queries, not three correlated EXISTS a pocket: on a fleet's 100,000 refill lines
    those cost a second. The recall query first keeps the held lots whose lot key is a recalled
    one (a cheap IN), and only those are matched against the recalls (`recall_covers`)."""
    ids = cabinet_ids(cabinets)
    in_cabinets = select(Pocket.id).where(Pocket.cabinet_id.in_(ids)) if ids else None  # type: ignore[attr-defined]

    def pockets(query: Any, column: Any) -> set[int]:
        if in_cabinets is not None:
            query = query.where(column.in_(in_cabinets))
        return set(session.connection().execute(query.distinct()).scalars())

    recalled = pockets(
        select(StockLot.pocket_id).where(
            is_held(),
            sql_lot_key(StockLot.lot).in_(select(sql_lot_key(Recall.lot))),  # type: ignore[arg-type]
            exists().where(recall_covers(StockLot.gtin, StockLot.item_id, StockLot.lot)),
        ),
        StockLot.pocket_id,
    )
    expired = pockets(
        select(StockLot.pocket_id).where(is_held(), StockLot.expiry < today),
        StockLot.pocket_id,
    )
    quarantined = pockets(
        select(Quarantine.pocket_id).where(Quarantine.status == "open"),  # type: ignore[arg-type]
        Quarantine.pocket_id,
    )
    out = dict.fromkeys(quarantined, "quarantined")
    out.update(dict.fromkeys(expired, "expired"))
    out.update(dict.fromkeys(recalled, "recalled"))
    return out


def _out_of_service(session: Any, cabinets: Cabinets) -> dict[tuple[str, str], str]:
    """(cabinet, drawer) → why its lines cannot be served and what to do, for every drawer out
    of service in these cabinets (one query for all of them)."""
    from adc.controller.fleet import failures_by_cabinet

    out: dict[tuple[str, str], str] = {}
    for cabinet, found in failures_by_cabinet(session, cabinets).items():
        by_drawer: dict[str, list[Any]] = {}
        for failure in found:
            by_drawer.setdefault(failure.drawer, []).append(failure)
        for drawer, failures in by_drawer.items():
            last = failures[-1]
            what = f"pocket {last.pocket} " if last.pocket else ""
            what += f"{last.kind} at {last.at:%Y-%m-%d %H:%M} UTC"
            what += f": {last.detail}" if last.detail else ""
            out[(cabinet, drawer)] = (
                f"drawer {drawer} out of service ({what}); "
                f"recover it: adc diag recover --drawer {drawer}"
            )
    return out


@dataclass(frozen=True)
class ExpiringLot:
    cabinet: str
    drawer: str
    pocket: str
    item: str
    gtin: str
    lot: str
    expiry: str
    qty: int
    days_left: int
    expired: bool  # the pocket is blocked for removal until this lot is pulled

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def expiring(ctl: Controller, within_days: int, cabinet: Cabinets = None) -> list[ExpiringLot]:
    """Lots in stock expiring within `within_days` (expired ones included), soonest first."""
    today = ctl.today()
    limit = today + timedelta(days=within_days)
    query = (
        select(
            Pocket.cabinet_id,
            Drawer.code,
            Pocket.code,
            Item.name,
            Item.strength,
            Item.form,
            StockLot.gtin,
            StockLot.lot,
            StockLot.expiry,
            StockLot.qty,
        )
        .select_from(StockLot)
        .join(Pocket, Pocket.id == StockLot.pocket_id)
        .join(Drawer, Drawer.id == Pocket.drawer_id)
        .join(Item, Item.id == StockLot.item_id)
        .where(is_held(), StockLot.expiry <= limit)
        .order_by(StockLot.expiry, Pocket.cabinet_id, Pocket.position)
    )
    with ctl.read() as session:
        rows = session.execute(scoped(query, Pocket.cabinet_id, cabinet)).all()
    return [
        ExpiringLot(
            cabinet=r[0],
            drawer=r[1],
            pocket=r[2],
            item=_label(r[3], r[4], r[5]),
            gtin=r[6],
            lot=r[7],
            expiry=r[8].isoformat(),
            qty=r[9],
            days_left=(r[8] - today).days,
            expired=r[8] < today,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class PocketView:
    cabinet: str
    drawer: str
    pocket: str
    kind: str
    sensor: str
    item: str | None
    on_hand: int
    par: int
    critical_low: int
    max: int
    earliest_expiry: str | None
    blocked: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def pockets(ctl: Controller, cabinet: str) -> list[PocketView]:
    """Every pocket of a cabinet with its item, levels, earliest expiry and block."""
    earliest = (
        select(func.min(StockLot.expiry))
        .where(StockLot.pocket_id == Pocket.id, is_held())
        .scalar_subquery()
    )
    query = (
        select(
            Drawer.code,
            Pocket.code,
            Pocket.kind,
            Pocket.sensor_kind,
            Item.name,
            Item.strength,
            Item.form,
            Pocket.on_hand,
            Pocket.par,
            Pocket.critical_low,
            Pocket.max_qty,
            earliest,
            case((expired_held_clause(ctl.today()), 1), else_=0),
            case((recalled_held_clause(), 1), else_=0),
        )
        .join(Drawer, Drawer.id == Pocket.drawer_id)
        .outerjoin(Item, Item.id == Pocket.item_id)
        .where(Pocket.cabinet_id == cabinet)
        .order_by(Pocket.position)
    )
    with ctl.read() as session:
        rows = session.execute(query).all()
    return [
        PocketView(
            cabinet=cabinet,
            drawer=r[0],
            pocket=r[1],
            kind=r[2],
            sensor=r[3],
            item=_label(r[4], r[5], r[6]) if r[4] else None,
            on_hand=r[7],
            par=r[8],
            critical_low=r[9],
            max=r[10],
            earliest_expiry=r[11].isoformat() if r[11] else None,
            blocked="recalled" if r[13] else "expired" if r[12] else None,
        )
        for r in rows
    ]
