"""Every report over a fleet's history: 1,000 cabinets and 1,000,000 transactions (issue 16).

Generates, with bulk inserts (PostgreSQL: COPY for the transactions; SQLite: executemany), a
fleet of `--cabinets` cabinets (6 drawers x `--pockets`/6 pockets each), ~2.5 lots a pocket,
`--users` nurses who each work mostly on a few cabinets, `--transactions` stock transactions over
a year (a fifth of the pockets hold a controlled item), and what such a history leaves: shortage
notifications, recalls, discrepancies (open and closed), alarms and drawer failures, quarantines.
The history is for timing only: no audit entries, not a replay of itself.

Then times every report's controller query as `adc report …` runs it (best of `--repeat`, after
a warm-up), for every cabinet and for a `--cabinet` list of 10, on SQLite and on PostgreSQL:
refill, expiring (30 d), shortages, recalls, discrepancies, cs-activity (last 30 days),
diversion scores (last 30 days; without its login and audit), quarantine, fleet.
Goals: <= 1 s each (issue 4), the diversion scores <= 2 s (issue 18).

Run: .venv/bin/python bench/reports.py [--db-url URL] [--sqlite-only] [--transactions N]
  PostgreSQL: --db-url, else ADC_TEST_DATABASE_URL; the run makes its own schema and drops it.
Prints its figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

from adc.controller import formulary, users
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import init_database, open_database
from adc.controller.gs1 import gtin_for_ndc
from adc.controller.models import (
    Cabinet,
    Discrepancy,
    Drawer,
    Item,
    ItemGtin,
    MaintenanceEvent,
    Pocket,
    Recall,
    Shortage,
    StockLot,
    Transaction,
    User,
)
from adc.controller.station_tables import Quarantine

ROOT = Path(__file__).resolve().parents[1]
FORMULARY = ROOT / "adc" / "data" / "formulary-demo.csv"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PIN = "2468"
REPORT_GOAL_S, DIVERSION_GOAL_S = 1.0, 2.0
DRAWERS = 6


# ------------------------------------------------------------------------------------ databases
@contextmanager
def sqlite_url() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="adc-bench-reports-"))
    path = directory / "fleet.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        directory.rmdir()


@contextmanager
def postgres_url(base: str) -> Iterator[str]:
    """A schema of its own on the server of `base`, dropped afterwards."""
    schema = f"adc_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# ----------------------------------------------------------------------------------- generation
def _bulk(conn: Any, table: Any, rows: list[dict[str, Any]], batch: int = 20_000) -> None:
    for start in range(0, len(rows), batch):
        conn.execute(insert(table), rows[start : start + batch])


def _copy(conn: Any, table: Any, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    """PostgreSQL COPY … FROM STDIN through psycopg (the fastest bulk load)."""
    raw = conn.connection.dbapi_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as cp,
    ):
        for row in rows:
            cp.write_row(row)


def generate(ctl: Controller, args: argparse.Namespace, seed: int = 1) -> dict[str, int]:
    rnd = random.Random(seed)
    now, today = ctl.now(), ctl.today()
    pg = ctl.db.dialect == "postgresql"
    per_drawer = max(1, args.pockets // DRAWERS)
    with ctl.read() as session:
        admin_id, pin_hash = session.execute(select(User.id, User.pin_hash).limit(1)).one()
    counts: dict[str, int] = {}
    with ctl.db.engine.begin() as conn:
        if pg:  # the controller's sessions time out a long statement; this load is one
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            conn.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
        _bulk(
            conn,
            Item.__table__,
            [
                {
                    "name": f"Generated {n}",
                    "strength": "1 mg",
                    "form": "tablet",
                    "ndc": f"77{n:08d}",
                    "schedule": None,
                    "high_alert": False,
                    "unit_weight_g": 0.5,
                    "active": True,
                }
                for n in range(264)
            ],
        )
        items = conn.execute(select(Item.id, Item.ndc, Item.schedule)).all()
        _bulk(
            conn,
            ItemGtin.__table__,
            [
                {"gtin": gtin_for_ndc(ndc), "item_id": i}
                for i, ndc, _ in items
                if ndc and ndc.startswith("77")
            ],
        )
        gtin_of = dict(conn.execute(select(ItemGtin.item_id, ItemGtin.gtin)).all())
        plain = [i for i, _, schedule in items if schedule is None]
        controlled = [i for i, _, schedule in items if schedule is not None]
        _bulk(
            conn,
            User.__table__,
            [
                {
                    "username": f"nurse{u:04d}",
                    "full_name": "",
                    "role": "nurse",
                    "pin_hash": pin_hash,
                    "failed_attempts": 0,
                    "locked": False,
                    "active": True,
                    "created_at": now,
                }
                for u in range(args.users)
            ],
        )
        nurses = conn.execute(select(User.id).where(User.role == "nurse")).scalars().all()
        cab_ids = [f"C{c:04d}" for c in range(args.cabinets)]
        _bulk(
            conn,
            Cabinet.__table__,
            [
                {
                    "id": c,
                    "profile_name": "generated",
                    "profile_path": "-",
                    "description": "",
                    "created_at": now,
                }
                for c in cab_ids
            ],
        )
        _bulk(
            conn,
            Drawer.__table__,
            [
                {
                    "cabinet_id": c,
                    "code": f"D{d}",
                    "position": d,
                    "lock_point": f"dio1:coil.{d}",
                    "switch_point": f"dio1:di.{d}",
                    "light_point": None,
                }
                for c in cab_ids
                for d in range(DRAWERS)
            ],
        )
        drawers = conn.execute(select(Drawer.id, Drawer.cabinet_id, Drawer.position)).all()
        pockets = []
        for drawer_id, cab, d in drawers:
            for p in range(per_drawer):
                par = rnd.randint(5, 30)
                item = rnd.choice(controlled) if rnd.random() < 0.2 else rnd.choice(plain)
                pockets.append(
                    {
                        "cabinet_id": cab,
                        "drawer_id": drawer_id,
                        "code": f"D{d}-P{p}",
                        "position": d * per_drawer + p,
                        "kind": "matrix",
                        "capacity": 100,
                        "sensor_kind": "weight",
                        "sensor_point": "lc1:ch.0",
                        "item_id": item,
                        "par": par,
                        "critical_low": max(1, par // 5),
                        "max_qty": par + 10,
                        "on_hand": 0,
                    }
                )
        _bulk(conn, Pocket.__table__, pockets)
        pocket_rows = conn.execute(
            select(
                Pocket.id,
                Pocket.cabinet_id,
                Pocket.item_id,
                Pocket.par,
                Pocket.critical_low,
                Pocket.code,
            )
        ).all()
        lots, on_hand = [], {}
        for pid, _cab, item_id, par, _crit, _code in pocket_rows:
            total = rnd.randint(0, par + 5)
            on_hand[pid] = total
            split = sorted(rnd.sample(range(1, total), min(2, total - 1))) if total > 2 else []
            bounds = [0, *split, total]
            for k in range(len(bounds) - 1):
                lots.append(
                    {
                        "pocket_id": pid,
                        "item_id": item_id,
                        "gtin": gtin_of.get(item_id, "00000000000000"),
                        "lot": f"L{rnd.randint(1000, 9999)}",
                        "expiry": today + timedelta(days=rnd.randint(-20, 700)),
                        "qty": bounds[k + 1] - bounds[k],
                        "received_at": now,
                    }
                )
        _bulk(conn, StockLot.__table__, lots)
        conn.exec_driver_sql(
            "UPDATE pocket SET on_hand = (SELECT COALESCE(SUM(qty), 0) FROM stock_lot "
            "WHERE stock_lot.pocket_id = pocket.id)"
        )
        lot_rows = conn.execute(
            select(StockLot.id, StockLot.pocket_id, StockLot.gtin, StockLot.lot)
        )
        lot_rows = lot_rows.all()
        recalled = {(gtin, lot) for _, _, gtin, lot in rnd.sample(lot_rows, 50)}
        _bulk(
            conn,
            Recall.__table__,
            [
                {
                    "gtin": g,
                    "lot": lot,
                    "reason": "bench",
                    "created_by": admin_id,
                    "created_at": now,
                }
                for g, lot in sorted(recalled)
            ],
        )
        notes, discrepancies, events, quarantines = [], [], [], []
        for pid, cab, item_id, par, crit, code in pocket_rows:
            base = {"cabinet_id": cab, "pocket_id": pid, "item_id": item_id}
            if on_hand[pid] <= crit:
                notes.append(
                    {
                        **base,
                        "kind": "stock-out" if on_hand[pid] == 0 else "critical-low",
                        "on_hand": on_hand[pid],
                        "par": par,
                        "critical_low": crit,
                        "status": "open",
                        "created_at": now - timedelta(hours=rnd.randint(0, 48)),
                        "resolved_at": None,
                        "delivered_at": None,
                    }
                )
            for _ in range(rnd.randint(0, 2)):
                notes.append(
                    {
                        **base,
                        "kind": "critical-low",
                        "on_hand": 1,
                        "par": par,
                        "critical_low": crit,
                        "status": "resolved",
                        "created_at": now - timedelta(days=rnd.randint(2, 365)),
                        "resolved_at": now - timedelta(days=1),
                        "delivered_at": now,
                    }
                )
            if rnd.random() < 0.05:  # a discrepancy in the year: 1 in 5 still open
                opened = now - timedelta(days=rnd.randint(0, 365))
                closed = rnd.random() < 0.8
                discrepancies.append(
                    {
                        **base,
                        "transaction_id": None,
                        "trigger": "count",
                        "expected": 5,
                        "counted": 4,
                        "status": "resolved" if closed else "open",
                        "opened_by": rnd.choice(nurses),
                        "opened_at": opened,
                        "deadline": opened + timedelta(hours=24),
                        "reason": "miscount" if closed else None,
                        "resolved_by": admin_id if closed else None,
                        "resolved_at": opened + timedelta(hours=2) if closed else None,
                        "witness_id": None,
                    }
                )
            if rnd.random() < 0.002:
                quarantines.append(
                    {
                        "cabinet_id": cab,
                        "pocket_id": pid,
                        "pocket_code": code,
                        "status": "open",
                        "reason": "fridge excursion",
                        "lots": "[]",
                        "placed_at": now - timedelta(hours=rnd.randint(1, 72)),
                    }
                )
        for cab in cab_ids:  # alarms over the year; a drawer failure in 1 cabinet of 50
            for _ in range(rnd.randint(0, 20)):
                events.append(
                    {
                        "cabinet_id": cab,
                        "drawer_code": f"D{rnd.randrange(DRAWERS)}",
                        "pocket_code": None,
                        "kind": rnd.choice(["alarm-door-ajar", "alarm-unauthorized-open"]),
                        "detail": "bench",
                        "user_id": None,
                        "at": now - timedelta(minutes=rnd.randint(0, 365 * 1440)),
                    }
                )
            if rnd.random() < 0.02:
                events.append(
                    {
                        "cabinet_id": cab,
                        "drawer_code": "D2",
                        "pocket_code": None,
                        "kind": "relock-failed",
                        "detail": "bench",
                        "user_id": None,
                        "at": now - timedelta(hours=3),
                    }
                )
        _bulk(conn, Shortage.__table__, notes)
        _bulk(conn, Discrepancy.__table__, discrepancies)
        _bulk(conn, MaintenanceEvent.__table__, events)
        _bulk(conn, Quarantine.__table__, quarantines)  # type: ignore[attr-defined]
        # transactions: a nurse works on the cabinets of her unit (5 cabinets a unit)
        pocket_of_lot = [(lot_id, pid) for lot_id, pid, _, _ in lot_rows]
        info = {pid: (cab, item) for pid, cab, item, *_ in pocket_rows}
        cab_index = {c: n for n, c in enumerate(cab_ids)}
        kinds = ["remove"] * 70 + ["refill"] * 20 + ["count"] * 5 + ["return", "waste", "pull"]
        kinds += ["load", "unload"]
        columns = ["at", "kind", "cabinet_id", "pocket_id", "item_id", "lot_id", "qty"]
        columns += ["user_id", "witness_id", "audit_seq"]
        unit = max(1, len(nurses) * 5 // max(1, len(cab_ids)))

        def rows() -> Iterator[tuple[Any, ...]]:
            for n in range(args.transactions):
                lot_id, pid = pocket_of_lot[rnd.randrange(len(pocket_of_lot))]
                cab, item = info[pid]
                kind = rnd.choice(kinds)
                first = (cab_index[cab] // 5) * unit
                user = nurses[(first + rnd.randrange(unit)) % len(nurses)]
                yield (
                    now - timedelta(seconds=rnd.randint(0, 365 * 86400)),
                    kind,
                    cab,
                    pid,
                    item,
                    lot_id,
                    -1 if kind in ("remove", "waste", "pull") else rnd.randint(1, 10),
                    user,
                    admin_id if kind == "waste" else None,
                    n + 100,
                )

        if pg:
            _copy(conn, Transaction.__table__, columns, rows())
            conn.exec_driver_sql("ANALYZE")
        else:
            batch: list[dict[str, Any]] = []
            for row in rows():
                batch.append(dict(zip(columns, row, strict=True)))
                if len(batch) == 50_000:
                    conn.execute(insert(Transaction.__table__), batch)
                    batch = []
            if batch:
                conn.execute(insert(Transaction.__table__), batch)
            conn.exec_driver_sql("ANALYZE")
    counts.update(
        cabinets=len(cab_ids),
        pockets=len(pockets),
        lots=len(lots),
        users=len(nurses),
        transactions=args.transactions,
        shortages=len(notes),
        discrepancies=len(discrepancies),
        events=len(events),
        quarantines=len(quarantines),
    )
    return counts


# ---------------------------------------------------------------------------------------- timing
def reports(ctl: Controller) -> list[tuple[str, float, Callable[[Any], list[Any]]]]:
    """(name, goal in seconds, call with the cabinets: None for all, or a list)."""
    from adc.controller.csreport import cs_activity, period
    from adc.controller.discrepancies import list_discrepancies
    from adc.controller.diversion import rank_users
    from adc.controller.diversion_signals import Period
    from adc.controller.fleet import fleet_status
    from adc.controller.quarantine import list_quarantines
    from adc.controller.recalls import recalled_stock
    from adc.controller.reports import expiring, refill_list
    from adc.controller.shortages import list_shortages

    since, until = period(ctl, None, None)  # the default period: the last 30 days
    return [
        ("refill", REPORT_GOAL_S, lambda c: refill_list(ctl, c)),
        ("expiring (30 d)", REPORT_GOAL_S, lambda c: expiring(ctl, 30, c)),
        ("shortages", REPORT_GOAL_S, lambda c: list_shortages(ctl, cabinet=c)),
        ("recalls", REPORT_GOAL_S, lambda c: recalled_stock(ctl, c)),
        ("discrepancies", REPORT_GOAL_S, lambda c: list_discrepancies(ctl, cabinet=c)),
        ("cs-activity (30 d)", REPORT_GOAL_S, lambda c: cs_activity(ctl, since, until, c)),
        ("diversion (30 d)", DIVERSION_GOAL_S, lambda c: rank_users(ctl, Period(since, until, c))),
        ("quarantine", REPORT_GOAL_S, lambda c: list_quarantines(ctl, c, open_only=True)),
        ("fleet", REPORT_GOAL_S, lambda c: fleet_status(ctl, c)),
    ]


def _best(call: Callable[[], list[Any]], repeat: int) -> tuple[float, int]:
    call()  # warm-up: caches, first compile
    times, size = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        size = len(call())
        times.append(time.perf_counter() - t)
    return min(times), size


def run(url: str, args: argparse.Namespace) -> None:
    db = open_database(url, create=True)
    init_database(db, NOW)
    ctl = Controller(db, ManualClock(NOW))
    users.add_user(ctl, None, "admin", "admin", PIN)
    admin = users.authenticate(ctl, "admin", PIN)
    users.add_user(ctl, admin, "pharmacist", "pharmacist", PIN)
    formulary.import_items(ctl, users.authenticate(ctl, "pharmacist", PIN), FORMULARY)
    t = time.perf_counter()
    counts = generate(ctl, args)
    if db.dialect == "postgresql":  # as autovacuum leaves a table: index-only scans possible
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("SET statement_timeout = 0")
            conn.exec_driver_sql("VACUUM ANALYZE")
    print(f"\n{db.dialect}: generated in {time.perf_counter() - t:.1f} s: ", end="")
    print(", ".join(f"{v:,} {k}" for k, v in counts.items()))
    rnd = random.Random(7)
    ten = sorted(rnd.sample([f"C{c:04d}" for c in range(args.cabinets)], 10))
    print(f"  {'report':20s} {'all cabinets':>24s} {'--cabinet list of 10':>24s}  goal")
    for name, goal, call in reports(ctl):
        every, rows_all = _best(lambda call=call: call(None), args.repeat)
        listed, rows_ten = _best(lambda call=call: call(ten), args.repeat)
        flag = "ok" if max(every, listed) <= goal else "OVER GOAL"
        print(
            f"  {name:20s} {every * 1000:9.1f} ms {rows_all:>8,} rows"
            f" {listed * 1000:9.1f} ms {rows_ten:>8,} rows  <= {goal:.0f} s {flag}"
        )
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", default=os.environ.get("ADC_TEST_DATABASE_URL"))
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--cabinets", type=int, default=1000)
    parser.add_argument("--pockets", type=int, default=120, help="pockets per cabinet")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    users.SCRYPT_N = 2**10  # logins are not timed
    if not args.postgres_only:
        with sqlite_url() as url:
            run(url, args)
    if args.sqlite_only:
        return
    if not args.db_url:
        print("\nPostgreSQL skipped: give --db-url or set ADC_TEST_DATABASE_URL")
        return
    with postgres_url(args.db_url) as url:
        run(url, args)


if __name__ == "__main__":
    main()
