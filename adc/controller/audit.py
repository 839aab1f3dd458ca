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
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import Session

from adc.controller import audit_chains as chains
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
    seq: int,
    at: str,
    actor: str,
    witness: str | None,
    action: str,
    payload: str,
    prev_hash: str,
    chain: str | None = None,
    entry_id: int | None = None,
) -> str:
    """SHA-256 over the canonical encoding of an entry's fields (payload as its stored text).

    `seq` is the entry's place in its chain. A chained entry (schema v7 on) also covers its
    `chain` and its unique number `entry_id`; an entry from before v7 (chain None) does not."""
    fields: dict[str, Any] = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "witness": witness,
        "action": action,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    if chain is not None:
        fields["chain"] = chain
        fields["id"] = entry_id
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def stored_hash(entry: AuditEntry) -> str:
    """The hash an entry as stored should have (before-v7 entries: no chain, placed by seq)."""
    if entry.chain_seq is None:
        return entry_hash(
            entry.seq,
            entry.at,
            entry.actor,
            entry.witness,
            entry.action,
            entry.payload,
            entry.prev_hash,
        )
    return entry_hash(
        entry.chain_seq,
        entry.at,
        entry.actor,
        entry.witness,
        entry.action,
        entry.payload,
        entry.prev_hash,
        entry.chain,
        entry.seq,
    )


def head(session: Session, chain: str = chains.SITE) -> tuple[int, str]:
    """A chain's last entry's (place, hash); (0, genesis) for an empty chain."""
    return chains.read_head(chains.session_runner(session), chain)


def entry_values(
    head: tuple[int, str],
    *,
    at: datetime,
    actor: str,
    action: str,
    payload: dict[str, Any],
    witness: str | None = None,
    chain: str = chains.SITE,
    entry_id: int,
) -> dict[str, Any]:
    """The columns of the entry that follows `head` (place, hash) in `chain`, hash computed;
    `entry_id` is its unique number (chains.next_id)."""
    last, prev = head
    place = last + 1
    at_text = format_time(at)
    payload_text = canonical_json(payload)
    return {
        "seq": entry_id,
        "chain": chain,
        "chain_seq": place,
        "at": at_text,
        "actor": actor,
        "witness": witness,
        "action": action,
        "payload": payload_text,
        "prev_hash": prev,
        "hash": entry_hash(
            place, at_text, actor, witness, action, payload_text, prev, chain, entry_id
        ),
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
    chain: str = chains.SITE,
) -> AuditEntry:
    """Append one entry to `chain`. The caller holds that chain's writer lock (see
    `Database.write`); `after` is the head it already read under that lock, if any."""
    run = chains.session_runner(session)
    values = entry_values(
        after if after is not None else chains.read_head(run, chain),
        at=at,
        actor=actor,
        action=action,
        payload=payload,
        witness=witness,
        chain=chain,
        entry_id=chains.next_id(run, session.get_bind().dialect.name, upgrading=True),
    )
    # A Core insert: the entry is never loaded back or changed, so it needs no unit of work.
    session.execute(chains.q_insert(), [values])
    return AuditEntry(**values)


@dataclass(frozen=True)
class ChainReport:
    chain: str
    entries: int
    head_hash: str


@dataclass(frozen=True)
class TrailReport:
    """Every chain verified (site first), and how many anchors were checked."""

    chains: list[ChainReport]
    anchors: int

    @property
    def entries(self) -> int:
        return sum(c.entries for c in self.chains)

    @property
    def head_hash(self) -> str:
        """The site chain's head: the anchors in it commit to every other chain."""
        return self.chains[0].head_hash if self.chains else GENESIS_HASH


@dataclass
class _Anchor:
    place: int  # its place in the site chain
    seq: int
    heads: dict[str, tuple[int, str]]


def _broken(chain: str, entry: AuditEntry, place: int, problem: str) -> CheckFailed:
    return CheckFailed(
        f"audit chain {chain} broken at entry {place} (#{entry.seq} {entry.action} by "
        f"{entry.actor} at {entry.at}): {problem}"
    )


