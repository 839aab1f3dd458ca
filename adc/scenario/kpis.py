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
from adc.scenario.world import World


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


COLD_CHAIN_C = (2.0, 8.0)  # the range a fridge must hold its stock in


def cold_chain(world: World) -> dict[str, dict[str, float]]:
    """Per fridge pocket (`CABINET/POCKET`): the lowest and highest temperature its probe reads
    over the scenario's days and the hours outside 2-8 °C. The virtual fridge's temperature is the
    profile's `[sim] fridge_temperature_c + fridge_drift_c_per_h × hours` (docs/virtual-cabinet.md),
    a straight line, so its extremes are at the ends and the time outside is exact."""
    low, high = COLD_CHAIN_C
    start_h, end_h = world.t0 / 3600, world.horizon_s / 3600
    out: dict[str, dict[str, float]] = {}
    for cabinet, station in sorted(world.stations.items()):
        sim = station.profile.sim
        for _drawer, pocket in station.profile.pockets():
            if not getattr(pocket, "temperature", None):
                continue
            at_start = sim.fridge_temperature_c + sim.fridge_drift_c_per_h * start_h
            at_end = sim.fridge_temperature_c + sim.fridge_drift_c_per_h * end_h
            span_h = end_h - start_h
            if at_end == at_start:
                outside_h = span_h if not low <= at_start <= high else 0.0
            else:
                # hours of [start, end] the line spends inside [low, high]
                a, b = sorted(((low - at_start), (high - at_start)))
                slope = (at_end - at_start) / span_h
                t1, t2 = sorted((a / slope, b / slope))
                inside_h = max(0.0, min(t2, span_h) - max(t1, 0.0))
                outside_h = span_h - inside_h
            entry = {
                "min_c": round(min(at_start, at_end), 2),
                "max_c": round(max(at_start, at_end), 2),
                "hours_outside_2_8_c": round(outside_h, 2),
            }
            failures = [
                i
                for i in world.incidents
                if i.kind == "fridge_failure" and i.cabinet == cabinet and i.target == pocket.id
            ]
            if failures:
                entry = _failed_fridge(world, sim, failures)
            out[f"{cabinet}/{pocket.id}"] = entry
    return out


def _failed_fridge(world: World, sim: Any, failures: list[Any]) -> dict[str, float]:
    """A fridge that failed during the run (scripted `fridge_failure`): its probe is the
    profile's line plus the warming of each failure until its repair (docs/virtual-cabinet.md),
    sampled every 10 simulated seconds over the scenario's days."""
    low, high = COLD_CHAIN_C
    step = 10.0
    t, end = world.t0, world.horizon_s
    lowest, highest, outside = float("inf"), float("-inf"), 0
    while t <= end:
        base = sim.fridge_temperature_c + sim.fridge_drift_c_per_h * t / 3600
        celsius = base
        for f in failures:
            until = f.repaired_at if f.repaired_at is not None else float("inf")
            if f.at <= t < until:
                warmed = f.params.get("rate_c_per_h", 6.0) * (t - f.at) / 3600
                celsius = base + max(0.0, min(warmed, 22.0 - base))
        lowest, highest = min(lowest, celsius), max(highest, celsius)
        outside += not low <= celsius <= high
        t += step
    return {
        "min_c": round(lowest, 2),
        "max_c": round(highest, 2),
        "hours_outside_2_8_c": round(outside * step / 3600, 2),
    }


