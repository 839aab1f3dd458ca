"""Audit chains per cabinet, anchored in the site chain (schema v7).

Why: with one chain for the whole database every change needed one lock, so every cabinet of a
health system waited for every other (issue 16). Now each cabinet has its own chain and its own
writer lock (db.py), and site-wide changes (users, items, settings, recalls, studies) keep the
site chain.

- An entry belongs to one chain: `chain` is "site" or "cabinet:<id>", `chain_seq` its place in
  it (1, 2, 3, … with no gap), `prev_hash` the hash of the entry before it in the same chain.
  `seq` stays the entry's unique number, the one stock transactions refer to: PostgreSQL draws it
  from a sequence (no lock shared between cabinets), SQLite, which has one writer at a time,
  takes the next after the largest.
- The hash of a chained entry covers its chain, its place and its number as well as its content
  (audit.entry_hash), so moving an entry to another chain, or swapping two cabinets' chains, is
  detected. Entries written before v7 stay as they were: the start of the site chain, placed by
  `seq`, hashed without a chain (`chain_seq` is NULL), so an upgraded trail still verifies.
- An anchor is a site-chain entry ("audit.anchor") holding the head (place, hash) of every
  cabinet chain and their Merkle root. A chain's head is anchored every ANCHOR_EVERY entries
  (after the change commits, if the site chain is free at once; otherwise at the next multiple)
  and by `adc audit anchor` for all chains. Deleting or reordering entries breaks a chain;
  dropping a whole chain, or cutting one shorter than an anchor says it was, is caught by the
  anchors; entries after a chain's last anchor are also vouched for by the stock transactions
  that refer to them (`audit.verify_trail`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, inspect, select, text
from sqlalchemy.sql import ClauseElement

from adc.controller import models as m

SITE = "site"
CABINET_PREFIX = "cabinet:"
ANCHOR_ACTION = "audit.anchor"
ANCHOR_EVERY = 100  # a cabinet chain's head is anchored in the site chain every this many entries
ID_SEQUENCE = "adc_audit_entry_seq"  # PostgreSQL: the entries' unique numbers

_a = m.AuditEntry.__table__.c  # type: ignore[attr-defined]
ENTRY_FIELDS = (
    "seq",
    "chain",
    "chain_seq",
    "at",
    "actor",
    "witness",
    "action",
    "payload",
    "prev_hash",
    "hash",
)

Head = tuple[int, str]  # (place in its chain, hash) of a chain's last entry
RowRunner = Callable[..., Any]  # run(build, **params) -> first row or None


def chain_of(cabinet: str | None) -> str:
    """The chain a change belongs to: its cabinet's, or the site's."""
    return SITE if cabinet is None else f"{CABINET_PREFIX}{cabinet}"


def cabinet_of(chain: str) -> str | None:
    return chain[len(CABINET_PREFIX) :] if chain.startswith(CABINET_PREFIX) else None


# ------------------------------------------------------------------ schema step v7
def migrate(conn: Connection) -> None:
    """Add the chain columns to an existing audit trail (a new database has them from the model),
    index each chain by place (one place per chain: no fork even without the lock), and on
    PostgreSQL start the entry-number sequence after the largest number used. Idempotent.

    The columns are added with a default, never by UPDATE: the trail is append-only (triggers)."""
    columns = {c["name"] for c in inspect(conn).get_columns("audit_entry")}
    if "chain" not in columns:
        conn.exec_driver_sql(
            f"ALTER TABLE audit_entry ADD COLUMN chain VARCHAR(80) NOT NULL DEFAULT '{SITE}'"
        )
    if "chain_seq" not in columns:
        conn.exec_driver_sql("ALTER TABLE audit_entry ADD COLUMN chain_seq INTEGER")
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_audit_chain_place ON audit_entry (chain, chain_seq)"
    )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"CREATE SEQUENCE IF NOT EXISTS {ID_SEQUENCE}")
        conn.exec_driver_sql(
            f"SELECT setval('{ID_SEQUENCE}', GREATEST(COALESCE(MAX(seq), 0), 1), "
            "MAX(seq) IS NOT NULL) FROM audit_entry"
        )


# ------------------------------------------------------------------ statements (built once)
@cache
def q_head() -> ClauseElement:
    return (
        select(_a.chain_seq, _a.hash)
        .where(_a.chain == bindparam("chain", type_=_a.chain.type))
        .where(_a.chain_seq.is_not(None))
        .order_by(_a.chain_seq.desc())
        .limit(1)
    )


@cache
def q_legacy_head() -> ClauseElement:
    return select(_a.seq, _a.hash).where(_a.chain_seq.is_(None)).order_by(_a.seq.desc()).limit(1)


@cache
def q_next_id_postgresql() -> ClauseElement:
    return select(func.nextval(ID_SEQUENCE))


@cache
def q_next_id_postgresql_any() -> ClauseElement:
    """`q_next_id_postgresql` that also serves a schema from before v7 (no sequence yet: its
    steps are being applied under the site lock, which no other writer holds meanwhile)."""
    return select(
        text(
            f"CASE WHEN to_regclass('{ID_SEQUENCE}') IS NULL "
            "THEN (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_entry) "
            f"ELSE nextval('{ID_SEQUENCE}'::text) END"
        )
    )


@cache
def q_next_id_sqlite() -> ClauseElement:
    return select(func.coalesce(func.max(_a.seq), 0) + 1)


@cache
def q_insert() -> ClauseElement:
    table = m.AuditEntry.__table__  # type: ignore[attr-defined]
    return insert(table).values(
        {name: bindparam(name, type_=table.c[name].type) for name in ENTRY_FIELDS}
    )


@cache
def q_last_anchor() -> ClauseElement:
    return (
        select(_a.chain_seq, _a.payload)
        .where(_a.chain == SITE, _a.action == ANCHOR_ACTION, _a.chain_seq.is_not(None))
        .order_by(_a.chain_seq.desc())
        .limit(1)
    )


def session_runner(session: Any) -> RowRunner:
    """`run(build, **params)` on an ORM session (the same statements as on the raw cursor)."""
    return lambda build, **params: session.execute(build(), params).first()


def store_runner(store: Any) -> RowRunner:
    return lambda build, **params: store.row(build, **params)


def read_head(run: RowRunner, chain: str) -> Head:
    """A chain's last (place, hash): (0, genesis) for a chain with no entry yet. Read under
    the chain's writer lock."""
    from adc.controller.audit import GENESIS_HASH

    row = run(q_head, chain=chain)
    if row is None and chain == SITE:
        row = run(q_legacy_head)  # a trail from before v7: its entries open the site chain
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def next_id(run: RowRunner, dialect: str, *, upgrading: bool = False) -> int:
    """The next entry's unique number (what stock transactions refer to). `upgrading`: the
    schema may predate v7 (`adc init`'s own entry)."""
    if dialect == "postgresql":
        build = q_next_id_postgresql_any if upgrading else q_next_id_postgresql
    else:
        build = q_next_id_sqlite
    return int(run(build)[0])


