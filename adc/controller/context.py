"""The controller handle: database + injected clock + site policy, and the one way to change things.

`Controller.write(actor, action)` is the only path to a change. Inside its locked transaction it
re-reads the acting user (active? locked out? allowed this action?) before the caller touches
anything, and it refuses to commit a change that appended no audit entry. So a refused action
leaves the database exactly as it was, and every change that does commit carries its audit entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, insert, select
from sqlmodel import Session

from adc.controller import audit, rows
from adc.controller.clock import Clock, utc
from adc.controller.db import Database
from adc.controller.models import AuditEntry, Role, Setting, User
from adc.controller.permissions import Action, allowed
from adc.controller.policy import Policy, policy_from_settings
from adc.controller.store import Store
from adc.errors import Refused


@dataclass(frozen=True)
class Actor:
    """Who is acting: obtained from `users.authenticate`, checked again on every write."""

    user_id: int
    username: str
    role: Role


SYSTEM = "system"


class _Audited(ABC):
    """The audit appender both kinds of write transaction share (fields set by the subclass)."""

    now: datetime
    user: Any
    audited: bool
    seqs: list[int]
    _head: tuple[int, str] | None

    @abstractmethod
    def _read_head(self) -> tuple[int, str]:
        """The audit trail's last (sequence, hash), read under the writer lock."""

    @abstractmethod
    def _insert(self, values: dict[str, Any]) -> None:
        """Insert one audit entry's columns."""

    def upcoming_seq(self) -> int:
        """The sequence number the next audit entry of this transaction will get.

        Safe because the writer lock is held: records written before their audit entry (stock
        transactions) can carry it from the start and are never updated afterwards.
        """
        if self._head is None:
            self._head = self._read_head()
        return self._head[0] + 1

    def audit(self, action: str, payload: dict[str, Any], *, witness: Any = None) -> int:
        """Append the audit entry of this change (`witness`: anything with a `username`)."""
        if self._head is None:
            self._head = self._read_head()
        values = audit.entry_values(
            self._head,
            at=self.now,
            actor=self.user.username if self.user else SYSTEM,
            witness=witness.username if witness else None,
            action=action,
            payload=payload,
        )
        self._insert(values)
        self._head = (values["seq"], values["hash"])
        self.audited = True
        self.seqs.append(values["seq"])
        return int(values["seq"])


@dataclass
class Tx(_Audited):
    """A locked write transaction: the session, the acting user row, and the audit appender."""

    session: Session
    now: datetime
    user: User | None
    audited: bool = False
    new_shortages: bool = False
    seqs: list[int] = field(default_factory=list)
    _head: tuple[int, str] | None = None

    def _read_head(self) -> tuple[int, str]:
        return audit.head(self.session)

    def load_user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def _insert(self, values: dict[str, Any]) -> None:
        # A Core insert: the entry is never loaded back or changed, so it needs no unit of work.
        self.session.execute(insert(AuditEntry), [values])


@dataclass
class FastTx(_Audited):
    """A locked write transaction on the raw cursor (store.py): the hot path's `Tx`.

    Same lock, same rules for the acting user, same audit chain; rows instead of ORM objects.
    """

    store: Store
    now: datetime
    user: rows.UserRow | None
    audited: bool = False
    new_shortages: bool = False
    seqs: list[int] = field(default_factory=list)
    _head: tuple[int, str] | None = None

    def _read_head(self) -> tuple[int, str]:
        return rows.audit_head(self.store) or (0, audit.GENESIS_HASH)

    def load_user(self, user_id: int) -> rows.UserRow | None:
        return rows.user(self.store, user_id)

    def _insert(self, values: dict[str, Any]) -> None:
        rows.insert_audit(self.store, values)


class AdcSession(Session):
    """A write session that notes whether it changed anything (to demand an audit entry)."""


@event.listens_for(AdcSession, "after_flush")
def _flushed(session: Session, _ctx: Any) -> None:
    if session.new or session.dirty or session.deleted:
        session.info["changed"] = True


