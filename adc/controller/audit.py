"""The audit trail: an append-only, hash-chained log written in the same transaction as the change.

Each entry's hash is SHA-256 over a canonical encoding of (seq, at, actor, witness, action, payload,
prev_hash): JSON with sorted keys, no whitespace, UTF-8. Changing, removing or reordering any entry
breaks the chain from that entry on, and `verify_chain` names the first broken one. The next sequence
number is read under the writer lock that `Database.write` takes, so two writers can never produce a
gap or a fork.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlmodel import Session

from adc.controller.clock import utc
from adc.controller.models import AuditEntry
from adc.errors import CheckFailed

if TYPE_CHECKING:
    from adc.controller.context import Controller

GENESIS_HASH = "0" * 64


def canonical_json(data: Any) -> str:
    """One byte-exact text for one value: how payloads are stored and hashed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def format_time(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    seq: int, at: str, actor: str, witness: str | None, action: str, payload: str, prev_hash: str
) -> str:
    """SHA-256 over the canonical encoding of an entry's fields (payload as its stored text)."""
    encoded = canonical_json(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "witness": witness,
            "action": action,
            "payload": payload,
            "prev_hash": prev_hash,
        }
    ).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def head(session: Session) -> tuple[int, str]:
    """The last entry's (sequence, hash); (0, genesis) for an empty trail."""
    row = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def entry_values(
    head: tuple[int, str],
    *,
    at: datetime,
    actor: str,
    action: str,
    payload: dict[str, Any],
    witness: str | None = None,
) -> dict[str, Any]:
    """The columns of the entry that follows `head` (its sequence and hash), hash computed."""
    last, prev = head
    seq = last + 1
    at_text = format_time(at)
    payload_text = canonical_json(payload)
    return {
        "seq": seq,
        "at": at_text,
        "actor": actor,
        "witness": witness,
        "action": action,
        "payload": payload_text,
        "prev_hash": prev,
        "hash": entry_hash(seq, at_text, actor, witness, action, payload_text, prev),
    }


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    payload: dict[str, Any],
    witness: str | None = None,
    after: tuple[int, str] | None = None,
) -> AuditEntry:
    """Append one entry. The caller holds the writer lock (see `Database.write`); `after` is the
    head it already read under that lock, if any (saves a query)."""
    values = entry_values(
        after if after is not None else head(session),
        at=at,
        actor=actor,
        action=action,
        payload=payload,
        witness=witness,
    )
    # A Core insert: the entry is never loaded back or changed, so it needs no unit of work.
    session.execute(insert(AuditEntry), [values])
    return AuditEntry(**values)


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_hash: str


def _entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Recompute the whole chain; raise CheckFailed naming the first entry that does not fit."""
    expected_seq, prev = 1, GENESIS_HASH
    for entry in _entries(session):
        problem = None
        if entry.seq != expected_seq:
            problem = f"sequence gap: expected entry {expected_seq}, found {entry.seq}"
        elif entry.prev_hash != prev:
            problem = "its previous-hash does not match the entry before it"
        else:
            computed = entry_hash(
                entry.seq,
                entry.at,
                entry.actor,
                entry.witness,
                entry.action,
                entry.payload,
                entry.prev_hash,
            )
            if computed != entry.hash:
                problem = f"its content does not match its hash (recorded {entry.hash[:16]}…, computed {computed[:16]}…)"
        if problem:
            raise CheckFailed(
                f"audit chain broken at entry {entry.seq} ({entry.action} by {entry.actor} at {entry.at}): {problem}"
            )
        expected_seq, prev = entry.seq + 1, entry.hash
    return ChainReport(entries=expected_seq - 1, head_hash=prev)


def verify_trail(ctl: Controller) -> ChainReport:
    """Verify the chain, and that no stock transaction refers to an entry past its end (a trail
    cut short at the tail leaves a valid chain, but orphaned references)."""
    from adc.controller.models import Transaction

    with ctl.read() as session:
        report = verify_chain(session)
        last_ref = session.execute(select(func.max(Transaction.audit_seq))).scalar() or 0
    if last_ref > report.entries:
        raise CheckFailed(
            f"audit trail ends at entry {report.entries}, but stock transactions refer to entry "
            f"{last_ref}: entries after {report.entries} are missing"
        )
    return report
