"""A fleet writing at once (issue 16): N writer processes on N cabinets, each doing removals and
refills through the controller (inventory.refill / inventory.remove, the hot path), on
PostgreSQL and on a SQLite file.

Prints, per backend and N: changes/s, the ratio to 1 writer (same run), the writer-lock wait
percentiles (timed around the lock the controller takes: PostgreSQL's cabinet lock, SQLite's
BEGIN IMMEDIATE), then checks the invariants (on-hand = Σ lots = Σ transactions for every
pocket) and verifies every audit chain and anchor. Then the stalled-writer figure on PostgreSQL:
another connection holds cabinet A's lock for --stall-s; the median time of a removal on
cabinet B during the stall against the same removal before it.

    createdb -h 127.0.0.1 -U postgres adc_fleet
    .venv/bin/python bench/fleet.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/adc_fleet \
        [--seconds 3] [--writers 1,2,4,8,16] [--stall-s 5]
    dropdb -h 127.0.0.1 -U postgres adc_fleet

The database at --pg is emptied first (its public schema dropped): give it one of its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adc.controller import cabinets, users
from tests.controller.site import (
    ACETAMINOPHEN,
    PIN,
    PROFILE,
    START,
    ManualClock,
    build_site,
    datamatrix,
)

POCKET = "D1-P1"


def _cabinet(i: int) -> str:
    return f"C{i:02d}"


def _build(url: str, cabinets_n: int) -> None:
    users.SCRYPT_N = 2**8  # logins are not what is measured
    site = build_site(url, with_cabinet=False)
    for i in range(cabinets_n):
        cabinets.add_cabinet(site.ctl, site.service, _cabinet(i), PROFILE)
        cabinets.assign_pocket(
            site.ctl,
            site.pharmacist,
            _cabinet(i),
            POCKET,
            ACETAMINOPHEN,
            par=40,
            critical_low=1,
            max_qty=50,
        )
    site.ctl.db.close()


def _timed_locks(waits: list[float]) -> None:
    """Record how long each writer-lock acquisition takes, in this process."""
    from adc.controller import db

    lock_pg, begin_sqlite = db._lock_postgresql, db.begin_immediate

    def timed_pg(scalar: Any, cabinets: Any) -> None:
        started = time.perf_counter()
        lock_pg(scalar, cabinets)
        waits.append(time.perf_counter() - started)

    def timed_sqlite(conn: Any, wait_s: float) -> None:
        started = time.perf_counter()
        begin_sqlite(conn, wait_s)
        waits.append(time.perf_counter() - started)

    db._lock_postgresql = timed_pg  # type: ignore[assignment]
    db.begin_immediate = timed_sqlite  # type: ignore[assignment]


def _sqlite_own_busy_handler(conn: Any, wait_s: float) -> None:
    """The baseline: BEGIN IMMEDIATE waiting in SQLite's own busy handler (its busy timeout)."""
    conn.execute("BEGIN IMMEDIATE")


def _writer(
    url: str, cabinet: str, seconds: float, barrier: Any, out: Any, own_busy: bool = False
) -> None:
    from adc.controller import inventory
    from adc.controller.context import Controller
    from adc.controller.db import open_database
    from adc.controller.gs1 import parse_scan

    waits: list[float] = []
    ctl = Controller(open_database(url), ManualClock(START))
    tech = users.authenticate(ctl, "technician", PIN)
    nurse = users.authenticate(ctl, "nurse", PIN)
    scan = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 6, 30), f"L{cabinet}"))
    if own_busy:
        from adc.controller import db

        db.begin_immediate = _sqlite_own_busy_handler  # type: ignore[assignment]
    _timed_locks(waits)
    barrier.wait()
    cpu = time.process_time()
    changes, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        inventory.refill(ctl, tech, cabinet, POCKET, scan, 2)
        inventory.remove(ctl, nurse, cabinet, POCKET, 2)
        changes += 2
    cpu = time.process_time() - cpu
    ctl.db.close()
    out.put((changes, waits, cpu))


def _run(
    url: str, writers: int, seconds: float, own_busy: bool = False
) -> tuple[float, list[float], float]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, _cabinet(i), seconds, barrier, out, own_busy))
        for i in range(writers)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    started = time.perf_counter()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    changes = sum(r[0] for r in results)
    waits = [w for r in results for w in r[1]]
    return changes / elapsed, waits, sum(r[2] for r in results) / max(changes, 1)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _check(url: str) -> str:
    from adc.controller.audit import verify_trail
    from adc.controller.context import Controller
    from adc.controller.db import open_database
    from tests.controller.site import Site
    from tests.fleet.fleet import stock_problems

    ctl = Controller(open_database(url), ManualClock(START))
    try:
        problems = stock_problems(Site(ctl=ctl, clock=ctl.clock, url=url))
        report = verify_trail(ctl)
    finally:
        ctl.db.close()
    if problems:
        return f"INVARIANT BROKEN: {problems[:3]}"
    return f"invariants hold; audit verify: {report.entries} entries, {len(report.chains)} chains, {report.anchors} anchors"


