"""Controller benchmark: time per restock line, and the reports over a million transactions.

1. Restock lines (SQLite file, WAL, synchronous=FULL, audit on): a technician's session on the
   virtual cabinet (sim backend, in process). Timed per line:
   - `scan+verify+record`: `session.scan(raw)` (biip parse, wrong-drug / recall / expiry checks)
     plus `session.confirm_quantity()` (one locked transaction: lot, transaction, on-hand,
     shortage levels, audit entry, commit with fsync). Target: <= 5 ms.
   - `whole line`: the same plus select, unlock, the polls through open/settling/closed (driver
     calls included, the simulated person's time excluded).
   - the parts: parse alone, verify (scan minus parse), record alone.
2. Reports over generated history: 1,000,000 stock transactions, written with SQLAlchemy Core bulk
   inserts, with the pockets, lots, recalls and notifications such a history leaves (100 cabinets
   x 6 drawers x 50 pockets = 30,000 pockets, ~75,000 lots). The history is generated for timing
   only: it is not a replay of itself and carries no audit entries. Timed (best of 5, after one
   warm-up): refill list (all cabinets, and one cabinet), expiring within 30 days, open
   shortages. Target: <= 1 s each. And the diversion scores (`adc report diversion` without its
   login), last 30 days and the whole year: target <= 2 s (issue 18).

Run: /work/venv/bin/python bench/controller.py [--lines N] [--transactions N] [--db URL]
(`--db` puts part 2 on another database, e.g. an empty PostgreSQL one; part 1 is always a SQLite
file). Prints its figures; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from adc.controller import cabinets, formulary, users
from adc.controller.clock import ManualClock
from adc.controller.context import Controller
from adc.controller.db import init_database, open_database
from adc.controller.gs1 import GS, parse_scan
from adc.controller.inventory import count
from adc.controller.reports import expiring, refill_list
from adc.controller.restock import State, begin_restock
from adc.controller.shortages import list_shortages
from adc.drivers.registry import open_backend

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.reports, run as a script
FORMULARY = ROOT / "adc" / "data" / "formulary-demo.csv"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PIN = "2468"
LINE_TARGET_MS, REPORT_TARGET_S, DIVERSION_TARGET_S = 5.0, 1.0, 2.0


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(0.95 * (len(values) - 1))]
    return f"median {statistics.median(values) * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms"


class SimClock:
    """Controller time follows the virtual cabinet's SimPy time."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def now(self) -> datetime:
        return START + timedelta(seconds=self.driver.now)


def _site(url: str, clock: Any) -> tuple[Controller, dict[str, Any]]:
    db = open_database(url, create=True)
    init_database(db, clock.now())
    ctl = Controller(db, clock)
    users.add_user(ctl, None, "admin", "admin", PIN)
    admin = users.authenticate(ctl, "admin", PIN)
    actors = {"admin": admin}
    for role in ("pharmacist", "technician", "service"):
        users.add_user(ctl, admin, role, role, PIN)
        actors[role] = users.authenticate(ctl, role, PIN)
    formulary.import_items(ctl, actors["pharmacist"], FORMULARY)
    return ctl, actors


# ------------------------------------------------------------------------------ restock lines
def _empty(driver: Any, code: str) -> None:
    """A person takes everything out of a pocket (service access, outside the session)."""
    cabinet = driver.cabinet
    drawer, pocket = driver.profile.pocket(code)
    driver.advance(2.1)
    for lock in filter(None, (drawer.lock, pocket.lid_lock)):
        driver.pulse(lock)
    driver.advance(0.05)
    cabinet.sim_open(drawer.id)
    if pocket.lid_lock:
        cabinet.sim_open(code)
    if cabinet.units(code):
        cabinet.sim_take(code, len(cabinet.units(code)))
    cabinet.sim_close(drawer.id)
    driver.advance(0.5)


