"""Every cabinet at once (`adc report fleet`): what a pharmacy watching a whole fleet needs per
cabinet, read in one snapshot.

Why grouped queries: a health system has hundreds to a thousand cabinets on one PostgreSQL, so
each figure is one query over all cabinets (grouped by cabinet, on indexed columns), not one
query per cabinet; the last change is the head of each cabinet's audit chain (an index probe per
cabinet, audit_chains.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select

from adc.controller.cabinet_scope import Cabinets, check_known, scoped
from adc.controller.context import Controller
from adc.controller.maintenance import FAILURE_KINDS, RECOVERED, Failure, fold_failures
from adc.controller.models import (
    AuditEntry,
    Cabinet,
    Discrepancy,
    MaintenanceEvent,
    Pocket,
    StockLot,
)

ALARM_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class FleetRow:
    cabinet: str
    last_change: str | None  # time of the last entry in the cabinet's audit chain (UTC)
    alarms_24h: int  # alarm-* events in the last 24 hours
    open_discrepancies: int
    drawers_out_of_service: int
    critical_low_pockets: int  # assigned pockets at or below their critical-low level
    expiring_lots: int  # lots held that expire within the site's short-dated days

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _by_cabinet(session: Any, query: Any, column: Any, ids: tuple[str, ...] | None) -> Counter[str]:
    """(cabinet, count) rows of a grouped query, limited to `ids` (None: every cabinet)."""
    return Counter({row[0]: int(row[1]) for row in session.execute(scoped(query, column, ids))})


def failures_by_cabinet(session: Any, cabinets: Cabinets = None) -> dict[str, list[Failure]]:
    """Cabinet → the open failures of its drawers out of service (maintenance.fold_failures), for
    these cabinets (all: None) in one query, not one per cabinet."""
    events: dict[str, list[tuple[Any, ...]]] = {}
    query = (
        select(
            MaintenanceEvent.cabinet_id,
            MaintenanceEvent.id,
            MaintenanceEvent.drawer_code,
            MaintenanceEvent.pocket_code,
            MaintenanceEvent.kind,
            MaintenanceEvent.detail,
            MaintenanceEvent.at,
            MaintenanceEvent.user_id,
        )
        .where(
            MaintenanceEvent.drawer_code.is_not(None),  # type: ignore[union-attr]
            MaintenanceEvent.kind.in_([*FAILURE_KINDS, RECOVERED]),  # type: ignore[attr-defined]
        )
        .order_by(MaintenanceEvent.id)
    )
    for row in session.execute(scoped(query, MaintenanceEvent.cabinet_id, cabinets)):
        events.setdefault(row[0], []).append(tuple(row[1:]))
    out = {}
    for cabinet, found in events.items():
        failures = fold_failures(found, lambda _uid: None)
        if failures:
            out[cabinet] = failures
    return out


def fleet_status(ctl: Controller, cabinets: Cabinets = None) -> list[FleetRow]:
    """One row per cabinet (all, or those named: each must exist, else BadInput), by id. Every
    figure is one grouped query limited to the cabinets named (SQL IN), not one per cabinet."""
    now: datetime = ctl.now()
    horizon = ctl.today() + timedelta(days=ctl.policy.short_dated_days)
    with ctl.read() as session:
        ids = check_known(session, cabinets)
        if ids is not None:
            wanted = sorted(ids)
        else:
            wanted = list(session.execute(select(Cabinet.id).order_by(Cabinet.id)).scalars())
        last = (
            select(AuditEntry.at)
            .where(AuditEntry.chain == literal("cabinet:").concat(Cabinet.id))
            .order_by(AuditEntry.chain_seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        last_change = dict(session.execute(scoped(select(Cabinet.id, last), Cabinet.id, ids)).all())
        alarms = _by_cabinet(
            session,
            select(MaintenanceEvent.cabinet_id, func.count())
            .where(
                MaintenanceEvent.kind.like("alarm-%"),  # type: ignore[attr-defined]
                MaintenanceEvent.at >= now - ALARM_WINDOW,
            )
            .group_by(MaintenanceEvent.cabinet_id),
            MaintenanceEvent.cabinet_id,
            ids,
        )
        discrepancies = _by_cabinet(
            session,
            select(Discrepancy.cabinet_id, func.count())
            .where(Discrepancy.status == "open")
            .group_by(Discrepancy.cabinet_id),
            Discrepancy.cabinet_id,
            ids,
        )
        critical = _by_cabinet(
            session,
            select(Pocket.cabinet_id, func.count())
            .where(Pocket.item_id.is_not(None), Pocket.on_hand <= Pocket.critical_low)  # type: ignore[union-attr]
            .group_by(Pocket.cabinet_id),
            Pocket.cabinet_id,
            ids,
        )
        expiring = _by_cabinet(
            session,
            select(Pocket.cabinet_id, func.count())
            .join(StockLot, StockLot.pocket_id == Pocket.id)
            .where(StockLot.qty > 0, StockLot.expiry <= horizon)
            .group_by(Pocket.cabinet_id),
            Pocket.cabinet_id,
            ids,
        )
        failures = failures_by_cabinet(session, ids)
    out_of_service = {
        cabinet: len({f.drawer for f in found}) for cabinet, found in failures.items()
    }
    return [
        FleetRow(
            cabinet=cabinet,
            last_change=last_change.get(cabinet),
            alarms_24h=alarms[cabinet],
            open_discrepancies=discrepancies[cabinet],
            drawers_out_of_service=out_of_service.get(cabinet, 0),
            critical_low_pockets=critical[cabinet],
            expiring_lots=expiring[cabinet],
        )
        for cabinet in wanted
    ]
