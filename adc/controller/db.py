"""Opening the database, creating and upgrading its schema, and the one way to write to it.

- `open_database(url)` turns every way a URL can fail (bad syntax, unknown driver, missing file,
  server down) into one BadInput line, and refuses a database `adc init` has not prepared.
- `Database.write()` is a session whose transaction holds the writer lock: `BEGIN IMMEDIATE` on
  SQLite, a transaction-scoped advisory lock on PostgreSQL. Every change and its audit entry happen
  inside one such transaction, so the audit sequence stays gap-free and chained with many writers.
- SQLite runs in WAL mode with foreign keys on and synchronous=FULL (a committed restock line
  survives a power cut).
- A writer waits at most `lock_wait()` seconds (30, or ADC_DB_LOCK_TIMEOUT) for another process's
  lock: SQLite's busy timeout, PostgreSQL's lock_timeout. `known_failure(err)` turns what the
  database says when it cannot do its part (locked, read-only, disk full, connection lost, a number
  too large) into one line for a person; the CLI asks it about any error it did not expect.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import Session, SQLModel

from adc.controller import models as m
from adc.errors import AdcError, BadInput

# PostgreSQL advisory lock keys, per schema (advisory locks are per database, and several sites'
# schemas may share one database: tests do). Site changes hold the site key exclusive, cabinet
# changes shared; an anchor appending to the site chain beside cabinets holds the site-chain key;
# a cabinet's lock is the two-key (space, hashtext(cabinet id)), a lock space of its own.
SITE_LOCK_KEY_SQL = "hashtextextended('adc.site.' || current_schema(), 0)"
SITE_CHAIN_KEY_SQL = "hashtextextended('adc.site-chain.' || current_schema(), 0)"
CABINET_LOCK_SPACE_SQL = "hashtext('adc.cabinet.' || current_schema())"
SITE_LOCK_SQL = f"SELECT pg_advisory_xact_lock({SITE_LOCK_KEY_SQL})"  # what a site change holds
SITE_POLL_S = (0.001, 0.02)  # a site change retries its exclusive lock at these bounds (s)
LOCK_TIMEOUT_ENV = "ADC_DB_LOCK_TIMEOUT"
LOCK_TIMEOUT_S = 30.0


def lock_wait() -> float:
    """Seconds a connection waits for another process's lock before giving up: LOCK_TIMEOUT_S,
    or ADC_DB_LOCK_TIMEOUT (0.1 to 3600) where set."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 3600:  # nan fails too
        raise BadInput(f"{LOCK_TIMEOUT_ENV} takes seconds from 0.1 to 3600, got {raw[:40]!r}")
    return value


TABLES = [
    m.SchemaVersion.__table__,
    m.Setting.__table__,
    m.Cabinet.__table__,
    m.Drawer.__table__,
    m.Item.__table__,
    m.ItemGtin.__table__,
    m.Pocket.__table__,
    m.StockLot.__table__,
    m.User.__table__,
    m.Transaction.__table__,
    m.Discrepancy.__table__,
    m.Recall.__table__,
    m.Shortage.__table__,
    m.AuditEntry.__table__,
    m.MaintenanceEvent.__table__,
]

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: DELETE refused'); END",
]
_POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit entries are append-only' USING DETAIL = TG_OP || ' refused'; "
    "END $$",
    "CREATE OR REPLACE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
    "CREATE OR REPLACE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()",
]


def _create_v1(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn, tables=TABLES)
    statements = _SQLITE_TRIGGERS if conn.dialect.name == "sqlite" else _POSTGRES_TRIGGERS
    for statement in statements:
        conn.exec_driver_sql(statement)


def _index_maintenance_by_drawer(conn: Connection) -> None:
    """Every access checks its drawer's open failures: without this index that check reads the
    whole maintenance history of every cabinet, which only grows."""
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_maintenance_drawer "
        "ON maintenance_event (cabinet_id, drawer_code, id)"
    )


def _create_access_log(conn: Connection) -> None:
    """Accesses written before the unlock pulse, so a crash mid-access is found on the next start."""
    SQLModel.metadata.create_all(conn, tables=[m.AccessLog.__table__])


def _index_recall_lot_key(conn: Connection) -> None:
    from adc.controller.lots import index_recall_lot_key

    index_recall_lot_key(conn)