def by_cabinet(world: World, discrepancies_by_cabinet: dict[str, int]) -> dict[str, Any]:
    """The headline figures of each cabinet of the run (the site-wide KPIs split by cabinet)."""
    events: Counter[tuple[str, str]] = Counter()
    units_refilled: Counter[str] = Counter()
    for event in world.events:
        cabinet = event.get("cabinet")
        if cabinet is None:
            continue
        events[(cabinet, event["event"])] += 1
        if event["event"] == "restock_line" and event.get("kind") == "refill":
            units_refilled[cabinet] += int(event.get("units", 0))
    out_of_stock: Counter[str] = Counter()
    hours_out: Counter[str] = Counter()
    for (cabinet, _pocket), series in world.levels.items():
        for index, (t, on_hand) in enumerate(series):
            if on_hand != 0:
                continue
            until = series[index + 1][0] if index + 1 < len(series) else world.horizon_s
            start = max(t, world.t0)
            if until > start:
                hours_out[cabinet] += (until - start) / 3600
            if t >= world.t0:
                out_of_stock[cabinet] += 1
    return {
        cabinet: {
            "pockets": len(station.pockets),
            "removals": events[(cabinet, "removal")],
            "removals_refused": events[(cabinet, "remove_refused")],
            "stock_outs": out_of_stock[cabinet],
            "hours_out": round(hours_out[cabinet], 2),
            "refill_units": units_refilled[cabinet],
            "discrepancies_opened": discrepancies_by_cabinet.get(cabinet, 0),
            "faults_injected": sum(f.cabinet == cabinet for f in world.faults),
            "faults_detected": sum(
                f.cabinet == cabinet and f.detected_at is not None for f in world.faults
            ),
            "alarms": events[(cabinet, "alarm")],
        }
        for cabinet, station in sorted(world.stations.items())
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
                Discrepancy.status,
                Discrepancy.deadline,
                Discrepancy.resolved_at,
                Pocket.kind,
                Pocket.cabinet_id,
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
    opened_in: Counter[str] = Counter()
    for status, deadline, resolved_at, kind, cabinet_id in discrepancies:
        opened[kind] += 1
        opened_in[cabinet_id] += 1
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
        "by_cabinet": by_cabinet(world, dict(opened_in)),
        "cold_chain": cold_chain(world),
        "audit": audit,
    }
    if world.loaded.scenario.incidents:
        kpis["incidents"] = incidents(world)
    if world.loaded.scenario.diverters:  # planted diverters vs the diversion report
        from adc.scenario.diverters import detection_kpis

        kpis["diversion"] = detection_kpis(world)
    if world.loaded.scenario.study is not None:  # the study's record reconciles with on-hand
        from adc.scenario.study import study_kpis

        kpis["study"] = study_kpis(world, world.loaded.scenario.study)
    return kpis


def incidents(world: World) -> dict[str, Any]:
    """Each scripted incident: detected by the station's supervision (and how many simulated
    seconds after it happened) or missed by the end of the run."""
    rows = []
    for incident in world.incidents:
        at = incident.at - world.t0
        row: dict[str, Any] = {
            "id": incident.id,
            "cabinet": incident.cabinet,
            "kind": incident.kind,
            "target": incident.target,
            "day": int(at // 86400),
            "at_s": round(at, 3),
            "detected": incident.detected_at is not None,
            "seconds_to_detect": None
            if incident.detected_at is None
            else round(incident.detected_at - incident.at, 3),
            "alarm": incident.detected_by,
        }
        rows.append(row)
    detected = [r for r in rows if r["detected"]]
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        entry = by_kind.setdefault(r["kind"], {"scripted": 0, "detected": 0, "missed": 0})
        entry["scripted"] += 1
        entry["detected" if r["detected"] else "missed"] += 1
    return {
        "scripted": len(rows),
        "detected": len(detected),
        "missed": len(rows) - len(detected),
        "by_kind": dict(sorted(by_kind.items())),
        "list": rows,
    }


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
    # Item names go in the figure column, where a narrow terminal wraps them at spaces; the KPI
    # column holds only short names, so it never has to be cut.
    for index, (label, v) in enumerate(list(kpis["stock_outs"]["by_item"].items())[:8]):
        what = "  by item" if index == 0 else ""
        rows.append((what, f"{label}: {v['stock_outs']} out, {v['hours_out']} h"))
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
    ]
    per_cabinet = kpis.get("by_cabinet", {})
    if len(per_cabinet) > 1:
        for index, (cabinet, c) in enumerate(per_cabinet.items()):
            rows.append(
                (
                    "by cabinet" if index == 0 else "",
                    f"{cabinet}: {c['removals']} removals ({c['removals_refused']} refused), "
                    f"{c['stock_outs']} stock-outs ({c['hours_out']} h), "
                    f"{c['discrepancies_opened']} discrepancies, faults "
                    f"{c['faults_detected']} of {c['faults_injected']} detected, "
                    f"{c['alarms']} alarms",
                )
            )
    for index, (pocket, f) in enumerate(kpis.get("cold_chain", {}).items()):
        rows.append(
            (
                "cold chain" if index == 0 else "",
                f"{pocket}: {f['min_c']}–{f['max_c']} °C, "
                f"{f['hours_outside_2_8_c']} h outside 2–8 °C",
            )
        )
    inc = kpis.get("incidents")
    if inc:
        rows.append(
            (
                "incidents",
                f"{inc['detected']} of {inc['scripted']} detected by supervision, "
                f"{inc['missed']} missed",
            )
        )
        for r in inc["list"]:
            seen = f"detected after {r['seconds_to_detect']:g} s" if r["detected"] else "MISSED"
            rows.append(("", f"{r['kind']} {r['cabinet']} {r['target'] or ''}: {seen}"))
    rows += [
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