def bench_lines(lines: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="adc-bench-"))
    driver = open_backend("sim:tcp-6drawer?seed=7")
    cabinet = driver.cabinet  # type: ignore[attr-defined]
    ctl, actors = _site(f"sqlite:///{directory / 'bench.db'}", SimClock(driver))
    cabinets.add_cabinet(ctl, actors["service"], "W1", "tcp-6drawer")
    vial = "00304094755038"  # ondansetron 2 mg/mL vial, 4.6 g
    weighed = [
        p for d in ("D1", "D2", "D3", "D4") for p in (f"{d}-P1", f"{d}-P2", f"{d}-P3", f"{d}-P4")
    ]
    for code in weighed:
        cabinets.assign_pocket(
            ctl, actors["pharmacist"], "W1", code, vial, par=30, critical_low=2, max_qty=40
        )
    session = begin_restock(ctl, driver, "W1", actors["technician"])
    expiry = date(2027, 6, 30)
    raw = f"]d201{vial}17{expiry:%y%m%d}10LOT4471{GS}21SN000001"

    parse_t, scan_t, record_t, line_t, cpu_t = [], [], [], [], []
    for n in range(lines):
        code = weighed[n % len(weighed)]
        drawer = code.split("-")[0]
        units = 1 + n % 3
        driver.advance(2.1)  # the person walks on; the drawer's solenoid re-arms meanwhile
        began = time.perf_counter()
        controller = 0.0
        session.select(code)
        controller += time.perf_counter() - began
        t = time.perf_counter()
        parse_scan(raw)
        parse_t.append(time.perf_counter() - t)
        t, cpu = time.perf_counter(), time.process_time()
        session.scan(raw)
        scanned = time.perf_counter() - t
        cpu_scan = time.process_time() - cpu
        t = time.perf_counter()
        session.unlock()
        controller += scanned + time.perf_counter() - t
        driver.advance(0.05)
        assert cabinet.sim_open(drawer)
        if drawer in ("D3", "D4"):  # lidded pockets: the lid too
            assert cabinet.sim_open(code)
        driver.advance(0.1)
        t = time.perf_counter()
        assert session.poll() is State.OPEN
        controller += time.perf_counter() - t
        cabinet.sim_add(code, units, 4.6)
        cabinet.sim_close(drawer)
        driver.advance(0.5)
        for _ in range(50):
            t = time.perf_counter()
            state = session.poll()
            controller += time.perf_counter() - t
            if state is State.CLOSED:
                break
            driver.advance(0.1)
        else:
            raise RuntimeError(f"line {n}: the session did not see the pocket closed ({state})")
        t, cpu = time.perf_counter(), time.process_time()
        movement = session.confirm_quantity()
        recorded = time.perf_counter() - t
        cpu_t.append(cpu_scan + time.process_time() - cpu)
        controller += recorded
        assert movement.qty == units, movement
        scan_t.append(scanned)
        record_t.append(recorded)
        line_t.append(controller)
        if movement.on_hand > 36:  # empty the pocket again, untimed: in the cabinet and on record
            _empty(driver, code)
            count(ctl, actors["technician"], "W1", code, 0)
    both = [s + r for s, r in zip(scan_t, record_t, strict=True)]
    verify = [s - p for s, p in zip(scan_t, parse_t, strict=True)]
    print(f"restock lines: {lines} on a SQLite file (WAL, synchronous=FULL), audit on, sim backend")
    print(f"  scan+verify+record  {_ms(both)}   target <= {LINE_TARGET_MS:.0f} ms")
    print(f"    of it CPU time    {_ms(cpu_t)}   (the rest: fsync and waiting for a CPU)")
    print(f"  whole line          {_ms(line_t)}   (select, scan, unlock, polls, record)")
    print(f"    parse (biip)      {_ms(parse_t)}")
    print(f"    verify            {_ms(verify)}")
    print(f"    record + audit    {_ms(record_t)}")
    ctl.db.close()


# ---------------------------------------------------------------------------- big history
def generate_history(ctl: Controller, transactions: int, seed: int = 1) -> dict[str, int]:
    """100 cabinets x 6 drawers x 50 pockets, their lots, recalls, notifications, discrepancies
    and `transactions` stock transactions: bench/reports.py's fleet history, at this size."""
    from bench.reports import generate

    size = argparse.Namespace(cabinets=100, pockets=300, users=1, transactions=transactions)
    return generate(ctl, size, seed)


def _best(call: Callable[[], Any], repeat: int = 5) -> tuple[float, int]:
    call()  # warm-up: caches, first compile
    times, size = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        size = len(call())
        times.append(time.perf_counter() - t)
    return min(times), size


def _diversion(ctl: Controller, days: int) -> list[Any]:
    """`adc report diversion` over the last `days` (the analytics without login and audit). The
    generated history has one user, so this times the reading of the controlled-substance records
    (the demo formulary's scheduled items), not the peer statistics."""
    from adc.controller.diversion import rank_users
    from adc.controller.diversion_signals import Period

    now = ctl.now()
    return rank_users(ctl, Period(now - timedelta(days=days), now + timedelta(seconds=1)))


def bench_reports(url: str | None, transactions: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="adc-bench-"))
    url = url or f"sqlite:///{directory / 'history.db'}"
    ctl, _ = _site(url, ManualClock(START))
    t = time.perf_counter()
    counts = generate_history(ctl, transactions)
    generated = time.perf_counter() - t
    print(f"\nreports over generated history on {ctl.db.url}")
    print(
        f"  generated in {generated:.1f} s (Core bulk inserts): "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
    )
    for name, call in (
        ("refill list, all 100 cabinets", lambda: refill_list(ctl)),
        ("refill list, one cabinet", lambda: refill_list(ctl, "C0042")),
        ("expiring within 30 days", lambda: expiring(ctl, 30)),
        ("open shortages", lambda: list_shortages(ctl)),
        ("diversion scores, last 30 days", lambda: _diversion(ctl, 30)),
        ("diversion scores, whole year", lambda: _diversion(ctl, 366)),
    ):
        best, size = _best(call)
        target = DIVERSION_TARGET_S if name.startswith("diversion") else REPORT_TARGET_S
        flag = "ok" if best <= target else "OVER TARGET"
        print(
            f"  {name:32s} {best * 1000:8.1f} ms  ({size:,} rows)   target <= {target:.0f} s: {flag}"
        )
    ctl.db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="database URL for the reports part")
    args = parser.parse_args()
    users.SCRYPT_N = 2**14  # production PIN cost (logins are not timed)
    bench_lines(args.lines)
    bench_reports(args.db, args.transactions)


if __name__ == "__main__":
    main()