def _add_cabinet_simulated(conn: Connection) -> None:
    """A cabinet registered as simulated: a simulated backend may write its master data (the unit
    weight a calibration measures), never a real cabinet's. A new database has the column from
    the model already (version 1 creates the current tables)."""
    if "simulated" in {c["name"] for c in inspect(conn).get_columns("cabinet")}:
        return
    default = "0" if conn.dialect.name == "sqlite" else "false"
    conn.exec_driver_sql(
        f"ALTER TABLE cabinet ADD COLUMN simulated BOOLEAN NOT NULL DEFAULT {default}"
    )


def _step(module: str, conn: Connection) -> None:
    """A schema step whose tables belong to one feature module: its `migrate(conn)` runs it."""
    import importlib

    importlib.import_module(module).migrate(conn)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


# Append-only: a released version's step is never edited; a schema change is a new step.
MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "initial schema: inventory, users, records, audit chain with append-only triggers",
        _create_v1,
    ),
    Migration(
        2,
        "index maintenance events by cabinet and drawer (the out-of-service check)",
        _index_maintenance_by_drawer,
    ),
    Migration(
        3,
        "access log: every pocket access is written before its unlock pulse (crash recovery)",
        _create_access_log,
    ),
    Migration(
        4,
        "index recall lots by key (case and spaces ignored): the recall check on the hot path",
        _index_recall_lot_key,
    ),
    Migration(
        5,
        "cabinet.simulated: only a simulated cabinet's master data may come from a simulated backend",
        _add_cabinet_simulated,
    ),
    Migration(
        6,
        "station: cold chain, quarantine, notifications and scheduled work",
        lambda conn: _step("adc.controller.station_tables", conn),
    ),
    Migration(
        7,
        "audit chains per cabinet, anchored in the site chain",
        lambda conn: _step("adc.controller.audit_chains", conn),
    ),
    Migration(
        8,
        "investigational drugs: studies, study items, subjects' dispenses",
        lambda conn: _step("adc.controller.study_tables", conn),
    ),
    Migration(
        9,
        "index controlled-substance movements with their pocket and quantity (cs-activity's"
        " opening balances over a fleet's history)",
        lambda conn: _step("adc.controller.report_indexes", conn),
    ),
]


def current_version() -> int:
    return MIGRATIONS[-1].version


