"""KPIs of a finished run, from the controller's records (the database) and the run's ground truth.

What the controller recorded is read from its tables (transactions by kind, discrepancies and
their deadlines, shortage notifications, pulls, the audit chain); what only the simulation knows
(demand, injected errors and faults, which alarm found which fault, time out of stock) comes from
the world. Everything is rounded and sorted so the same run gives the same `kpis.json`, byte for
byte: no wall-clock time, no random session ids, no hashes that depend on them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select

from adc.controller.audit import verify_trail
from adc.controller.models import (
    Discrepancy,
    DiscrepancyStatus,
    Item,
    Pocket,
    Shortage,
    StockLot,
    Transaction,
    TxnKind,
)
from adc.controller.stock import is_held
from adc.errors import CheckFailed
from adc.sim.scenario.world import World


def _label(item: Item) -> str:
    return f"{item.name} {item.strength} {item.form}"


def stock_outs(world: World) -> dict[str, dict[str, float]]:
    """Per item: how often a pocket of it ran out (the controller's on-hand reached 0) and for
    how many hours in all, over the scenario's days (the go-live excluded)."""
    end = world.horizon_s
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"stock_outs": 0, "hours_out": 0.0})
    for (cabinet, pocket), series in world.levels.items():
        label = world.stations[cabinet].pockets[pocket].item.label
        entry = out[label]
        for index, (t, on_hand) in enumerate(series):
            if on_hand != 0:
                continue
            until = series[index + 1][0] if index + 1 < len(series) else end
            start = max(t, world.t0)
            if until > start:
                entry["hours_out"] += (until - start) / 3600
            if t >= world.t0:
                entry["stock_outs"] += 1
    return {
        label: {"stock_outs": int(v["stock_outs"]), "hours_out": round(v["hours_out"], 2)}
        for label, v in sorted(out.items())
        if v["stock_outs"] or v["hours_out"]
    }


def compute_kpis(world: World) -> dict[str, Any]:
    ctl = world.ctl
    end = ctl.now()
    with ctl.read() as session:
        by_kind = dict(
            session.execute(select(Transaction.kind, func.count()).group_by(Transaction.kind)).all()
        )
        discrepancies = session.execute(
            select(
                Discrepancy.status, Discrepancy.deadline, Discrepancy.resolved_at, Pocket.kind
            ).join(Pocket, Pocket.id == Discrepancy.pocket_id)
        ).all()
        shortages = dict(
            session.execute(select(Shortage.kind, func.count()).group_by(Shortage.kind)).all()
        )
        pulled = session.execute(
            select(Transaction.reason, func.sum(-Transaction.qty))
            .where(Transaction.kind == TxnKind.PULL.value)
            .group_by(Transaction.reason)
        ).all()
        expired_left = session.execute(
            select(func.coalesce(func.sum(StockLot.qty), 0)).where(
                is_held(), StockLot.expiry < ctl.today()
            )
        ).scalar_one()
        lots_held = session.execute(select(StockLot.gtin, StockLot.lot).distinct()).all()
    opened: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    for status, deadline, resolved_at, kind in discrepancies:
        opened[kind] += 1
        if status == DiscrepancyStatus.RESOLVED.value:
            resolved[kind] += 1
        if deadline is not None and (
            (resolved_at is None and deadline < end) or (resolved_at and resolved_at > deadline)
        ):
            overdue[kind] += 1
    pulled_by = {reason or "": int(units or 0) for reason, units in pulled}
    try:
        report = verify_trail(ctl)
        audit = {"verified": True, "entries": report.entries}
    except CheckFailed as err:
        audit = {"verified": False, "error": err.message}
    counters = world.counters
    events = Counter(e["event"] for e in world.events)
    refused = [e for e in world.events if e["event"] == "remove_refused"]
    faults_injected = Counter(f.kind for f in world.faults)
    faults_detected = Counter(f.kind for f in world.faults if f.detected_at is not None)
    detect_min: dict[str, list[float]] = defaultdict(list)
    for fault in world.faults:
        if fault.detected_at is not None:
            detect_min[fault.kind].append((fault.detected_at - fault.at) / 60)
    outs = stock_outs(world)
    held = set(lots_held)
    kpis: dict[str, Any] = {
        "scenario": world.loaded.scenario.name,
        "seed": world.seed,
        "days": world.days,
        "cabinets": len(world.stations),
        "pockets": sum(len(s.pockets) for s in world.stations.values()),
        "transactions": dict(sorted(by_kind.items())),
        "transactions_total": sum(by_kind.values()),
        "removals": {
            "demanded": int(counters.get("demand", 0)),
            "recorded": int(counters.get("removals", 0)),
            "refused": len(refused),
            "refused_out_of_stock": sum("cannot remove" in e["reason"] for e in refused),
            "refused_expired": sum("expired lot" in e["reason"] for e in refused),
            "refused_recalled": sum("recalled lot" in e["reason"] for e in refused),
            "refused_out_of_service": sum("out of service" in e["reason"] for e in refused),
            "found_short": events["found_short"],
            "failed_hardware": events["remove_failed"],
            "mean_wait_s": round(
                counters.get("nurse_wait_s", 0.0) / max(counters.get("demand", 0), 1), 2
            ),
        },
        "stock_outs": {
            "total": sum(v["stock_outs"] for v in outs.values()),
            "hours_out": round(sum(v["hours_out"] for v in outs.values()), 2),
            "by_item": outs,
        },
        "critical_low_events": int(shortages.get("critical-low", 0)),
        "stock_out_notifications": int(shortages.get("stock-out", 0)),
        "refill": {
            "lines": int(counters.get("lines:refill", 0)),
            "units": int(counters.get("units:refill", 0)),
            "pull_lines": int(counters.get("lines:pull", 0)),
            "load_lines": int(counters.get("lines:load", 0)),
            "rounds": events["refill_round"],
            "skipped_rounds": events["refill_skipped"],
            "technician_minutes": round(counters.get("technician_s", 0.0) / 60, 1),
        },
        "discrepancies": {
            "opened": dict(sorted(opened.items())),
            "resolved": dict(sorted(resolved.items())),
            "overdue": dict(sorted(overdue.items())),
            "total_opened": sum(opened.values()),
            "resolution": world.resolver_name,
        },
        "human_errors": {
            "miscounts_on_blind_counted": int(counters.get("miscounts_injected_blind", 0)),
            "miscounts_elsewhere": int(counters.get("miscounts_hidden", 0)),
            "wrong_pocket": int(counters.get("wrong_pocket_injected", 0)),
            "drawer_left_open": int(counters.get("left_open_injected", 0)),
            "left_open_alarms": int(counters.get("left_open_alarms", 0)),
        },
        "expired_units_wasted": pulled_by.get("expired", 0) + int(expired_left),
        "expired_units": {"pulled": pulled_by.get("expired", 0), "left": int(expired_left)},
        "recalls": {
            "recalls": len(world.recalled),
            "lots_blocked": sum(1 for key in world.recalled if key in held),
            "pockets_blocked": int(counters.get("recall_pockets_blocked", 0)),
            "units_pulled": pulled_by.get("recalled", 0),
            "removals_refused": sum("recalled lot" in e["reason"] for e in refused),
        },
        "faults": {
            "injected": dict(sorted(faults_injected.items())),
            "detected": dict(sorted(faults_detected.items())),
            "total_injected": len(world.faults),
            "total_detected": sum(faults_detected.values()),
            "mean_minutes_to_detect": {
                kind: round(sum(v) / len(v), 1) for kind, v in sorted(detect_min.items())
            },
            "alarms": int(counters.get("alarms", 0)),
            "recoveries": int(counters.get("recoveries", 0)),
        },
        "audit": audit,
    }
    return kpis