# ------------------------------------------------------------------ anchors
def merkle_root(heads: dict[str, Head]) -> str:
    """SHA-256 Merkle root over the chains' heads, leaves in chain order (an odd node is paired
    with itself). One value that commits to every head: can be published or signed outside."""
    from adc.controller.audit import canonical_json

    level = [
        hashlib.sha256(canonical_json([chain, place, digest]).encode()).hexdigest()
        for chain, (place, digest) in sorted(heads.items())
    ]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [
            hashlib.sha256((level[i] + level[i + 1]).encode()).hexdigest()
            for i in range(0, len(level), 2)
        ]
    return level[0]


def anchor_payload(heads: dict[str, Head]) -> dict[str, Any]:
    return {
        "heads": {chain: [place, digest] for chain, (place, digest) in sorted(heads.items())},
        "root": merkle_root(heads),
    }


def parse_anchor(payload: str) -> dict[str, Head]:
    """The heads an anchor entry's payload records (raises ValueError/KeyError if malformed)."""
    import json

    data = json.loads(payload)
    return {chain: (int(v[0]), str(v[1])) for chain, v in data["heads"].items()}


def last_anchor(run: RowRunner) -> dict[str, Head]:
    row = run(q_last_anchor)
    return parse_anchor(row[1]) if row else {}


def cabinet_chains(session: Any) -> list[str]:
    """Every cabinet chain with an entry, in order (a full anchor reads each one's head)."""
    rows = session.execute(
        select(_a.chain).where(_a.chain != SITE).group_by(_a.chain).order_by(_a.chain)
    )
    return [r[0] for r in rows]


def iter_chain(session: Any, chain: str, batch: int = 5000) -> Iterator[Any]:
    """A chain's entries in place order: before-v7 site entries (by seq), then placed ones."""
    if chain == SITE:
        last = 0
        while True:
            rows = (
                session.execute(
                    select(m.AuditEntry)
                    .where(_a.chain_seq.is_(None), _a.seq > last)
                    .order_by(_a.seq)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if not rows:
                break
            yield from rows
            last = rows[-1].seq
            session.expunge_all()
    last = 0
    while True:
        rows = (
            session.execute(
                select(m.AuditEntry)
                .where(_a.chain == chain, _a.chain_seq > last)
                .order_by(_a.chain_seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].chain_seq
        session.expunge_all()
