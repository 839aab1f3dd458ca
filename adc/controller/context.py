"""The controller handle: database + injected clock + site policy, and the one way to change things.

`Controller.write(actor, action)` is the only path to a change. Inside its locked transaction it
re-reads the acting user (active? locked out? allowed this action?) before the caller touches
anything, and it refuses to commit a change that appended no audit entry. So a refused action
leaves the database exactly as it was, and every change that does commit carries its audit entry.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, select
from sqlmodel import Session

from adc.controller import audit, rows
from adc.controller import audit_chains as chains
from adc.controller.clock import Clock, utc
from adc.controller.db import Database
from adc.controller.models import Role, Setting, User
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
    chain: str
    places: list[int]
    _head: tuple[int, str] | None
    _next: int | None

    @abstractmethod
    def _run(self) -> chains.RowRunner:
        """`run(build, **params)` on this transaction's connection."""

    @abstractmethod
    def _dialect(self) -> str: ...

    @abstractmethod
    def _insert(self, values: dict[str, Any]) -> None:
        """Insert one audit entry's columns."""

    def upcoming_seq(self) -> int:
        """The unique number the next audit entry of this transaction will get.

        Drawn once and kept for that entry: records written before their audit entry (stock
        transactions) carry it from the start and are never updated afterwards.
        """
        if self._next is None:
            self._next = chains.next_id(self._run(), self._dialect())
        return self._next

    def audit(self, action: str, payload: dict[str, Any], *, witness: Any = None) -> int:
        """Append the audit entry of this change to its chain (the cabinet's, or the site's) and
        return its unique number (`witness`: anything with a `username`)."""
        if self._head is None:
            self._head = chains.read_head(self._run(), self.chain)  # under the chain's lock
        entry_id = self.upcoming_seq()
        self._next = None
        values = audit.entry_values(
            self._head,
            at=self.now,
            actor=self.user.username if self.user else SYSTEM,
            witness=witness.username if witness else None,
            action=action,
            payload=payload,
            chain=self.chain,
            entry_id=entry_id,
        )
        self._insert(values)
        self._head = (values["chain_seq"], values["hash"])
        self.audited = True
        self.seqs.append(entry_id)
        self.places.append(values["chain_seq"])
        return entry_id

    def anchor_due(self) -> tuple[str, tuple[int, str]] | None:
        """This cabinet chain's head, when one of its entries reached a multiple of ANCHOR_EVERY
        (then the head is anchored in the site chain after the commit)."""
        if self.chain == chains.SITE or self._head is None:
            return None
        if any(place % chains.ANCHOR_EVERY == 0 for place in self.places):
            return self.chain, self._head
        return None


