"""The crash harness (issue 21): `adc` killed at random moments, then what the database says.

Shared by tests/hostile/test_crash.py (a few dozen kills) and bench/crash.py (hundreds).

Victims, each a real `python -m adc ...` process:
- `adc sim run` of a small ward scenario (`SIM_SCENARIO`) on a fresh SQLite file: the simulated
  nurses' withdrawals and the technician's restock lines all open access_log rows;
- scripted restock sessions (`adc restock --backend sim: --script FILE --json`) of many short
  lines on a site built once (`build_template`) and copied, run as a *chain* on one database:
  each session is killed, and the next session in the chain is the "next start" that has to flag
  what the killed one left open.

A kill is SIGKILL (or SIGTERM / SIGHUP, which the CLI handles like Ctrl-C) sent at a moment drawn
from a seeded RNG and spread over the command's runtime, measured once by an uncut calibration
run (`calibrate_*`). Most kills are aimed at the part of the run where accesses happen: after
the first `unlocked` JSON event of a restock session, after the database file appears for a sim
run; the rest anywhere from the spawn. Timing decides where a kill lands, so the counts vary from
run to run; the checks do not depend on where it landed.

After every kill (`check_after_kill`):
1. the audit chain verifies (the controller's `verify_trail`, what `adc audit verify` runs; the
   real command runs too at the end of every chain and after every sim kill's next start);
2. for every pocket, on_hand = Σ stock_lot.qty = Σ stock_transaction.qty, and every lot's qty is
   the sum of its transactions (sqlite3 on the file, not the product's code);
3. no half-records: every stock transaction's audit_seq is an existing audit entry, every
   `stock.*` audit entry has its transactions, every lot has a transaction, every discrepancy's
   transaction exists, every maintenance event is named by an audit entry, access_log rows are
   closed with an outcome or open without one, every `access.interrupted` entry names a row
   closed as interrupted;
4. every access_log row still open after the kill is flagged by the next start: closed with
   outcome 'interrupted', an `access.interrupted` audit entry naming it, a maintenance event of
   kind 'failed' on its drawer (the one the entry names), the drawer out of service
   (`maintenance.out_of_service`, what every unlock asks), the next start told the person; and a
   scripted restock of a pocket in that drawer is refused (once per chain, through the CLI).
   A session killed during its own start, after its recovery flagged a row but before its first
   event, is that row's next start: the flag is checked then (nobody was told: it died first).
Between kills of a chain the harness recovers every out-of-service drawer in-process (the
controller's recovery: a blind recount of each pocket at its recorded on-hand, then
`complete_recovery`), so the next session has drawers to open.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PIN = "2468"  # the PIN of every user of tests/controller/site.py and of a scenario's users
CABINET = "W1"

# ------------------------------------------------------------------------------- the victims
SIM_SCENARIO = """\
# crash harness: one busy day on one cabinet (tests/hostile/crashkit.py)
spec = "1.0"
name = "crash-ward"
seed = 5
days = 1
start = 2026-03-03

[[cabinets]]
id = "W1"
profile = "tcp-6drawer"
stock = [
  { pocket = "D1-P1", item = "00304094755038", par = 10, critical_low = 3, max = 30, demand_per_day = 30, initial = 8 },
  { pocket = "D1-P2", item = "00309046722618", par = 20, critical_low = 5, max = 50, demand_per_day = 40, initial = 15 },
  { pocket = "D2-P1", item = "00363323047016", par = 8, critical_low = 2, max = 20, demand_per_day = 20, initial = 6 },
  { pocket = "D4-P1", item = "00300080841815", par = 12, critical_low = 3, max = 30, demand_per_day = 20, initial = 8 },
  { pocket = "D6-P1", item = "00309045853610", par = 12, critical_low = 3, max = 30, demand_per_day = 20, initial = 8 },
]

[technicians]
refill_times = ["04:45", "10:30", "16:15", "21:30"]
"""

# (pocket, GTIN): the restock chains' pockets, none controlled (no count on access), in four
# drawers; weighed ones hold heavy packs (the virtual scale does not count light tablets one by one)
ONDANSETRON_VIAL = "00304094755038"  # 4.6 g
FUROSEMIDE_VIAL = "00304096102045"  # 6.1 g
HEPARIN = "00363323047016"  # 4.5 g
INSULIN_PEN = "00300028799598"  # 18.5 g
ACETAMINOPHEN = "00309046722618"  # in D6-P1: no scale, the quantity is entered
RESTOCK_POCKETS = [
    ("D1-P1", ONDANSETRON_VIAL),
    ("D1-P2", FUROSEMIDE_VIAL),
    ("D2-P1", HEPARIN),
    ("D4-P1", INSULIN_PEN),
    ("D6-P1", ACETAMINOPHEN),
]
PAR, CRITICAL_LOW, MAX_QTY = 40, 5, 50  # 50: the profile's pocket capacity
DRAIN_ABOVE, DRAIN_TO = 25, 5  # between two sessions of a chain a nurse takes the rest out


def hri(gtin: str, expiry: date, lot: str) -> str:
    return f"(01){gtin}(17){expiry:%y%m%d}(10){lot}"


def restock_script(rng: random.Random, lines: int, tag: str) -> str:
    """`lines` refill lines of 1–3 packs on the chain's pockets, some with a refused scan first."""
    expiry = datetime.now(UTC).date() + timedelta(days=400)
    blocks = [f'cabinet = "{CABINET}"\n']
    for n in range(lines):
        pocket, gtin = rng.choice(RESTOCK_POCKETS)
        scans = []
        if rng.random() < 0.15:
            wrong = HEPARIN if gtin != HEPARIN else ACETAMINOPHEN
            scans.append(hri(wrong, expiry, f"{tag}W{n}"))
        scans.append(hri(gtin, expiry, f"{tag}L{n}"))
        listed = ", ".join(json.dumps(s) for s in scans)
        blocks.append(
            f'[[line]]\npocket = "{pocket}"\nscans = [{listed}]\nquantity = {rng.randint(1, 3)}\n'
        )
    return "\n".join(blocks)