@event.listens_for(AdcSession, "loaded_as_persistent")
def _keep(session: Session, instance: Any) -> None:
    """Hold what a write transaction loads for its (short) life: the identity map is weak, and
    the rule checks of one change ask for the same item or user several times."""
    session.info.setdefault("loaded", []).append(instance)


@event.listens_for(AdcSession, "do_orm_execute")
def _executed(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["changed"] = True


def require(user: Any, username: str, action: Action) -> Any:
    """The acting user as the database knows it now, or Refused saying why not."""
    if user is None:
        raise Refused(f"user {username!r} no longer exists")
    if not user.active:
        raise Refused(f"user {user.username} is disabled")
    if user.locked:
        raise Refused(f"user {user.username} is locked out; an admin must unlock the account")
    if not allowed(user.role, action):
        raise Refused(f"user {user.username} ({user.role}) is not allowed to do {action.value}")
    return user


@contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """A driver's database error under a change, as the refusal a person reads (dberrors.py)."""
    try:
        yield
    except Exception as err:
        from adc.controller.dberrors import database_unavailable, is_unavailable

        if is_unavailable(err):
            raise database_unavailable(err, url=url) from err
        raise


class Controller:
    """Database, clock and policy of one site; every controller function takes one."""

    def __init__(self, db: Database, clock: Clock, policy: Policy | None = None) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy or self.load_policy()
        self.delivery_errors: list[str] = []

    def load_policy(self) -> Policy:
        with self.db.read() as session:
            rows = session.execute(select(Setting.key, Setting.value)).all()
        return policy_from_settings({key: value for key, value in rows})

    def now(self) -> datetime:
        return utc(self.clock.now())

    def today(self) -> date:
        """The site's calendar date: expiry dates are days in the site's time zone."""
        return self.clock.now().astimezone(self.policy.zone()).date()

    def check(self, actor: Actor, action: Action) -> None:
        """Refused now if `actor` may not do `action` (the write re-checks under the lock)."""
        with self.read_fast() as store:
            require(rows.user(store, actor.user_id), actor.username, action)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.db.read() as session:
            yield session

    @contextmanager
    def write(self, actor: Actor | None, action: Action | None) -> Iterator[Tx]:
        """A locked transaction for one change by `actor` (None only for system bootstrap steps).

        A database that fails under it (locked, read-only, gone) is `DatabaseUnavailable`."""
        with _database_errors(self.db.url), self.db.write(AdcSession) as session:
            user = None
            if actor is not None:
                if action is None:
                    raise ValueError("an actor's change must name its action")
                user = require(session.get(User, actor.user_id), actor.username, action)
            tx = Tx(session=session, now=self.now(), user=user)
            yield tx
            session.flush()
            if session.info.get("changed") and not tx.audited:
                raise RuntimeError("a change without an audit entry may not be committed")
        self._after_commit(tx.new_shortages)

    @contextmanager
    def write_fast(self, actor: Actor, action: Action) -> Iterator[FastTx]:
        """`write` for the hot path: the same lock and checks, on the raw cursor (store.py).

        Every change made in it must append its audit entry: one that did not is rolled back.
        """
        with _database_errors(self.db.url), self.db.raw_write() as raw:
            store = Store(raw, self.db.engine.dialect)
            try:
                user = require(rows.user(store, actor.user_id), actor.username, action)
                tx = FastTx(store=store, now=self.now(), user=user)
                yield tx
                if not tx.audited:
                    raise RuntimeError("a change without an audit entry may not be committed")
            finally:
                store.close()
        self._after_commit(tx.new_shortages)

    @contextmanager
    def read_fast(self) -> Iterator[Store]:
        """A consistent read (one transaction) on the raw cursor, for the checks before access."""
        with self.db.raw_read() as raw:
            store = Store(raw, self.db.engine.dialect)
            try:
                yield store
            finally:
                store.close()

    def _after_commit(self, new_shortages: bool) -> None:
        if new_shortages and self.policy.shortage_sink:
            from adc.controller.shortages import deliver_pending

            deliver_pending(self)