@dataclass
class Tx(_Audited):
    """A locked write transaction: the session, the acting user row, and the audit appender."""

    session: Session
    now: datetime
    user: User | None
    audited: bool = False
    new_shortages: bool = False
    seqs: list[int] = field(default_factory=list)
    chain: str = chains.SITE
    places: list[int] = field(default_factory=list)
    _head: tuple[int, str] | None = None
    _next: int | None = None

    def _run(self) -> chains.RowRunner:
        return chains.session_runner(self.session)

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def load_user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def _insert(self, values: dict[str, Any]) -> None:
        # A Core insert: the entry is never loaded back or changed, so it needs no unit of work.
        self.session.execute(chains.q_insert(), [values])


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
    chain: str = chains.SITE
    places: list[int] = field(default_factory=list)
    _head: tuple[int, str] | None = None
    _next: int | None = None

    def _run(self) -> chains.RowRunner:
        return chains.store_runner(self.store)

    def _dialect(self) -> str:
        return self.store.dialect.name

    def load_user(self, user_id: int) -> rows.UserRow | None:
        return rows.user(self.store, user_id)

    def _insert(self, values: dict[str, Any]) -> None:
        self.store.run(chains.q_insert, **values)


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
        # Session ids (restock, return-bin clear-out): random; a simulated run gives a seeded
        # source, like its clock, so the same seed writes the same records.
        self.new_id: Callable[[], str] = lambda: uuid.uuid4().hex

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
    def write(
        self, actor: Actor | None, action: Action | None, *, cabinet: str | None = None
    ) -> Iterator[Tx]:
        """A locked transaction for one change by `actor` (None only for system bootstrap steps).

        `cabinet`: the change concerns that cabinet only: it takes that cabinet's writer lock and
        is audited in its chain, in parallel with other cabinets. Without it the change is
        site-wide: the site lock (which waits for no cabinet and excludes them all) and the
        site chain. A database that fails under it (locked, read-only, gone) is
        `DatabaseUnavailable`."""
        scope = () if cabinet is None else (cabinet,)
        with _database_errors(self.db.url), self.db.write(AdcSession, cabinets=scope) as session:
            user = None
            if actor is not None:
                if action is None:
                    raise ValueError("an actor's change must name its action")
                user = require(session.get(User, actor.user_id), actor.username, action)
            tx = Tx(session=session, now=self.now(), user=user, chain=chains.chain_of(cabinet))
            yield tx
            session.flush()
            if session.info.get("changed") and not tx.audited:
                raise RuntimeError("a change without an audit entry may not be committed")
        self._after_commit(tx)

    @contextmanager
    def write_fast(
        self, actor: Actor, action: Action, *, cabinet: str | None = None
    ) -> Iterator[FastTx]:
        """`write` for the hot path: the same locks (`cabinet` as there) and checks, on the raw
        cursor (store.py).

        Every change made in it must append its audit entry: one that did not is rolled back.
        """
        scope = () if cabinet is None else (cabinet,)
        with _database_errors(self.db.url), self.db.raw_write(cabinets=scope) as raw:
            store = Store(raw, self.db.engine.dialect)
            try:
                user = require(rows.user(store, actor.user_id), actor.username, action)
                tx = FastTx(store=store, now=self.now(), user=user, chain=chains.chain_of(cabinet))
                yield tx
                if not tx.audited:
                    raise RuntimeError("a change without an audit entry may not be committed")
            finally:
                store.close()
        self._after_commit(tx)

    @contextmanager
    def read_fast(self) -> Iterator[Store]:
        """A consistent read (one transaction) on the raw cursor, for the checks before access."""
        with self.db.raw_read() as raw:
            store = Store(raw, self.db.engine.dialect)
            try:
                yield store
            finally:
                store.close()

    def _after_commit(self, tx: _Audited) -> None:
        due = tx.anchor_due()
        if due is not None:
            import contextlib

            from adc.controller.dberrors import DatabaseUnavailable

            # The change is committed either way; if the database fails now, the chain's next
            # multiple of 100 anchors it.
            with contextlib.suppress(DatabaseUnavailable):
                self.anchor(dict([due]), wait=False)
        if getattr(tx, "new_shortages", False) and self.policy.shortage_sink:
            from adc.controller.shortages import deliver_pending

            deliver_pending(self)

    def anchor(
        self, heads: dict[str, tuple[int, str]] | None = None, *, wait: bool = True
    ) -> int | None:
        """Append an anchor to the site chain: the last anchor's cabinet heads, with `heads`
        (None: every cabinet chain's head as committed now) taking their place where newer.

        `wait=False` (after a cabinet's change) anchors only if the site chain is free at once,
        so a cabinet never waits for the site; a skipped anchor is taken at the next multiple.
        Returns the anchor's number, or None when skipped."""
        with _database_errors(self.db.url), self.db.anchor_write(wait=wait) as session:
            if session is None:
                return None
            run = chains.session_runner(session)
            recorded = chains.last_anchor(run)
            if heads is None:
                heads = {
                    name: chains.read_head(run, name) for name in chains.cabinet_chains(session)
                }
            merged = dict(recorded)
            for name, head in heads.items():
                if head[0] > merged.get(name, (0, ""))[0]:
                    merged[name] = head
            if merged == recorded:
                return None
            entry = audit.append(
                session,
                at=self.now(),
                actor=SYSTEM,
                action=chains.ANCHOR_ACTION,
                payload=chains.anchor_payload(merged),
            )
            return int(entry.seq)
