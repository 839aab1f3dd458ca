"""The access log: an access is on the database before its unlock pulse goes out.

Why: a drawer opened by a process that then dies (SIGKILL, a crash, a power cut) leaves nothing
behind in memory, and the next session would offer the pocket as if nothing had happened. So
every access that pulses a lock first writes a row (who, which drawer and pocket, when, and which
process), and the row is closed when the line ends. A row still open whose process is gone means
a drawer may have been opened with nothing recorded: the next start that opens the cabinet
(`recover_interrupted`: a restock, a count, diagnostics) flags that drawer for a blind recount,
audited, and closes the row as interrupted.

Writing the row is also the proof that the database can be written before anything is unlocked:
a read-only, locked or unreachable database refuses the access (`DatabaseUnwritable`, exit 1)
while the drawer is still shut.

A process is named by host, boot id, pid and the pid's start time, so a reused pid or a reboot is
not mistaken for the process that opened the row. A row opened on another host is left alone: its
process may be running there (a central PostgreSQL serves many cabinets' computers).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.sql import ClauseElement

from adc.controller.context import Actor, Controller
from adc.controller.dberrors import DatabaseUnavailable, is_unavailable, why_unwritable
from adc.controller.models import AccessLog
from adc.controller.store import Store

INTERRUPTED = "interrupted"  # (maintenance.INTERRUPTED: the row's outcome once flagged)
FLAG_KIND = "failed"  # the maintenance failure a blind recount clears (as an abandoned line's)


class DatabaseUnwritable(DatabaseUnavailable):
    """The database refused a write before an unlock: nothing was unlocked."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def _start_ticks(pid: int) -> str:
    """The pid's start time since boot (field 22 of /proc/PID/stat), '-' where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    return stat.rsplit(")", 1)[-1].split()[19]


@cache
def process_owner() -> str:
    """This process, as the rows it opens name it."""
    pid = os.getpid()
    return f"{socket.gethostname()}|{_boot_id()}|{pid}|{_start_ticks(pid)}"


def owner_gone(owner: str) -> bool:
    """Whether the process that opened a row is certainly gone (False where it cannot be told)."""
    try:
        host, boot, pid_text, ticks = owner.split("|")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if boot != _boot_id():
        return True  # the machine restarted since: a power cut or a reboot
    if owner == process_owner():
        return False
    if not Path(f"/proc/{pid}").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return ticks == "-"  # no /proc here: a live pid is taken as the owner
    return _start_ticks(pid) != ticks


def _q_open() -> ClauseElement:
    t = AccessLog.__table__
    return (
        insert(t)
        .values(
            {
                name: bindparam(name, type_=t.c[name].type)
                for name in (
                    "cabinet_id",
                    "drawer_code",
                    "pocket_code",
                    "user_id",
                    "purpose",
                    "session",
                    "owner",
                    "opened_at",
                )
            }
        )
        .returning(t.c.id)
    )


def _q_close() -> ClauseElement:
    t = AccessLog.__table__
    return (
        update(t)
        .where(t.c.id == bindparam("access_id"), t.c.closed_at.is_(None))
        .values(
            closed_at=bindparam("closed_at", type_=t.c.closed_at.type),
            outcome=bindparam("outcome"),
        )
    )


def unwritable(err: BaseException, doing: str) -> DatabaseUnwritable:
    """A database error before an unlock, as the one line the person reads."""
    return DatabaseUnwritable(f"{why_unwritable(err)}: {doing}; nothing was unlocked")


def _q_probe() -> ClauseElement:
    t = AccessLog.__table__
    return t.delete().where(t.c.id == bindparam("none"))


def prove_writable(ctl: Controller, doing: str) -> None:
    """Take the writer lock and run a write that changes nothing: a session proves the database
    takes its records before the person starts, not at the first unlock (read-only, locked)."""
    try:
        with ctl.db.raw_write(shared=True) as raw:
            store = Store(raw, ctl.db.engine.dialect)
            try:
                store.run(_q_probe, none=-1)
            finally:
                store.close()
    except Exception as err:
        if not is_unavailable(err):
            raise
        raise unwritable(err, f"cannot start {doing}") from None


def open_access(
    ctl: Controller,
    actor: Actor | None,
    cabinet: str,
    drawer: str,
    pocket: str | None,
    purpose: str,
    session: str = "",
) -> int:
    """Write the access before its pulse; its id. DatabaseUnwritable if that cannot be done."""
    try:
        with ctl.db.raw_write(cabinets=(cabinet,)) as raw:
            store = Store(raw, ctl.db.engine.dialect)
            try:
                return store.insert(
                    _q_open,
                    cabinet_id=cabinet,
                    drawer_code=drawer,
                    pocket_code=pocket,
                    user_id=actor.user_id if actor else None,
                    purpose=purpose,
                    session=session,
                    owner=process_owner(),
                    opened_at=ctl.now(),
                )
            finally:
                store.close()
    except Exception as err:
        if not is_unavailable(err):
            raise
        where = f"{pocket or drawer}" + (f" in drawer {drawer}" if pocket else "")
        raise unwritable(err, f"cannot record the access to {where}") from None


def close_access(ctl: Controller, access_id: int | None, outcome: str) -> bool:
    """Close the row (idempotent). False where the database could not be written: the row stays
    open, and the next start flags its drawer for a recount (fail closed)."""
    if access_id is None:
        return True
    try:
        with ctl.db.raw_write(shared=True) as raw:
            store = Store(raw, ctl.db.engine.dialect)
            try:
                store.run(_q_close, access_id=access_id, closed_at=ctl.now(), outcome=outcome)
            finally:
                store.close()
    except Exception as err:
        if not is_unavailable(err):
            raise
        return False
    return True


@dataclass(frozen=True)
class InterruptedAccess:
    """An access whose process died before it ended: its drawer now needs a blind recount."""

    access_id: int
    drawer: str
    pocket: str | None
    purpose: str
    user: str | None
    opened_at: datetime
    maintenance_event: int
    audit_seq: int


def open_accesses(ctl: Controller, cabinet: str) -> list[AccessLog]:
    """Rows of `cabinet` not yet closed, oldest first."""
    with ctl.read() as session:
        return list(
            session.execute(
                select(AccessLog)
                .where(AccessLog.cabinet_id == cabinet, AccessLog.closed_at.is_(None))  # type: ignore[union-attr]
                .order_by(AccessLog.id)  # type: ignore[arg-type]
            ).scalars()
        )


def recover_interrupted(ctl: Controller, cabinet: str) -> list[InterruptedAccess]:
    """Flag every drawer of `cabinet` left open by a process that is gone; see the module doc.

    Each is one transaction: the maintenance failure (out of service until `adc diag recover`
    recounts it blind), its audit entry, and the row closed as interrupted."""
    found: list[InterruptedAccess] = []
    try:
        for row in open_accesses(ctl, cabinet):
            if owner_gone(row.owner):
                found.append(_flag(ctl, cabinet, row))
    except DatabaseUnavailable as err:  # ctl.write's own translation
        raise DatabaseUnwritable(
            f"{err.message.split(': ')[0]}: cannot flag the drawer of an interrupted access; "
            "nothing was unlocked"
        ) from None
    except Exception as err:
        if not is_unavailable(err):
            raise
        raise unwritable(err, "cannot flag the drawer of an interrupted access") from None
    return [f for f in found if f is not None]


def _flag(ctl: Controller, cabinet: str, row: AccessLog) -> InterruptedAccess | None:
    from adc.controller.maintenance import record_interrupted_access
    from adc.controller.models import User

    with ctl.write(None, None, cabinet=cabinet) as tx:
        fresh = tx.session.get(AccessLog, row.id)
        if fresh is None or fresh.closed_at is not None:
            return None  # another start recovered it meanwhile
        user = tx.session.get(User, row.user_id) if row.user_id else None
        who = user.username if user else "unknown user"
        where = f"pocket {row.pocket_code}" if row.pocket_code else f"drawer {row.drawer_code}"
        detail = (
            f"access interrupted: {row.purpose} of {where} by {who} opened "
            f"{row.opened_at:%Y-%m-%d %H:%M:%S} UTC, the process ended before it did "
            "(killed, crashed or power lost): contents unknown, blind recount required"
        )
        event_id, seq = record_interrupted_access(tx, cabinet, fresh, who, detail)
    return InterruptedAccess(
        access_id=row.id or 0,
        drawer=row.drawer_code,
        pocket=row.pocket_code,
        purpose=row.purpose,
        user=who,
        opened_at=row.opened_at,
        maintenance_event=event_id,
        audit_seq=seq,
    )