def safe_url(url: str | URL) -> str:
    """The URL as it may be shown: password hidden."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return str(url)
    if isinstance(url, str) and parsed.password is None:
        return url  # as the person wrote it (rendering would escape a `file:` URI's colon)
    return parsed.render_as_string(hide_password=True)


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class Database:
    """An engine configured for the controller's transaction rules."""

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.url = url or safe_url(engine.url)  # as shown to a person: no password

    @contextmanager
    def write(
        self, session_class: type[Session] = Session, *, cabinets: Sequence[str] = ()
    ) -> Iterator[Session]:
        """A session holding the writer lock of `cabinets` (none: the site's); commits on
        success, rolls back on any error. See `_lock_postgresql` for the locks."""
        with self.engine.connect() as conn:
            conn.execution_options(adc_write=True)
            with session_class(bind=conn, expire_on_commit=False) as session:
                if self.dialect == "postgresql":
                    try:
                        _lock_postgresql(_session_scalar(session), cabinets)
                    except BaseException:
                        session.rollback()
                        raise
                else:
                    session.connection()  # emits BEGIN IMMEDIATE now, before anything is read
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise

    @contextmanager
    def anchor_write(self, *, wait: bool = True) -> Iterator[Session | None]:
        """A session that may append to the site chain beside cabinets' changes (an anchor):
        the site lock shared and the site chain's own lock. `wait=False` yields None at once
        when either is taken. SQLite: the one writer lock, as `write`."""
        if self.dialect != "postgresql":
            with self.write() as session:
                yield session
            return
        with self.engine.connect() as conn, Session(bind=conn, expire_on_commit=False) as session:
            scalar = _session_scalar(session)
            try:
                if wait:
                    scalar(_PG_SHARED_SITE_CHAIN, ())
                elif not scalar(_PG_TRY_SHARED_SITE_CHAIN, ()):
                    session.rollback()  # releases whichever of the two it got
                    yield None
                    return
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def raw_write(self, *, cabinets: Sequence[str] = (), shared: bool = False) -> Iterator[Any]:
        """`write` on the DB-API connection itself: the same writer locks, commit and rollback,
        none of the ORM's per-call work (see store.py). Yields the connection.

        `shared`: only the site lock, shared (PostgreSQL), for a write that no other change reads
        and modifies, e.g. closing an access row by its id, or a probe that writes nothing: it
        waits for no cabinet and is excluded only by a site-wide change."""
        with self._raw() as raw:
            # Taking the lock opens the transaction. If that fails nothing of ours is open, and
            # nothing is rolled back: on `sqlite://` the connection is shared with the ORM, whose
            # transaction it may be in the middle of.
            if self.dialect == "postgresql":
                try:
                    if shared and not cabinets:
                        raw.execute(f"SELECT pg_advisory_xact_lock_shared({SITE_LOCK_KEY_SQL})")
                    else:
                        _lock_postgresql(_raw_scalar(raw), cabinets)
                except BaseException:
                    with contextlib.suppress(Exception):
                        raw.rollback()
                    raise
            else:
                begin_immediate(raw, lock_wait())
            with _ending(raw, commit=True):
                yield raw

    @contextmanager
    def raw_read(self) -> Iterator[Any]:
        """A read transaction on the DB-API connection: one consistent snapshot."""
        with self._raw() as raw:
            if self.dialect != "postgresql":  # psycopg opens the transaction at the first read
                raw.execute("BEGIN")
            with _ending(raw, commit=False):
                yield raw

    @contextmanager
    def _raw(self) -> Iterator[Any]:
        """A DB-API connection checked out of the engine's pool for one call: the pool's
        pre-ping replaces one the server dropped, and it goes back when the call ends."""
        proxied = self.engine.raw_connection()
        try:
            yield proxied.driver_connection
        finally:
            proxied.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def schema_version(self) -> int | None:
        """The recorded schema version, or None when `adc init` never ran on this database."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("schema_version"):
                return None
            return conn.execute(
                select(m.SchemaVersion.version).order_by(m.SchemaVersion.version.desc()).limit(1)
            ).scalar()

    def close(self) -> None:
        self.engine.dispose()


# ------------------------------------------------------------------ PostgreSQL writer locks
_PG_TRY_SITE = f"SELECT pg_try_advisory_xact_lock({SITE_LOCK_KEY_SQL})"
_PG_SHARED_SITE_CHAIN = (
    f"SELECT pg_advisory_xact_lock_shared({SITE_LOCK_KEY_SQL}), "
    f"pg_advisory_xact_lock({SITE_CHAIN_KEY_SQL})"
)
_PG_TRY_SHARED_SITE_CHAIN = (
    f"SELECT pg_try_advisory_xact_lock_shared({SITE_LOCK_KEY_SQL}) "
    f"AND pg_try_advisory_xact_lock({SITE_CHAIN_KEY_SQL})"
)
Scalar = Callable[[str, tuple[Any, ...]], Any]


def cabinet_lock_sql(count: int) -> str:
    """The statement taking the site lock shared and `count` cabinets' locks, in that order."""
    cabinets = ", ".join(
        f"pg_advisory_xact_lock({CABINET_LOCK_SPACE_SQL}, hashtext(%s))" for _ in range(count)
    )
    return f"SELECT pg_advisory_xact_lock_shared({SITE_LOCK_KEY_SQL}), {cabinets}"


def _lock_postgresql(scalar: Scalar, cabinets: Sequence[str]) -> None:
    """Take a change's writer locks on PostgreSQL, in the one fixed order that rules out a
    deadlock: the site lock, then the cabinets' locks by cabinet id.

    - A cabinet's change holds the site lock shared and its cabinet's lock exclusive: changes on
      different cabinets run in parallel; two on one cabinet take turns. A change touching two
      cabinets names both, and they are locked in sorted order.
    - A site-wide change holds the site lock exclusive, so it runs alone, as every change did
      before chains per cabinet. It never queues for it: a waiting exclusive request would make
      every cabinet queue behind it, so one stalled cabinet would stall them all. It retries
      `pg_try_advisory_xact_lock` (1 to 20 ms apart) until `lock_wait()` has passed.
    A cabinet lock's wait is bounded by lock_timeout (set on every connection)."""
    if cabinets:
        ordered = sorted(set(cabinets))
        scalar(cabinet_lock_sql(len(ordered)), tuple(ordered))
        return
    import random
    import time

    from adc.controller.dberrors import LockTimeout

    wait = lock_wait()
    deadline = time.monotonic() + wait
    pause = SITE_POLL_S[0]
    while not scalar(_PG_TRY_SITE, ()):
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"a site-wide change waited {wait:g} s for cabinets' changes to finish"
            )
        time.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 2, SITE_POLL_S[1])