def _stall(url: str, stall_s: float) -> str:
    """A removal on cabinet B before and while another connection holds cabinet A's lock."""
    import psycopg
    from sqlalchemy.engine import make_url

    from adc.controller import inventory
    from adc.controller.context import Controller
    from adc.controller.db import cabinet_lock_sql, open_database
    from adc.controller.gs1 import parse_scan

    ctl = Controller(open_database(url), ManualClock(START))
    tech = users.authenticate(ctl, "technician", PIN)
    nurse = users.authenticate(ctl, "nurse", PIN)
    scan = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 6, 30), "LSTALL"))

    def change() -> float:
        started = time.perf_counter()
        inventory.refill(ctl, tech, _cabinet(1), POCKET, scan, 1)
        inventory.remove(ctl, nurse, _cabinet(1), POCKET, 1)
        return (time.perf_counter() - started) / 2

    before = [change() for _ in range(40)]
    parsed = make_url(url)
    holder = psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database
    )
    holder.execute(cabinet_lock_sql(1), (_cabinet(0),))
    release = threading.Timer(stall_s, holder.rollback)
    release.start()
    during: list[float] = []
    stall_end = time.monotonic() + stall_s - 0.5
    while time.monotonic() < stall_end:
        during.append(change())
    release.join()
    holder.close()
    ctl.db.close()
    b, d = statistics.median(before) * 1000, statistics.median(during) * 1000
    return (
        f"stalled writer ({stall_s:g} s on {_cabinet(0)}): a change on {_cabinet(1)} median "
        f"{b:.2f} ms before, {d:.2f} ms during ({len(during)} changes, max "
        f"{max(during) * 1000:.1f} ms): +{d - b:.2f} ms"
    )


def _fleet_report(url: str, total: int) -> str:
    """`fleet_status` (what `adc report fleet` reads) once the site has `total` cabinets."""
    from adc.controller.context import Controller
    from adc.controller.db import open_database
    from adc.controller.fleet import fleet_status

    users.SCRYPT_N = 2**8
    ctl = Controller(open_database(url), ManualClock(START))
    service = users.authenticate(ctl, "service", PIN)
    with ctl.read() as session:
        from sqlalchemy import func, select

        from adc.controller.models import AuditEntry, Cabinet

        have = session.execute(select(func.count()).select_from(Cabinet)).scalar() or 0
    started = time.perf_counter()
    for i in range(have, total):
        cabinets.add_cabinet(ctl, service, _cabinet(i), PROFILE)
    built = time.perf_counter() - started
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        rows = fleet_status(ctl)
        timings.append(time.perf_counter() - started)
    with ctl.read() as session:
        entries = session.execute(select(func.count()).select_from(AuditEntry)).scalar()
    ctl.db.close()
    return (
        f"fleet report over {len(rows)} cabinets ({entries} audit entries; {total - have} "
        f"cabinets added in {built:.0f} s): median {statistics.median(timings) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", help="a PostgreSQL URL of a database of its own (emptied)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--writers", default="1,2,4,8,16")
    parser.add_argument("--stall-s", type=float, default=5.0)
    parser.add_argument(
        "--report-cabinets",
        type=int,
        default=0,
        help="then time the fleet report with this many cabinets (PostgreSQL; adds them)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.writers.split(",")]
    backends: list[tuple[str, str]] = []
    tmp = tempfile.TemporaryDirectory()
    backends.append(("sqlite", f"sqlite:///{tmp.name}/fleet.db"))
    if args.pg:
        from sqlalchemy import create_engine, text

        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        admin.dispose()
        backends.insert(0, ("postgresql", args.pg))
    print(f"{multiprocessing.cpu_count()} CPUs; {args.seconds:g} s per run; writers {counts}")
    for name, url in backends:
        _build(url, max(counts))
        base = None
        for n in counts:
            rate, waits, cpu = _run(url, n, args.seconds)
            base = base or rate
            print(
                f"{name:10s} {n:2d} writers on {n:2d} cabinets: {rate:7.1f} changes/s "
                f"({rate / base:4.2f}x 1 writer); lock wait p50 {_pct(waits, 0.5):.2f} ms, "
                f"p99 {_pct(waits, 0.99):.2f} ms, max {max(waits) * 1000:.1f} ms; "
                f"writer CPU {cpu * 1000:.2f} ms/change",
                flush=True,
            )
        if name == "sqlite":
            n = max(counts)
            rate, waits, cpu = _run(url, n, args.seconds, own_busy=True)
            print(
                f"{name:10s} {n:2d} writers, SQLite's own busy handler (baseline): {rate:7.1f} "
                f"changes/s; lock wait p50 {_pct(waits, 0.5):.2f} ms, p99 "
                f"{_pct(waits, 0.99):.2f} ms, max {max(waits) * 1000:.1f} ms",
                flush=True,
            )
        print(f"{name:10s} {_check(url)}", flush=True)
        if name == "postgresql" and args.stall_s > 0:
            print(f"{name:10s} {_stall(url, args.stall_s)}", flush=True)
        if name == "postgresql" and args.report_cabinets:
            print(f"{name:10s} {_fleet_report(url, args.report_cabinets)}", flush=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