def kpis_json(kpis: dict[str, Any]) -> str:
    """The one byte-exact text of a KPI set (what `kpis.json` holds)."""
    return json.dumps(kpis, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def kpi_rows(kpis: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, figure) rows for the table `adc sim run` prints."""
    rem, disc, faults, refill = (
        kpis["removals"],
        kpis["discrepancies"],
        kpis["faults"],
        kpis["refill"],
    )
    tx = ", ".join(f"{k} {v}" for k, v in kpis["transactions"].items())
    rows = [
        ("transactions", f"{kpis['transactions_total']} ({tx})"),
        (
            "removals",
            f"{rem['recorded']} of {rem['demanded']} wanted; refused {rem['refused']} "
            f"(out of stock {rem['refused_out_of_stock']}, expired {rem['refused_expired']}, "
            f"recalled {rem['refused_recalled']}, out of service {rem['refused_out_of_service']})",
        ),
        (
            "stock-outs",
            f"{kpis['stock_outs']['total']}, {kpis['stock_outs']['hours_out']} h out of stock",
        ),
    ]
    for label, v in list(kpis["stock_outs"]["by_item"].items())[:8]:
        rows.append((f"  {label}", f"{v['stock_outs']} out, {v['hours_out']} h"))
    rows += [
        ("critical-low events", str(kpis["critical_low_events"])),
        (
            "refill",
            f"{refill['lines']} lines, {refill['units']} units, {refill['pull_lines']} pulls, "
            f"{refill['rounds']} rounds, {refill['technician_minutes']} technician min",
        ),
        (
            "discrepancies",
            "opened "
            + _by_kind(disc["opened"])
            + "; resolved "
            + _by_kind(disc["resolved"])
            + "; overdue "
            + _by_kind(disc["overdue"])
            + f" (resolution: {disc['resolution']})",
        ),
        (
            "expired units wasted",
            f"{kpis['expired_units_wasted']} (pulled {kpis['expired_units']['pulled']}, "
            f"still in pockets {kpis['expired_units']['left']})",
        ),
        (
            "recalled lots blocked",
            f"{kpis['recalls']['lots_blocked']} of {kpis['recalls']['recalls']} recalls; "
            f"{kpis['recalls']['pockets_blocked']} pockets, "
            f"{kpis['recalls']['units_pulled']} units pulled",
        ),
        (
            "faults",
            f"injected {faults['total_injected']}, detected {faults['total_detected']} "
            f"({_by_kind(faults['detected'])}); {faults['alarms']} alarms, "
            f"{faults['recoveries']} recoveries",
        ),
        (
            "audit chain",
            f"verified, {kpis['audit']['entries']} entries"
            if kpis["audit"]["verified"]
            else f"BROKEN: {kpis['audit']['error']}",
        ),
    ]
    return rows


def _by_kind(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "0"
