"""Scheduled work the station runs on the injected clock, each run recorded so that a restart
neither repeats nor skips one.

Jobs and their periods:
- `expiry-sweep`, once per site day (the period is the site's date): lots held in the cabinet
  that expired since the last sweep (expiry on or after the last sweep's date and before today;
  the first sweep takes every expired lot) are blocked for removal already (`stock.block_from_rows`
  reads the expiry); the sweep records them (audit `station.expiry-sweep`) and notifies
  pharmacists once per pocket (`expired-lots`). A station down for days sweeps everything since
  its last sweep at its next start.
- `discrepancy-escalation`, every `ESCALATION_MIN` minutes (a UTC slot): controlled
  discrepancies past their deadline are escalated (`discrepancies.escalate_overdue`: once each,
  audited, delivered through the shortage sink) and each is a `discrepancy-escalated`
  notification to pharmacists.
- `shortage-delivery`, every `DELIVERY_MIN` minutes: shortage notifications not yet delivered
  go to the site's sink (`shortages.deliver_pending`, at least once).

A run is a `station_run` row (cabinet, job, period), audited, written after the job: the row's
uniqueness means one run per period; a job cut short before its row re-runs at the next start
and finds its own earlier work (notifications and escalations are idempotent). The expiry
sweep is recorded every day; an escalation or delivery run is recorded only when it did
something (escalated, delivered, or failed to deliver): an idle one every few minutes would
fill the audit trail with nothing. Idle periods are remembered by the station (`seen`), and
after a restart the current period's idle run simply runs again, which changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from adc.controller import notifications
from adc.controller.context import Controller
from adc.controller.models import Discrepancy, Pocket, StockLot
from adc.controller.station_tables import StationRun
from adc.controller.stock import is_held

EXPIRY = "expiry-sweep"
ESCALATION = "discrepancy-escalation"
DELIVERY = "shortage-delivery"
JOBS = (EXPIRY, ESCALATION, DELIVERY)
ESCALATION_MIN = 15
DELIVERY_MIN = 1


@dataclass(frozen=True)
class Run:
    job: str
    period: str
    result: dict[str, Any]


def period_of(ctl: Controller, job: str, now: datetime | None = None) -> str:
    """The period a job runs for at `now` (the controller's clock)."""
    now = now or ctl.now()
    if job == EXPIRY:
        return ctl.today().isoformat()
    minutes = ESCALATION_MIN if job == ESCALATION else DELIVERY_MIN
    slot = (now.hour * 60 + now.minute) // minutes * minutes
    return f"{now:%Y-%m-%d}T{slot // 60:02d}:{slot % 60:02d}Z"


def _done(ctl: Controller, cabinet: str, job: str, period: str) -> bool:
    with ctl.read() as session:
        return (
            session.execute(
                select(StationRun.id).where(
                    StationRun.cabinet_id == cabinet,
                    StationRun.job == job,
                    StationRun.period == period,
                )
            ).scalar()
            is not None
        )


def _record(ctl: Controller, cabinet: str, job: str, period: str, result: dict[str, Any]) -> bool:
    """The run on record (audited); False when another process recorded this period first."""
    with ctl.write(None, None) as tx:
        found = tx.session.execute(
            select(StationRun.id).where(
                StationRun.cabinet_id == cabinet, StationRun.job == job, StationRun.period == period
            )
        ).scalar()
        if found is not None:
            return False
        tx.session.add(
            StationRun(
                cabinet_id=cabinet,
                job=job,
                period=period,
                ran_at=tx.now,
                result=json.dumps(result, sort_keys=True, default=str),
            )
        )
        tx.audit(
            "station.scheduled",
            {"cabinet": cabinet, "job": job, "period": period, "result": result},
        )
    return True


def run_due(ctl: Controller, cabinet: str, seen: dict[str, str] | None = None) -> list[Run]:
    """Run every job whose current period has not run (on record, or idle in `seen`, the
    caller's memory of this process's runs); the runs made."""
    seen = seen if seen is not None else {}
    out = []
    for job in JOBS:
        period = period_of(ctl, job)
        if seen.get(job) == period or _done(ctl, cabinet, job, period):
            seen[job] = period
            continue
        result = _JOBS[job](ctl, cabinet)
        seen[job] = period
        if job != EXPIRY and not any(result.values()):
            continue  # idle: nothing to record
        if _record(ctl, cabinet, job, period, result):
            out.append(Run(job, period, result))
    return out


def runs(ctl: Controller, cabinet: str, job: str | None = None) -> list[StationRun]:
    query = select(StationRun).where(StationRun.cabinet_id == cabinet)
    if job is not None:
        query = query.where(StationRun.job == job)
    with ctl.read() as session:
        return list(session.execute(query.order_by(StationRun.id)).scalars())


# ------------------------------------------------------------------------------------ the jobs
def _last_sweep_day(ctl: Controller, cabinet: str, today: date) -> date | None:
    with ctl.read() as session:
        last = session.execute(
            select(StationRun.period)
            .where(
                StationRun.cabinet_id == cabinet,
                StationRun.job == EXPIRY,
                StationRun.period < today.isoformat(),
            )
            .order_by(StationRun.period.desc())  # type: ignore[attr-defined]
            .limit(1)
        ).scalar()
    return date.fromisoformat(last) if last else None


def expiry_sweep(ctl: Controller, cabinet: str) -> dict[str, Any]:
    today = ctl.today()
    since = _last_sweep_day(ctl, cabinet, today)
    query = (
        select(Pocket.code, Pocket.drawer_id, StockLot.lot, StockLot.expiry, StockLot.qty)
        .join(Pocket, Pocket.id == StockLot.pocket_id)
        .where(Pocket.cabinet_id == cabinet, is_held(), StockLot.expiry < today)
        .order_by(Pocket.position, StockLot.expiry)
    )
    if since is not None:
        query = query.where(StockLot.expiry >= since)
    with ctl.read() as session:
        found = session.execute(query).all()
    by_pocket: dict[str, list[dict[str, Any]]] = {}
    for code, _drawer, lot, expiry, qty in found:
        by_pocket.setdefault(code, []).append(
            {"lot": lot, "expiry": expiry.isoformat(), "qty": qty}
        )
    if by_pocket:
        with ctl.write(None, None) as tx:
            tx.audit(
                "station.expiry-sweep",
                {
                    "cabinet": cabinet,
                    "today": today.isoformat(),
                    "since": since.isoformat() if since else None,
                    "pockets": by_pocket,
                },
            )
            for code, lots in by_pocket.items():
                named = ", ".join(f"{lot['lot']} ({lot['expiry']}, {lot['qty']})" for lot in lots)
                notifications.notify(
                    tx,
                    cabinet,
                    notifications.EXPIRED,
                    f"expired:{cabinet}:{today.isoformat()}:{code}",
                    f"pocket {code} holds expired lot {named}: removal blocked until it is "
                    f"pulled (a pull line of the next adc restock)",
                    pocket=code,
                )
    return {
        "since": since.isoformat() if since else None,
        "pockets": len(by_pocket),
        "lots": sum(len(v) for v in by_pocket.values()),
    }


def escalation(ctl: Controller, cabinet: str) -> dict[str, Any]:
    from adc.controller.discrepancies import escalate_overdue

    before = len(ctl.delivery_errors)
    new = escalate_overdue(ctl)
    if new:
        with ctl.write(None, None) as tx:
            for disc_id in new:
                disc = tx.session.get(Discrepancy, disc_id)
                if disc is None:
                    continue
                pocket = tx.session.get(Pocket, disc.pocket_id)
                code = pocket.code if pocket else None
                notifications.notify(
                    tx,
                    disc.cabinet_id,
                    notifications.ESCALATED,
                    f"escalated:{disc_id}",
                    f"discrepancy {disc_id} (pocket {code}: expected {disc.expected}, counted "
                    f"{disc.counted}) is past its deadline and escalated: resolve it "
                    f"(adc discrepancy resolve {disc_id})",
                    pocket=code,
                )
    return {"escalated": new, "delivery_errors": ctl.delivery_errors[before:]}


def delivery(ctl: Controller, cabinet: str) -> dict[str, Any]:
    from adc.controller.shortages import deliver_pending

    before = len(ctl.delivery_errors)
    delivered = deliver_pending(ctl)
    return {"delivered": delivered, "errors": ctl.delivery_errors[before:]}


_JOBS = {EXPIRY: expiry_sweep, ESCALATION: escalation, DELIVERY: delivery}
