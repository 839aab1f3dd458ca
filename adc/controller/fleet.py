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

from adc.controller.context import Controller
from adc.controller.maintenance import FAILURE_KINDS, RECOVERED, fold_failures
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


def _by_cabinet(session: Any, query: Any) -> Counter[str]:
    return Counter({row[0]: int(row[1]) for row in session.execute(query)})


def fleet_status(ctl: Controller, cabinets: list[str] | None = None) -> list[FleetRow]:
    """One row per cabinet (all, or those named: each must exist, else BadInput), by id."""
    from adc.controller.cabinets import no_such_cabinet

    now: datetime = ctl.now()
    horizon = ctl.today() + timedelta(days=ctl.policy.short_dated_days)
    with ctl.read() as session:
        known = session.execute(select(Cabinet.id).order_by(Cabinet.id)).scalars().all()
        if cabinets:
            for name in cabinets:
                if name not in known:
                    raise no_such_cabinet(name)
            wanted = sorted(set(cabinets))
        else:
            wanted = list(known)
        last = (
            select(AuditEntry.at)
            .where(AuditEntry.chain == literal("cabinet:").concat(Cabinet.id))
            .order_by(AuditEntry.chain_seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        last_change = dict(
            session.execute(select(Cabinet.id, last).where(Cabinet.id.in_(wanted))).all()  # type: ignore[attr-defined]
        )
        alarms = _by_cabinet(
            session,
            select(MaintenanceEvent.cabinet_id, func.count())
            .where(
                MaintenanceEvent.kind.like("alarm-%"),  # type: ignore[attr-defined]
                MaintenanceEvent.at >= now - ALARM_WINDOW,
            )
            .group_by(MaintenanceEvent.cabinet_id),
        )
        discrepancies = _by_cabinet(
            session,
            select(Discrepancy.cabinet_id, func.count())
            .where(Discrepancy.status == "open")
            .group_by(Discrepancy.cabinet_id),
        )
        critical = _by_cabinet(
            session,
            select(Pocket.cabinet_id, func.count())
            .where(Pocket.item_id.is_not(None), Pocket.on_hand <= Pocket.critical_low)  # type: ignore[union-attr]
            .group_by(Pocket.cabinet_id),
        )
        expiring = _by_cabinet(
            session,
            select(Pocket.cabinet_id, func.count())
            .join(StockLot, StockLot.pocket_id == Pocket.id)
            .where(StockLot.qty > 0, StockLot.expiry <= horizon)
            .group_by(Pocket.cabinet_id),
        )
        events: dict[str, list[tuple[Any, ...]]] = {}
        for row in session.execute(
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
        ):
            events.setdefault(row[0], []).append(tuple(row[1:]))
    out_of_service = {
        cabinet: len({f.drawer for f in fold_failures(found, lambda _uid: None)})
        for cabinet, found in events.items()
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