def _session_scalar(session: Session) -> Scalar:
    def scalar(sql: str, params: tuple[Any, ...]) -> Any:
        return session.connection().exec_driver_sql(sql, params).scalar()

    return scalar


def _raw_scalar(raw: Any) -> Scalar:
    def scalar(sql: str, params: tuple[Any, ...]) -> Any:
        row = raw.execute(sql, params).fetchone()
        return None if row is None else row[0]

    return scalar


@contextmanager
def _ending(raw: Any, *, commit: bool) -> Iterator[None]:
    """End a raw transaction: commit (writes) or roll back (reads); roll back on any error."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # a dead connection: the pool replaces it
            raw.rollback()
        raise
    if commit:
        raw.commit()
    else:
        raw.rollback()


def _configure_sqlite(engine: Engine, wait_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun below, explicitly
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {wait_ms:d}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("adc_write"):
            begin_immediate(conn.connection.dbapi_connection, wait_ms / 1000)
        else:
            conn.exec_driver_sql("BEGIN")


SQLITE_RETRY_S = (0.0002, 0.004)  # BEGIN IMMEDIATE retried at these bounds (s), see below


def begin_immediate(dbapi_conn: Any, wait_s: float) -> None:
    """SQLite's BEGIN IMMEDIATE, retried every 0.2 to 4 ms until `wait_s` has passed.

    Why not SQLite's own busy handler: it sleeps longer and longer (up to 100 ms a try), so a
    writer that has waited a while sleeps through the moments the lock is free while newcomers
    take it (measured: median wait 0.01 ms, some 2.7 s with 8 writers). Short, jittered retries
    keep every waiter in the race; the busy timeout is off for this statement only."""
    import random
    import sqlite3
    import time

    dbapi_conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + wait_s
        pause = SQLITE_RETRY_S[0]
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                text_ = str(err).lower()
                if ("locked" not in text_ and "busy" not in text_) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 1.5, SQLITE_RETRY_S[1])
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {round(wait_s * 1000):d}")


STATEMENT_TIMEOUT_S = 60.0  # at least; twice the lock wait where that is longer
IDLE_IN_TRANSACTION_S = 60.0  # likewise


def session_timeouts(wait_ms: int) -> dict[str, str]:
    """What every PostgreSQL session of ours sets, so no writer waits forever:
    - lock_timeout: a wait for a lock (a cabinet's, a row's) ends after `lock_wait()`;
    - statement_timeout: no statement runs longer than max(60 s, 2 × lock wait) (a lock wait
      ends first, as a lock timeout);
    - idle_in_transaction_session_timeout: the server ends a session of ours that sits in an
      open transaction (a process stopped or hung while holding its cabinet's lock) after
      max(60 s, 2 × lock wait), which releases its locks; nothing of that change is kept."""
    longer = max(STATEMENT_TIMEOUT_S * 1000, 2 * wait_ms)
    idle = max(IDLE_IN_TRANSACTION_S * 1000, 2 * wait_ms)
    return {
        "lock_timeout": f"{wait_ms}ms",
        "statement_timeout": f"{round(longer)}ms",
        "idle_in_transaction_session_timeout": f"{round(idle)}ms",
    }


def _configure_postgresql(engine: Engine, wait_ms: int) -> None:
    # jit off: our queries are short; a JIT compile of an over-estimated plan cost the recalls
    # report most of its 1.6 s over the bench fleet (bench/reports.py), for no gain.
    settings = {**session_timeouts(wait_ms), "jit": "off"}

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            for name, value in settings.items():
                cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        dbapi_conn.commit()


def _make_engine(url: URL) -> Engine:
    wait = lock_wait()
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": wait})
        _configure_sqlite(engine, round(wait * 1000))
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    _configure_postgresql(engine, round(wait * 1000))
    return engine


def open_database(url: str, *, create: bool = False) -> Database:
    """Open a database for the controller, or raise BadInput saying why it cannot be used.

    `create` is for `adc init` only: every other command refuses a database that does not exist
    yet or was never initialised, instead of silently creating an empty one.
    """
    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadInput(
            f"{url!r} is not a database URL (expected sqlite:///FILE or postgresql+psycopg://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BadInput(f"cannot open database {shown}: only SQLite and PostgreSQL are supported")
    if backend == "sqlite":
        path = parsed.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            file = Path(path)
            if not create and not file.exists():
                raise BadInput(f"no database at {file}: create it with `adc init --db {shown}`")
            if create and not file.parent.is_dir():
                raise BadInput(
                    f"cannot open database {shown}: directory {file.parent} does not exist"
                )
    try:
        engine = _make_engine(parsed)
    except (NoSuchModuleError, ImportError) as err:
        raise BadInput(
            f"cannot open database {shown}: driver unavailable ({_first_line(err)})"
        ) from None
    except (ArgumentError, TypeError, ValueError) as err:
        raise BadInput(f"cannot open database {shown}: {_first_line(err)}") from None
    db = Database(engine, shown)
    _OPENED.append(parsed)
    try:
        version = db.schema_version()
    except (DBAPIError, SQLAlchemyError, OSError) as err:
        engine.dispose()
        raise BadInput(f"cannot open database {shown}: {_first_line(err)}") from None
    if create:
        return db
    if version is None:
        engine.dispose()
        raise BadInput(f"database {shown} is not initialised: run `adc init --db {shown}`")
    if version != current_version():
        engine.dispose()
        if version > current_version():
            raise BadInput(
                f"database {shown} has schema version {version}, newer than this adc "
                f"({current_version()}): upgrade adc"
            )
        raise BadInput(
            f"database {shown} has schema version {version}, this adc needs "
            f"{current_version()}: run `adc init --db {shown}` to upgrade"
        )
    return db


@dataclass(frozen=True)
class InitResult:
    from_version: int | None
    to_version: int
    applied: list[int]


def init_database(db: Database, now: Any) -> InitResult:
    """Create or upgrade the schema to the current version; idempotent.

    Runs as one locked transaction (DDL is transactional on SQLite and PostgreSQL): a failed step
    leaves the database as it was. Each applied step is recorded in `schema_version` and audited.
    """
    from adc.controller import audit

    with db.write() as session:
        conn = session.connection()
        have = None
        if inspect(conn).has_table("schema_version"):
            have = conn.execute(
                select(m.SchemaVersion.version).order_by(m.SchemaVersion.version.desc()).limit(1)
            ).scalar()
        if have is not None and have > current_version():
            raise BadInput(
                f"database {db.url} has schema version {have}, newer than this adc ({current_version()})"
            )
        applied: list[int] = []
        for step in MIGRATIONS:
            if have is not None and step.version <= have:
                continue
            step.apply(conn)
            session.add(
                m.SchemaVersion(version=step.version, description=step.description, applied_at=now)
            )
            applied.append(step.version)
        if applied:
            session.flush()
            audit.append(
                session,
                at=now,
                actor="system",
                action="db.init" if have is None else "db.upgrade",
                payload={"from_version": have, "to_version": current_version(), "applied": applied},
            )
    return InitResult(from_version=have, to_version=current_version(), applied=applied)


# ------------------------------------------------------------------ what the database said, for a person
_OPENED: list[URL] = []  # the databases this process opened, latest last (to name in a message)
_PG_OUT_OF_RANGE = {"22003", "22008"}  # numeric value / datetime field out of range


def _opened_name() -> str:
    """The database as a person knows it: a SQLite file's path, else the URL without password."""
    if not _OPENED:
        return ""
    url = _OPENED[-1]
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = url.database
        if path.startswith("file:"):
            path = path[len("file:") :].split("?", 1)[0]
        return path
    return safe_url(url)


def known_failure(err: BaseException) -> AdcError | None:
    """What a person should read for an error the database (or its driver) raised outside a
    controller change (`Controller.write` already does this: dberrors.py), e.g. under `adc init`
    or a login; None when it is not a known condition (a bug: its traceback is wanted).

    A database that cannot do its part now (locked by another process, read-only, full, gone) is
    a refusal, exit 1; nothing was recorded, the transaction rolled back. A number too large for
    its column is bad input, exit 2 (parsing should have caught it first: belt and braces).
    """
    from adc.controller.dberrors import database_unavailable, is_unavailable

    orig = getattr(err, "orig", None) or err  # SQLAlchemy wraps the driver's exception
    if isinstance(orig, OverflowError):
        return BadInput(f"a number is too large for the database ({_first_line(orig)})")
    if getattr(orig, "sqlstate", None) in _PG_OUT_OF_RANGE:
        return BadInput(f"a value is out of range for the database: {_first_line(orig)}")
    if isinstance(err, AdcError):
        return err
    if is_unavailable(err) or is_unavailable(orig):
        return database_unavailable(orig, url=_opened_name())
    return None