def clean_env(url: str, home: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ADC_")}
    return {
        **base,
        "ADC_DATABASE_URL": url,
        "ADC_HOME": str(home),
        "ADC_PIN": PIN,
        "COLUMNS": "120",
        "PYTHONUNBUFFERED": "1",  # JSON events reach the harness as they are written
        **extra,
    }


def adc(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real entry point, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "adc", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Victim:
    """One `adc` process and what became of it."""

    pid: int
    returncode: int
    events: list[dict[str, Any]]  # the JSON events it printed (a torn last line is dropped)
    times: list[float]  # when each arrived, seconds after the spawn
    stderr: str
    sent_at: float | None  # seconds after the spawn the signal went out (None: it had ended)
    wall: float  # spawn to exit
    hung: bool = False  # did not exit within the timeout after the signal (SIGKILLed then)
    marks: dict[str, float] = field(default_factory=dict)  # trigger name → seconds after spawn

    def saw(self, kind: str) -> bool:
        return any(e.get("event") == kind for e in self.events)


def as_at_a_terminal() -> None:
    """In the child before exec: Ctrl-C, SIGTERM and SIGHUP at their defaults, as for a command
    typed at a terminal, however the harness itself was started (a background job of a
    non-interactive shell starts with SIGINT ignored, `nohup` with SIGHUP ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def run_victim(
    args: list[str],
    env: dict[str, str],
    *,
    trigger: str = "spawn",
    nth: int = 1,
    offset: float = 0.0,
    sig: signal.Signals | None = signal.SIGKILL,
    watch_file: Path | None = None,
    timeout: float = 90.0,
) -> Victim:
    """Start `adc ARGS`, wait for the trigger ('spawn'; 'unlocked': the `nth` unlocked JSON event
    (an access is open from just before it until its line ends); 'file': `watch_file` exists),
    then `offset` seconds, then send `sig` (None: let it finish)."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adc", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=as_at_a_terminal,
    )
    out: list[str] = []
    err: list[str] = []
    marks: dict[str, float] = {}
    seen: list[float] = []
    times: list[float] = []
    unlocked = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            times.append(time.perf_counter() - began)
            if '"event": "unlocked"' in line:
                seen.append(time.perf_counter() - began)
                if len(seen) == nth:
                    marks["unlocked"] = seen[-1]
                    unlocked.set()
        unlocked.set()  # the end of its output: nothing more to wait for

    def read_err() -> None:
        assert proc.stderr is not None
        err.append(proc.stderr.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for reader in readers:
        reader.start()
    if trigger == "unlocked":
        unlocked.wait(timeout)
    elif trigger == "file":
        assert watch_file is not None
        while proc.poll() is None and not watch_file.exists():
            time.sleep(0.002)
        marks["file"] = time.perf_counter() - began
    if sig is not None:
        time.sleep(offset)
    sent_at = None
    if sig is not None and proc.poll() is None:
        sent_at = time.perf_counter() - began
        os.kill(proc.pid, sig)
    hung = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        hung = True
        proc.kill()
        proc.wait()
    wall = time.perf_counter() - began
    for reader in readers:
        reader.join(10)
    events, arrived = [], []
    for line, at in zip(out, times, strict=True):
        with suppress(ValueError):  # a line torn by the kill
            events.append(json.loads(line))
            arrived.append(at)
    return Victim(
        proc.pid, proc.returncode, events, arrived, "".join(err), sent_at, wall, hung, marks
    )


# --------------------------------------------------------------------------- the databases
def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextmanager
def controller(path: Path) -> Iterator[Any]:
    """The product's controller on the file, as `adc` opens it, on the wall clock."""
    from adc.commands.access import SystemClock
    from adc.controller.context import Controller
    from adc.controller.db import open_database

    ctl = Controller(open_database(sqlite_url(path)), SystemClock())
    try:
        yield ctl
    finally:
        ctl.db.close()


def build_template(path: Path) -> None:
    """The restock chains' site: tests/controller/site.py's users, formulary and cabinet W1
    (tcp-6drawer), with RESTOCK_POCKETS assigned (a chain's sessions fill them; `drain` empties them)."""
    from adc.controller import users
    from tests.controller.site import build_site

    class WallClock:
        def now(self) -> datetime:
            return datetime.now(UTC)

    before = users.SCRYPT_N
    users.SCRYPT_N = 2**8  # cheap PIN hashes: every victim logs in
    try:
        site = build_site(sqlite_url(path), WallClock())
        for pocket, gtin in RESTOCK_POCKETS:
            site.assign(pocket, gtin, par=PAR, critical_low=CRITICAL_LOW, max_qty=MAX_QTY)
        site.ctl.db.close()
        # Every run here is on a sim: backend, whose diagnostics record only against a simulated
        # cabinet (maintenance.check_record_source): W1 is this rig's virtual cabinet.
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE cabinet SET simulated = 1 WHERE id = ?", (CABINET,))
        conn.close()
    finally:
        users.SCRYPT_N = before
    checkpoint(path)


def checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so that copying the file copies the database."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def copy_db(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


def rows(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def initialised(path: Path) -> bool:
    """Whether the file holds an initialised adc database (a sim run killed while creating it
    does not)."""
    if not path.exists():
        return False
    tables = {r[0] for r in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        return False
    return bool(rows(path, "SELECT count(*) FROM schema_version")[0][0])


def has_cabinet(path: Path, cabinet: str = CABINET) -> bool:
    return bool(rows(path, "SELECT count(*) FROM cabinet WHERE id = ?", cabinet)[0][0])


def open_access_rows(path: Path) -> dict[int, tuple[str, str, str | None, str]]:
    """access_log rows not closed: id → (cabinet, drawer, pocket, owner)."""
    return {
        r[0]: (r[1], r[2], r[3], r[4])
        for r in rows(
            path,
            "SELECT id, cabinet_id, drawer_code, pocket_code, owner FROM access_log "
            "WHERE closed_at IS NULL",
        )
    }


# ------------------------------------------------------------------------------ the checks
def audit_problems(path: Path) -> list[str]:
    """1. The chain recomputes (what `adc audit verify` runs)."""
    from adc.controller.audit import verify_trail
    from adc.errors import AdcError

    try:
        with controller(path) as ctl:
            verify_trail(ctl)
    except AdcError as err:
        return [f"audit: {err.message}"]
    return []


def cli_audit_problems(path: Path, home: Path) -> list[str]:
    """1, through the real command: `adc audit verify` exits 0."""
    result = adc("audit", "verify", "--db", sqlite_url(path), env=clean_env(sqlite_url(path), home))
    if result.returncode != 0 or "Traceback" in result.stderr:
        return [
            f"adc audit verify exit {result.returncode}: {(result.stdout + result.stderr)[-400:]}"
        ]
    return []


def _maintenance_refs(path: Path) -> set[int]:
    """Maintenance event ids the audit trail names."""
    named: set[int] = set()
    for action, payload in rows(
        path,
        "SELECT action, payload FROM audit_entry WHERE action LIKE 'maintenance.%' "
        "OR payload LIKE '%maintenance_event%'",
    ):
        data = json.loads(payload)
        if not isinstance(data, dict):
            continue
        for key in ("maintenance_event",) + (("id",) if action.startswith("maintenance.") else ()):
            if isinstance(data.get(key), int):
                named.add(data[key])
        for key in ("failures_recorded", "cleared"):
            if action.startswith("maintenance.") and isinstance(data.get(key), list):
                named.update(v for v in data[key] if isinstance(v, int))
    return named


def invariant_problems(path: Path) -> list[str]:
    """2 and 3: stock adds up three ways, and nothing is half-written."""
    problems: list[str] = []
    for code, on_hand, lots, moved in rows(
        path,
        "SELECT p.cabinet_id || ':' || p.code, p.on_hand,"
        " (SELECT COALESCE(SUM(qty), 0) FROM stock_lot l WHERE l.pocket_id = p.id),"
        " (SELECT COALESCE(SUM(qty), 0) FROM stock_transaction t WHERE t.pocket_id = p.id)"
        " FROM pocket p",
    ):
        if not on_hand == lots == moved:
            problems.append(
                f"pocket {code}: on_hand {on_hand}, Σ lots {lots}, Σ transactions {moved}"
            )
    checks = {
        "lot whose qty is not the sum of its transactions": (
            "SELECT l.id || ': qty ' || l.qty || ', Σ ' || COALESCE(SUM(t.qty), 0) FROM stock_lot l"
            " LEFT JOIN stock_transaction t ON t.lot_id = l.id GROUP BY l.id"
            " HAVING l.qty != COALESCE(SUM(t.qty), 0)"
        ),
        # an abandoned line puts its scanned lot on record, empty, for the recovery's recount to
        # count into (restock.py `_scanned_lot_on_record`): audited as the abandon's lot_on_record
        "lot without any transaction (nor an abandoned line's empty lot on record)": (
            "SELECT l.id FROM stock_lot l JOIN pocket p ON p.id = l.pocket_id WHERE NOT EXISTS"
            " (SELECT 1 FROM stock_transaction t WHERE t.lot_id = l.id) AND NOT (l.qty = 0 AND"
            " EXISTS (SELECT 1 FROM audit_entry a WHERE a.action = 'restock.abandoned'"
            " AND json_extract(a.payload, '$.cabinet') = p.cabinet_id"
            " AND json_extract(a.payload, '$.pocket') = p.code"
            " AND json_extract(a.payload, '$.lot_on_record.gtin') = l.gtin"
            " AND json_extract(a.payload, '$.lot_on_record.lot') = l.lot))"
        ),
        "transaction moving stock of no lot": (
            "SELECT id FROM stock_transaction WHERE lot_id IS NULL AND qty != 0"
        ),
        "transaction on a lot of another pocket": (
            "SELECT t.id FROM stock_transaction t JOIN stock_lot l ON l.id = t.lot_id"
            " WHERE l.pocket_id != t.pocket_id"
        ),
        "transaction without its audit entry": (
            "SELECT t.id || ' (audit_seq ' || t.audit_seq || ')' FROM stock_transaction t"
            " WHERE NOT EXISTS (SELECT 1 FROM audit_entry a WHERE a.seq = t.audit_seq)"
        ),
        "stock audit entry without its transactions": (
            "SELECT a.seq || ' ' || a.action FROM audit_entry a WHERE a.action LIKE 'stock.%'"
            " AND NOT EXISTS (SELECT 1 FROM stock_transaction t WHERE t.audit_seq = a.seq)"
        ),
        "discrepancy naming a missing transaction": (
            "SELECT d.id FROM discrepancy d WHERE d.transaction_id IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM stock_transaction t WHERE t.id = d.transaction_id)"
        ),
        "access row closed without an outcome, or with one while open": (
            "SELECT id FROM access_log WHERE (closed_at IS NULL) != (outcome IS NULL)"
        ),
        "access.interrupted entry whose row is not closed as interrupted": (
            "SELECT a.seq FROM audit_entry a WHERE a.action = 'access.interrupted' AND NOT EXISTS"
            " (SELECT 1 FROM access_log x WHERE x.id = json_extract(a.payload, '$.access')"
            " AND x.outcome = 'interrupted')"
        ),
        "access row closed as interrupted without its access.interrupted entry": (
            "SELECT x.id FROM access_log x WHERE x.outcome = 'interrupted' AND NOT EXISTS"
            " (SELECT 1 FROM audit_entry a WHERE a.action = 'access.interrupted'"
            " AND json_extract(a.payload, '$.access') = x.id)"
        ),
    }
    for what, query in checks.items():
        found = [str(r[0]) for r in rows(path, query)]
        if found:
            problems.append(f"{what}: {', '.join(found[:10])}")
    events = {r[0] for r in rows(path, "SELECT id FROM maintenance_event")}
    unnamed = sorted(events - _maintenance_refs(path))
    if unnamed:
        problems.append(f"maintenance event without its audit entry: {unnamed[:10]}")
    return problems


def _closed_interrupted(path: Path, access: int) -> bool:
    """Whether the access_log row was closed by a start's recovery (outcome 'interrupted')."""
    return rows(path, "SELECT outcome FROM access_log WHERE id = ?", access) == [("interrupted",)]


def flag_problems(path: Path, opened: dict[int, tuple[str, str, str | None, str]]) -> list[str]:
    """4. Each row (open after a kill) was flagged by the next start."""
    from adc.controller.maintenance import out_of_service

    problems: list[str] = []
    cabinets = {cab for cab, *_ in opened.values()}
    with controller(path) as ctl:
        out = {cab: out_of_service(ctl, cab) for cab in cabinets}
    for access, (cab, drawer, pocket, _owner) in sorted(opened.items()):
        (closed_at, outcome) = rows(
            path, "SELECT closed_at, outcome FROM access_log WHERE id = ?", access
        )[0]
        if closed_at is None or outcome != "interrupted":
            problems.append(f"access {access} (drawer {drawer}) not flagged: outcome {outcome}")
            continue
        entries = rows(
            path,
            "SELECT seq, payload FROM audit_entry WHERE action = 'access.interrupted'"
            " AND json_extract(payload, '$.access') = ?",
            access,
        )
        if len(entries) != 1:
            problems.append(f"access {access}: {len(entries)} access.interrupted entries")
            continue
        event_id = json.loads(entries[0][1]).get("maintenance_event")
        event = rows(
            path,
            "SELECT cabinet_id, drawer_code, pocket_code, kind FROM maintenance_event WHERE id = ?",
            event_id,
        )
        if event != [(cab, drawer, pocket, "failed")]:
            problems.append(
                f"access {access}: its entry names maintenance event {event_id}: {event}, "
                f"not a 'failed' event on drawer {drawer} pocket {pocket}"
            )
        if drawer not in out[cab]:
            problems.append(f"access {access}: drawer {drawer} is not out of service")
    return problems


def told_problems(stderr: str, opened: dict[int, tuple[str, str, str | None, str]]) -> list[str]:
    """4. The next start (count, diag) said which drawers it flagged."""
    return [
        f"the next start did not say drawer {drawer} was flagged: {stderr[-300:]!r}"
        for drawer in sorted({d for _c, d, _p, _o in opened.values()})
        if f"drawer {drawer} flagged for a blind recount" not in stderr
    ]


def recover_drawers(path: Path, cabinet: str = CABINET) -> list[str]:
    """Return every out-of-service drawer to service, as `adc diag recover` does (a blind recount
    of each pocket; here at its recorded on-hand, which is what the database knows)."""
    from adc.controller import users
    from adc.controller.maintenance import (
        complete_recovery,
        out_of_service,
        recount,
        recovery_plan,
    )

    with controller(path) as ctl:
        service = users.authenticate(ctl, "service", PIN)
        counter = users.authenticate(ctl, "pharmacist", PIN)  # `adc diag recover --counter`
        drawers = sorted(out_of_service(ctl, cabinet))
        for drawer in drawers:
            plan = recovery_plan(ctl, cabinet, drawer)
            for line in plan.recount:
                (on_hand,) = rows(
                    path,
                    "SELECT on_hand FROM pocket WHERE cabinet_id = ? AND code = ?",
                    cabinet,
                    line.pocket,
                )[0]
                recount(ctl, counter, plan, line.pocket, on_hand)
            complete_recovery(ctl, service, plan, hardware="crash harness: no hardware to check")
    return drawers


def drain(path: Path, cabinet: str = CABINET) -> None:
    """A nurse takes doses out of every pocket fuller than DRAIN_ABOVE (the chain's sessions
    would fill them up otherwise), through the controller's removal."""
    from adc.controller import inventory, users

    with controller(path) as ctl:
        nurse = users.authenticate(ctl, "nurse", PIN)
        for code, on_hand in rows(
            path,
            "SELECT code, on_hand FROM pocket WHERE cabinet_id = ? AND on_hand > ?",
            cabinet,
            DRAIN_ABOVE,
        ):
            inventory.remove(ctl, nurse, cabinet, code, on_hand - DRAIN_TO)


def next_start_diag(
    path: Path, home: Path, cabinet: str = CABINET
) -> subprocess.CompletedProcess[str]:
    """A next start through the CLI: `adc diag sensors` on the registered cabinet (a recorded
    run: it recovers interrupted accesses before it samples)."""
    return adc(
        "diag",
        "sensors",
        "--cabinet",
        cabinet,
        "--user",
        "service",
        "--backend",
        "sim:",
        "--samples",
        "1",
        "--interval",
        "0",
        env=clean_env(sqlite_url(path), home),
    )


# ------------------------------------------------------------------------------ bookkeeping
AUDIT, INVARIANT, RECOVERY = "audit", "invariant", "recovery"


@dataclass
class Kill:
    victim: str  # sim · restock
    signal: str
    trigger: str  # spawn · file · unlocked#N
    offset: float
    landed: bool  # the signal reached a running process
    open_after: int = 0  # access rows open once it was gone
    note: str = ""


@dataclass
class Tally:
    kills: list[Kill] = field(default_factory=list)
    problems: dict[str, list[str]] = field(
        default_factory=lambda: {AUDIT: [], INVARIANT: [], RECOVERY: []}
    )
    notes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, where: str, category: str, found: list[str]) -> None:
        with self.lock:
            self.problems[category].extend(f"{where}: {p}" for p in found)

    def kill(self, kill: Kill) -> None:
        with self.lock:
            self.kills.append(kill)

    def note(self, what: str) -> None:
        with self.lock:
            self.notes[what] += 1

    def landed(self, sig: str = "SIGKILL") -> list[Kill]:
        return [k for k in self.kills if k.landed and k.signal == sig]

    def summary(self) -> dict[str, Any]:
        kills = self.landed("SIGKILL")
        stops = [k for k in self.kills if k.landed and k.signal != "SIGKILL"]
        return {
            "kills": len(kills),
            "kills_sim_run": sum(k.victim == "sim" for k in kills),
            "kills_restock": sum(k.victim == "restock" for k in kills),
            "kills_with_access_open": sum(k.open_after > 0 for k in kills),
            "access_rows_left_open": sum(k.open_after for k in kills),
            "missed (ended before the signal)": sum(not k.landed for k in self.kills),
            "sigterm_sighup": len(stops),
            "sigterm_sighup_mid_access": sum(k.note == "mid-access" for k in stops),
            "audit_failures": len(self.problems[AUDIT]),
            "invariant_failures": len(self.problems[INVARIANT]),
            "recovery_failures": len(self.problems[RECOVERY]),
            **{f"note: {k}": v for k, v in sorted(self.notes.items())},
        }


def check_db(tally: Tally, where: str, path: Path) -> None:
    tally.add(where, AUDIT, audit_problems(path))
    tally.add(where, INVARIANT, invariant_problems(path))


# ------------------------------------------------------------------------------- calibration
@dataclass
class Timing:
    """An uncut run: when its accesses begin (after the spawn) and how long it takes."""

    first: float  # the first unlocked event (restock) / the database file appears (sim run)
    busy_until: float  # its last event (restock) / its exit (sim run)
    total: float


def sim_args(scenario: Path, db: Path, days: float) -> list[str]:
    return ["sim", "run", str(scenario), "--db", sqlite_url(db), "--days", str(days), "--json"]


def restock_args(script: Path) -> list[str]:
    return ["restock", "--cabinet", CABINET, "--user", "technician", "--backend", "sim:",
            "--script", str(script), "--json"]  # fmt: skip


def calibrate_sim(work: Path, days: float) -> Timing:
    scenario = work / "crash-ward.toml"
    scenario.write_text(SIM_SCENARIO)
    db = work / "calibrate-sim.db"
    victim = run_victim(
        sim_args(scenario, db, days),
        clean_env(sqlite_url(db), work / "home"),
        trigger="file",
        watch_file=db,
        sig=None,
    )
    assert victim.returncode == 0, victim.stderr[-2000:]
    return Timing(victim.marks["file"], victim.wall, victim.wall)


def calibrate_restock(work: Path, template: Path, lines: int) -> Timing:
    db = work / "calibrate-restock.db"
    copy_db(template, db)
    script = work / "calibrate.toml"
    script.write_text(restock_script(random.Random(0), lines, "C"))
    victim = run_victim(
        restock_args(script),
        clean_env(sqlite_url(db), work / "home", ADC_USER="technician"),
        sig=None,
    )
    assert victim.returncode == 0 and "unlocked" in victim.marks, victim.stderr[-2000:]
    return Timing(victim.marks["unlocked"], victim.times[-1], victim.wall)


# ------------------------------------------------------------------------------ the campaigns
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}


def sim_kills(
    tally: Tally,
    work: Path,
    rng: random.Random,
    timing: Timing,
    kills: int,
    days: float,
    *,
    cli_next_start: str = "when-open",  # or "always"
    cli_audit: bool = False,  # `adc audit verify` after each next start too
    aimed: float = 0.75,
) -> None:
    """`kills` sim runs, each on a fresh file, each SIGKILLed; checks; a next start."""
    scenario = work / "crash-ward.toml"
    scenario.write_text(SIM_SCENARIO)
    home = work / "home"
    for n in range(kills):
        db = work / f"sim-{n}.db"
        where = f"{work.name}/sim-{n}"
        if rng.random() < aimed:
            trigger, offset = "file", rng.uniform(0, timing.total - timing.first)
        else:
            trigger, offset = "spawn", rng.uniform(0, timing.total)
        victim = run_victim(
            sim_args(scenario, db, days),
            clean_env(sqlite_url(db), home),
            trigger=trigger,
            offset=offset,
            watch_file=db,
        )
        keep(work / f"sim-{n}", victim)
        landed = victim.returncode == -signal.SIGKILL
        kill = Kill("sim", "SIGKILL", trigger, offset, landed)
        tally.kill(kill)
        if not landed:
            tally.note("sim run ended before its kill")
            if victim.returncode != 0:
                tally.add(where, INVARIANT, [f"uncut sim run exit {victim.returncode}"])
            continue
        if not initialised(db):
            tally.note("sim run killed before its database was initialised")
            continue
        check_db(tally, where, db)
        opened = open_access_rows(db)
        kill.open_after = len(opened)
        if not has_cabinet(db):
            if opened:
                tally.add(where, RECOVERY, [f"open access rows without a cabinet: {opened}"])
            continue
        if opened or cli_next_start == "always":
            result = next_start_diag(db, home)
            if "Traceback" in result.stderr or result.returncode not in (0, 1):
                tally.add(where, RECOVERY, [f"next start exit {result.returncode}: "
                                            f"{result.stderr[-600:]}"])  # fmt: skip
                continue
            tally.add(where, RECOVERY, told_problems(result.stderr, opened))
        else:
            tally.add(where, RECOVERY, in_process_next_start(db, opened))
        tally.add(where, RECOVERY, flag_problems(db, opened))
        tally.add(where, RECOVERY, leftover_problems(db))
        check_db(tally, where + " after the next start", db)
        if opened and cli_audit:
            tally.add(where, AUDIT, cli_audit_problems(db, home))


def in_process_next_start(path: Path, opened: dict[int, Any]) -> list[str]:
    """The next start's recovery, in this process (`recover_interrupted`, what restock, count
    and diag call first): it flags exactly the rows left open."""
    from adc.controller.access_log import recover_interrupted

    with controller(path) as ctl:
        found = recover_interrupted(ctl, CABINET)
    flagged = {f.access_id for f in found}
    return [] if flagged == set(opened) else [f"recovered {sorted(flagged)}, open {sorted(opened)}"]


def leftover_problems(path: Path) -> list[str]:
    left = open_access_rows(path)
    return [f"access rows still open after the next start: {sorted(left)}"] if left else []


def restock_moment(
    rng: random.Random, timing: Timing, lines: int, sig_name: str, aimed: float
) -> tuple[str, int, float]:
    """When to signal a session: (trigger, nth, offset). Aimed (share `aimed`, and every SIGTERM
    and SIGHUP): 70 % just after a random line's unlock (within 0.4 of a line's time, while its
    access is most likely still open), 30 % anywhere between the first unlock and the last
    event; the rest anywhere from the spawn to the exit."""
    span = max(timing.busy_until - timing.first, 0.05)
    if sig_name == "SIGKILL" and rng.random() >= aimed:
        return "spawn", 1, rng.uniform(0, timing.total)
    if rng.random() < 0.7:  # an unlock to its record takes about a third of a line's time
        return (
            "unlocked",
            rng.randint(1, max(lines * 3 // 4, 1)),
            rng.uniform(0, 0.4 * span / lines),
        )
    return "unlocked", 1, rng.uniform(0, span)


def restock_chain(
    tally: Tally,
    work: Path,
    template: Path,
    rng: random.Random,
    timing: Timing,
    plan: list[str],
    lines: int,
    *,
    aimed: float = 0.75,
) -> None:
    """A chain of scripted sessions on one database, the n-th signalled by plan[n]; each one's
    start is the next start of the one before it. Ends with a next start through `adc diag
    sensors`, a scripted restock of a pocket in a flagged drawer (refused), `adc audit verify`."""
    work.mkdir(parents=True, exist_ok=True)
    db = work / "chain.db"
    copy_db(template, db)
    home = work / "home"
    env = clean_env(sqlite_url(db), home, ADC_USER="technician")
    pending: dict[int, tuple[str, str, str | None, str]] = {}  # open after a kill, not yet flagged
    for n, sig_name in enumerate(plan):
        where = f"{work.name}/{n}"
        script = work / f"script-{n}.toml"
        script.write_text(restock_script(rng, lines, f"{work.name[-1]}{n}x"))
        trigger, nth, offset = restock_moment(rng, timing, lines, sig_name, aimed)
        victim = run_victim(
            restock_args(script),
            env,
            trigger=trigger,
            nth=nth,
            offset=offset,
            sig=SIGNALS[sig_name],
        )
        keep(work / f"victim-{n}", victim)
        if "Traceback" in victim.stderr:
            tally.add(where, RECOVERY, [f"traceback: {victim.stderr[-800:]}"])
        sig = SIGNALS[sig_name]
        kill = Kill("restock", sig_name, f"{trigger}#{nth}", offset, victim.sent_at is not None)
        tally.kill(kill)
        started = victim.saw("session")
        if started:  # its begin_restock recovered what the sessions before it left open
            tally.add(where, RECOVERY, flag_problems(db, pending))
            noted = {e.get("text", "") for e in victim.events if e.get("event") == "note"}
            for _cab, drawer, _pocket, _owner in pending.values():
                if not any(f"drawer {drawer} flagged for a blind recount" in t for t in noted):
                    tally.add(where, RECOVERY, [f"no note that drawer {drawer} was flagged"])
            refused_ok = _refused_in_flagged(victim, pending)
            if refused_ok is not None:
                tally.note("a following session refused a pocket of a flagged drawer")
                tally.add(where, RECOVERY, refused_ok)
            pending = {}
        elif pending:
            # Killed during its own start, before its first event: what that start had flagged
            # (each flag is committed on its own) is checked now, while the drawer is still out of
            # service, since the harness returns it to service before the next session; nobody
            # was told (the session died first), so there is no note to look for.
            flagged = {a: row for a, row in pending.items() if _closed_interrupted(db, a)}
            if flagged:
                tally.note("a session killed during its start had flagged what was left open")
                tally.add(where, RECOVERY, flag_problems(db, flagged))
                pending = {a: row for a, row in pending.items() if a not in flagged}
        if sig_name == "SIGKILL":
            if kill.landed and victim.returncode != -sig:
                kill.landed = False  # it had ended: the kill reached a zombie
            if not kill.landed and victim.returncode not in (0, 1):
                tally.add(where, RECOVERY, [f"uncut session exit {victim.returncode}"])
        else:
            mid = victim.saw("interrupted") or victim.saw("abandoned")
            kill.note = "mid-access" if mid else ""
            if victim.returncode == -sig and victim.saw("summary") and not open_access_rows(db):
                # it arrived while the interpreter was shutting down (Python restores the default
                # handlers then), after the session had ended and closed everything: harmless
                tally.note(f"{sig_name} after the session ended, during interpreter exit")
            elif victim.hung or victim.returncode < 0:
                tally.add(where, RECOVERY, [f"{sig_name}: did not exit by itself (exit "
                                            f"{victim.returncode}, hung {victim.hung})"])  # fmt: skip
            elif kill.landed and victim.returncode != 130 and not summary_before(victim):
                tally.add(where, RECOVERY, [f"{sig_name} mid-session: exit {victim.returncode}"])
        check_db(tally, where, db)
        opened = open_access_rows(db)
        kill.open_after = len(opened) if kill.landed else 0
        if sig_name != "SIGKILL" and opened:
            tally.note(f"{sig_name} left an access row open (flagged at the next start)")
        if started:  # what is open now is this session's own: its start flagged the rest
            foreign = sorted(
                a for a, (*_, owner) in opened.items() if owner_pid(owner) != victim.pid
            )
            if foreign:
                tally.add(where, RECOVERY, [f"rows open from before this session: {foreign}"])
        pending.update(opened)
        if n < len(plan) - 1:
            recover_drawers(db)
            drain(db)
    # the last next start, through the CLI, not killed
    where = f"{work.name}/final"
    result = next_start_diag(db, home)
    if "Traceback" in result.stderr or result.returncode not in (0, 1):
        tally.add(where, RECOVERY, [f"next start exit {result.returncode}: {result.stderr[-600:]}"])
    else:
        tally.add(where, RECOVERY, told_problems(result.stderr, pending))
        tally.add(where, RECOVERY, flag_problems(db, pending))
        tally.add(where, RECOVERY, leftover_problems(db))
    with controller(db) as ctl:
        from adc.controller.maintenance import out_of_service

        down = sorted(out_of_service(ctl, CABINET))
    if down:
        tally.add(where, RECOVERY, refused_in_drawer(db, work, env, down[0]))
        tally.note("a scripted restock of a flagged drawer's pocket refused (CLI)")
    check_db(tally, where, db)
    tally.add(where, AUDIT, cli_audit_problems(db, home))


def summary_before(victim: Victim) -> bool:
    """Whether the session had ended (its summary printed) before the signal went out."""
    return any(
        e.get("event") == "summary" and victim.sent_at is not None and t <= victim.sent_at
        for t, e in zip(victim.times, victim.events, strict=True)
    )


def keep(stem: Path, victim: Victim) -> None:
    """What the victim printed, next to its database, for whoever reads a failure."""
    Path(f"{stem}.jsonl").write_text(
        "".join(
            f"{t:.4f} {json.dumps(e)}\n" for t, e in zip(victim.times, victim.events, strict=True)
        )
    )
    Path(f"{stem}.err").write_text(
        f"exit {victim.returncode}, signal at {victim.sent_at}, wall {victim.wall:.2f}\n"
        + victim.stderr
    )


def owner_pid(owner: str) -> int | None:
    """The pid in an access row's owner (host|boot|pid|start)."""
    parts = owner.split("|")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def _refused_in_flagged(victim: Victim, pending: dict[int, Any]) -> list[str] | None:
    """Where the session reached a line of a pocket in a drawer its start flagged: refused."""
    drawers = {drawer for _c, drawer, _p, _o in pending.values()}
    if not drawers:
        return None
    lines = [e for e in victim.events if e.get("pocket") and e["pocket"].split("-")[0] in drawers]
    if not lines:
        return None
    problems = [
        f"{e['event']} event for {e['pocket']} in flagged drawer"
        for e in lines
        if e["event"] in ("unlocked", "recorded", "opened")
    ]
    return problems


def refused_in_drawer(db: Path, work: Path, env: dict[str, str], drawer: str) -> list[str]:
    """A scripted restock of a pocket in an out-of-service drawer is refused, nothing unlocked."""
    pocket, gtin = next((p, g) for p, g in RESTOCK_POCKETS if p.startswith(drawer + "-"))
    expiry = datetime.now(UTC).date() + timedelta(days=400)
    script = work / "refused.toml"
    script.write_text(f'[[line]]\npocket = "{pocket}"\nscan = "{hri(gtin, expiry, "RF1")}"\n'
                      "quantity = 1\n")  # fmt: skip
    before = rows(db, "SELECT count(*), (SELECT count(*) FROM access_log) FROM stock_transaction")
    result = adc(*restock_args(script), env=env)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e.get("event") == "error" and e.get("pocket") == pocket]
    problems = []
    # refused while the script is checked (exit 2, nothing done), or at its line (exit 1)
    checked = result.returncode == 2 and f"drawer {drawer} is out of service" in result.stderr
    at_line = result.returncode == 1 and errors and "out of service" in errors[0].get("reason", "")
    if not (checked or at_line):
        problems.append(
            f"restock of {pocket} in out-of-service drawer {drawer}: exit {result.returncode}, "
            f"{errors or result.stdout[-400:]} {result.stderr[-300:]}"
        )
    if rows(db, "SELECT count(*), (SELECT count(*) FROM access_log) FROM stock_transaction") != (
        before
    ):
        problems.append(f"restock of {pocket} in out-of-service drawer {drawer} wrote records")
    return problems


def run_campaign(
    work: Path,
    *,
    seed: int,
    chains: int,
    chain_plan: Callable[[int], list[str]],
    sim_kill_count: int,
    sim_jobs: int = 1,
    workers: int = 2,
    lines: int = 24,
    days: float = 1.0,
    cli_next_start: str = "when-open",
    cli_audit: bool = False,
) -> tuple[Tally, dict[str, Any]]:
    """Calibrate, then run the restock chains and the sim kills on `workers` threads."""
    from concurrent.futures import ThreadPoolExecutor

    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    template = work / "template.db"
    build_template(template)
    restock_timing = calibrate_restock(work, template, lines)
    sim_timing = calibrate_sim(work, days) if sim_kill_count else Timing(0, 0, 0)
    tally = Tally()
    rng = random.Random(seed)
    chain_jobs: list[Callable[[], None]] = []
    sim_job_list: list[Callable[[], None]] = []
    for c in range(chains):
        chain_rng = random.Random(rng.getrandbits(64))
        chain_jobs.append(
            lambda c=c, r=chain_rng: restock_chain(
                tally, work / f"chain{c}", template, r, restock_timing, chain_plan(c), lines
            )
        )
    sim_jobs = min(sim_jobs, sim_kill_count)
    per_job = [
        sim_kill_count // sim_jobs + (j < sim_kill_count % sim_jobs) for j in range(sim_jobs)
    ]
    for j, count in enumerate(per_job):
        sim_rng = random.Random(rng.getrandbits(64))
        sim_work = work / f"sim{j}"
        sim_work.mkdir(exist_ok=True)
        sim_job_list.append(
            lambda w=sim_work, r=sim_rng, k=count: sim_kills(
                tally, w, r, sim_timing, k, days, cli_next_start=cli_next_start, cli_audit=cli_audit
            )
        )
    jobs = [j for pair in zip_longest(chain_jobs, sim_job_list) for j in pair if j is not None]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    info = {
        "restock calibration (s)": f"first unlock {restock_timing.first:.2f}, last event "
        f"{restock_timing.busy_until:.2f}, exit {restock_timing.total:.2f}",
        "sim calibration (s)": f"file {sim_timing.first:.2f}, exit {sim_timing.total:.2f}",
        "wall_s": round(time.perf_counter() - began, 1),
    }
    return tally, info