def verify_chain(
    session: Session,
    chain: str = chains.SITE,
    *,
    anchors: list[_Anchor] | None = None,
    wanted: dict[int, list[tuple[_Anchor, str]]] | None = None,
) -> ChainReport:
    """Recompute one chain; raise CheckFailed naming the chain and the first entry that does not
    fit. `anchors` collects the site chain's anchors; `wanted` (place → anchors that recorded a
    hash there) is checked as the chain goes by."""
    expected, prev = 1, GENESIS_HASH
    wanted = wanted or {}
    for entry in chains.iter_chain(session, chain):
        place = entry.chain_seq if entry.chain_seq is not None else entry.seq
        problem = None
        if entry.chain != chain:
            problem = f"it is labelled chain {entry.chain}"
        elif place != expected:
            problem = f"sequence gap: expected entry {expected}, found {place}"
        elif entry.prev_hash != prev:
            problem = "its previous-hash does not match the entry before it"
        else:
            computed = stored_hash(entry)
            if computed != entry.hash:
                problem = (
                    f"its content does not match its hash (recorded {entry.hash[:16]}…, "
                    f"computed {computed[:16]}…)"
                )
        if problem is None:
            for anchor, digest in wanted.pop(place, []):
                if digest != entry.hash:
                    problem = (
                        f"site anchor entry {anchor.place} recorded hash {digest[:16]}… here, "
                        f"the chain has {entry.hash[:16]}…"
                    )
        if problem is None and anchors is not None and entry.action == chains.ANCHOR_ACTION:
            problem = _take_anchor(entry, place, anchors)
        if problem:
            raise _broken(chain, entry, place, problem)
        expected, prev = place + 1, entry.hash
    if wanted:
        place = min(wanted)
        anchor, digest = wanted[place][0]
        raise CheckFailed(
            f"audit chain {chain} ends at entry {expected - 1}, but site anchor entry "
            f"{anchor.place} (#{anchor.seq}) recorded its entry {place} (hash {digest[:16]}…): "
            + ("the whole chain is missing" if expected == 1 else "entries are missing")
        )
    return ChainReport(chain=chain, entries=expected - 1, head_hash=prev)


def _take_anchor(entry: AuditEntry, place: int, anchors: list[_Anchor]) -> str | None:
    """Note an anchor entry of the site chain; what is wrong with it, if anything."""
    try:
        heads = chains.parse_anchor(entry.payload)
        root = json.loads(entry.payload)["root"]
    except (ValueError, KeyError, TypeError, IndexError):
        return "its anchor payload is unreadable"
    if chains.merkle_root(heads) != root:
        return "its Merkle root does not match the heads it lists"
    anchors.append(_Anchor(place=place, seq=entry.seq, heads=heads))
    return None


def verify_all(session: Session, cabinet: str | None = None) -> TrailReport:
    """The site chain, then every cabinet chain (or only `cabinet`'s), each against every anchor
    that recorded one of its heads."""
    found: list[_Anchor] = []
    reports = [verify_chain(session, chains.SITE, anchors=found)]
    names = set(chains.cabinet_chains(session))
    for anchor in found:
        names.update(anchor.heads)
    if cabinet is not None:
        names = {chains.chain_of(cabinet)}
    for name in sorted(names):
        wanted: dict[int, list[tuple[_Anchor, str]]] = {}
        for anchor in found:
            if name in anchor.heads:
                place, digest = anchor.heads[name]
                wanted.setdefault(place, []).append((anchor, digest))
        reports.append(verify_chain(session, name, wanted=wanted))
    return TrailReport(chains=reports, anchors=len(found))


def verify_trail(ctl: Controller, cabinet: str | None = None) -> TrailReport:
    """Verify the chains and anchors, and that every stock transaction's audit entry exists (a
    chain cut short after its last anchor still verifies, but leaves orphaned references)."""
    from adc.controller.models import Transaction

    with ctl.read() as session:
        report = verify_all(session, cabinet)
        orphan = (
            select(Transaction.audit_seq, Transaction.cabinet_id)
            .outerjoin(AuditEntry, AuditEntry.seq == Transaction.audit_seq)
            .where(AuditEntry.seq.is_(None))
            .order_by(Transaction.audit_seq)
            .limit(1)
        )
        if cabinet is not None:
            orphan = orphan.where(Transaction.cabinet_id == cabinet)
        missing = session.execute(orphan).first()
    if missing is not None:
        raise CheckFailed(
            f"audit entry #{missing[0]} is missing: a stock transaction of cabinet {missing[1]} "
            "refers to it"
        )
    return report
