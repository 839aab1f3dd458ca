"""A database that fails under a change, as one line a person can act on.

Why here: every change goes through `Controller.write` / `write_fast` (context.py), so a database
that is locked by another process, read-only, full or gone is turned into `DatabaseUnavailable`
(a refusal, exit 1) in one place, and whatever drove the change (a restock session, a script, a
scenario) sees a project error it already handles instead of a driver's exception.
"""

from __future__ import annotations

from adc.errors import Refused


class DatabaseUnavailable(Refused):
    """The database could not take a change; nothing of that change was recorded."""


class LockTimeout(Exception):
    """A change could not get its writer lock in time (db.py: a site-wide change's own wait;
    PostgreSQL's lock_timeout and SQLite's busy timeout raise the driver's errors)."""


def is_unavailable(err: BaseException) -> bool:
    """Whether `err` says the database cannot take a change now (locked, read-only, gone, disk)
    rather than that the change itself is wrong (a constraint: a bug, left to surface).

    The raw hot path (store.py) raises the DB-API driver's own classes, the ORM SQLAlchemy's."""
    import sqlite3

    from sqlalchemy.exc import InternalError, OperationalError

    if isinstance(err, LockTimeout | OperationalError | InternalError):
        return True
    if isinstance(err, sqlite3.OperationalError):
        return True
    module = type(err).__module__
    if module.startswith("psycopg"):
        import psycopg

        return isinstance(err, psycopg.OperationalError | psycopg.InternalError)
    return False


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def _waited() -> str:
    from adc.controller.db import lock_wait

    try:
        return f"{lock_wait():g} s"
    except Exception:  # a bad ADC_DB_LOCK_TIMEOUT is reported where it is read
        return "its timeout"


def why_unwritable(err: BaseException) -> str:
    """What is wrong with the database, in the words a person reads."""
    text = _first_line(err)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return "the database is read-only"
    if isinstance(err, LockTimeout):
        return f"the database is busy: locked by another process; try again ({text})"
    if "locked" in lowered or "lock timeout" in lowered or "busy" in lowered:
        return f"the database is busy: locked by another process; try again (waited {_waited()})"
    if "statement timeout" in lowered:
        return f"the database is busy: a statement ran longer than allowed ({text})"
    if "idle-in-transaction" in lowered or "idle_in_transaction" in lowered:
        return f"the connection to the database was closed: a transaction stalled ({text})"
    if "disk" in lowered and ("full" in lowered or "i/o" in lowered):
        return f"the database's disk failed ({text})"
    if "connection" in lowered or "server closed" in lowered or "terminating" in lowered:
        return f"the connection to the database was lost ({text})"
    return f"the database failed ({text})"


def database_unavailable(
    err: BaseException, doing: str = "", *, url: str = ""
) -> DatabaseUnavailable:
    """The refusal for a change the database could not take (`url` as it may be shown)."""
    why = why_unwritable(err)
    if url:
        why = why.replace("the database", f"the database {url}", 1)
    suffix = f": {doing}" if doing else ""
    return DatabaseUnavailable(f"{why}{suffix}; nothing of it was recorded")
