"""The discrepancy lifecycle: opened by a count, listed (overdue first), resolved with a reason, a
note and a valid witness (never editing what was recorded), escalated when overdue or unresolvable,
with a notification to pharmacists through the shortage sink."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import cabinet_policy, counts, discrepancies, settings, users
from adc.controller.audit import verify_trail
from adc.controller.clock import ManualClock
from adc.controller.discrepancies import Reason
from adc.controller.models import AuditEntry, Discrepancy, Transaction, TxnKind
from adc.errors import BadInput, Refused
from tests.controller.cs import assign, on_hand, snapshot, stock
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    MORPHINE_CART,
    PIN,
    Site,
    build_site,
)


@pytest.fixture
def opened(db_url: str) -> Any:
    """Morphine in D3-P1 (6 on record), a nurse's standing count of 4: discrepancy open."""
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    site = build_site(db_url, clock)
    assign(site, "D3-P1", MORPHINE_CART)
    stock(site, "D3-P1", MORPHINE_CART, 6)
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "false")
    result = counts.count_pocket(site.ctl, site.nurse, CABINET, "D3-P1", 4, access="remove")
    assert result.discrepancy_id
    yield site, clock, result.discrepancy_id
    site.ctl.db.close()


def row(site: Site, disc_id: int) -> Discrepancy:
    with site.ctl.read() as s:
        found = s.get(Discrepancy, disc_id)
        assert found is not None
        return found


def test_resolution_adds_its_own_record_and_edits_nothing_recorded(opened: Any) -> None:
    site, _, disc_id = opened
    before = row(site, disc_id)
    with site.ctl.read() as s:
        counted_txn = s.get(Transaction, before.transaction_id)
        txns_before = s.execute(select(Transaction).order_by(Transaction.id)).scalars().all()
    (listed,) = discrepancies.list_discrepancies(site.ctl, open_only=True)
    assert (listed.id, listed.expected, listed.counted, listed.difference, listed.opened_by) == (
        disc_id,
        6,
        4,
        -2,
        "nurse",
    )
    result = discrepancies.resolve(
        site.ctl,
        site.pharmacist,
        disc_id,
        Reason.MISCOUNT,
        "two cartridges in the adjacent lid, recounted with the nurse",
        witness=site.nurse,
    )
    assert (result.status, result.reason, result.witness, result.late) == (
        "resolved",
        "miscount",
        "nurse",
        False,
    )
    after = row(site, disc_id)
    evidence = ("expected", "counted", "opened_by", "opened_at", "transaction_id", "trigger")
    assert all(getattr(after, f) == getattr(before, f) for f in evidence)
    assert (after.status, after.reason, after.resolved_by, after.witness_id) == (
        "resolved",
        "miscount",
        site.pharmacist.user_id,
        site.nurse.user_id,
    )
    with site.ctl.read() as s:
        txns_after = s.execute(select(Transaction).order_by(Transaction.id)).scalars().all()
        assert s.get(Transaction, before.transaction_id) == counted_txn
    assert [t.id for t in txns_after[: len(txns_before)]] == [t.id for t in txns_before]
    (added,) = txns_after[len(txns_before) :]
    assert (added.kind, added.qty, added.witness_id, added.related_id, added.id) == (
        TxnKind.ADJUST,
        0,
        site.nurse.user_id,
        before.transaction_id,
        result.txn_id,
    )
    assert on_hand(site, "D3-P1") == 4  # resolution moves no stock
    (closed,) = discrepancies.list_discrepancies(site.ctl)
    assert closed.note == "two cartridges in the adjacent lid, recounted with the nurse"
    assert discrepancies.list_discrepancies(site.ctl, open_only=True) == []
    with site.ctl.read() as s:
        entry = s.get(AuditEntry, result.audit_seq)
        assert (entry.action, entry.witness, entry.actor) == (
            "discrepancy.resolve",
            "nurse",
            "pharmacist",
        )
    verify_trail(site.ctl)


def refusal(site: Site, call: Any, error: type[Exception], match: str) -> None:
    before = snapshot(site)
    with pytest.raises(error, match=match):
        call()
    assert snapshot(site) == before


def test_bad_resolutions_are_refused_and_change_nothing(opened: Any) -> None:
    site, _, disc_id = opened

    def resolve(disc: int = disc_id, **kw: Any) -> Any:
        args = {"reason": "miscount", "note": "found", "witness": site.nurse, **kw}
        actor = args.pop("actor", site.pharmacist)
        return discrepancies.resolve(site.ctl, actor, disc, **args)

    refusal(site, lambda: resolve(999), BadInput, "no discrepancy 999")
    refusal(site, lambda: resolve(witness=None), Refused, "needs a witness")
    refusal(site, lambda: resolve(witness=site.pharmacist), Refused, "cannot witness their own")
    refusal(site, lambda: resolve(witness=site.tech), Refused, "technician; .*nurse or pharmacist")
    refusal(site, lambda: resolve(actor=site.tech), Refused, "not allowed")
    refusal(site, lambda: resolve(reason="lost it"), BadInput, "unknown reason 'lost it'")
    refusal(site, lambda: resolve(note="  "), BadInput, "needs a note")
    users.disable_user(site.ctl, site.admin, "nurse")  # authenticated, then disabled
    refusal(site, lambda: resolve(), Refused, "witness nurse is disabled")
    users.add_user(site.ctl, site.admin, "nurse2", "nurse", PIN)
    second = users.authenticate(site.ctl, "nurse2", PIN)
    assert resolve(witness=second).status == "resolved"
    refusal(site, lambda: resolve(witness=second), Refused, "is resolved already .by pharmacist")


def test_the_scenario_runners_call_resolves(opened: Any) -> None:
    site, _, disc_id = opened
    result = discrepancies.resolve(
        site.ctl, site.pharmacist, disc_id, "miscount: reviewed on round", witness=site.nurse
    )
    assert (result.reason, result.note) == ("miscount", "reviewed on round")


def test_unresolvable_is_escalated_and_pharmacists_are_notified(
    opened: Any, tmp_path: Path
) -> None:
    site, _, disc_id = opened
    sink = tmp_path / "notes.jsonl"
    settings.set_setting(site.ctl, site.admin, "shortage-sink", f"file:{sink}")
    result = discrepancies.resolve(
        site.ctl,
        site.pharmacist,
        disc_id,
        "unresolvable",
        "no explanation; reported to the diversion team",
        witness=site.nurse,
    )
    assert result.status == "escalated"
    (line,) = [json.loads(x) for x in sink.read_text().splitlines()]
    assert (line["notification"], line["to"], line["id"], line["status"]) == (
        "discrepancy-escalated",
        "pharmacists",
        disc_id,
        "escalated",
    )
    assert discrepancies.escalate_overdue(site.ctl) == []
    assert len(sink.read_text().splitlines()) == 1  # delivered once


def test_overdue_discrepancies_are_escalated_once_listed_first_and_notified(
    opened: Any, tmp_path: Path
) -> None:
    site, clock, late_id = opened
    # a later, non-controlled discrepancy: open, never overdue (no deadline)
    assign(site, "D1-P1", ACETAMINOPHEN)
    stock(site, "D1-P1", ACETAMINOPHEN, 5)
    other = counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D1-P1", 3).discrepancy_id
    clock.advance(23 * 3600)
    assert discrepancies.escalate_overdue(site.ctl) == []  # not yet: 24 h
    assert discrepancies.list_discrepancies(site.ctl, overdue_only=True) == []
    clock.advance(2 * 3600)
    sink = tmp_path / "notes.jsonl"
    settings.set_setting(site.ctl, site.admin, "shortage-sink", f"file:{tmp_path}/missing/x")
    assert discrepancies.escalate_overdue(site.ctl) == [late_id]
    assert site.ctl.delivery_errors  # the sink failed: retried later, not lost
    assert discrepancies.escalate_overdue(site.ctl) == []  # escalated once
    settings.set_setting(site.ctl, site.admin, "shortage-sink", f"file:{sink}")
    assert discrepancies.escalate_overdue(site.ctl) == []
    (line,) = [json.loads(x) for x in sink.read_text().splitlines()]
    assert (line["id"], line["overdue"], line["escalated"]) == (late_id, True, True)
    rows = discrepancies.list_discrepancies(site.ctl)
    assert [r.id for r in rows] == [late_id, other]  # overdue first, though opened first anyway
    assert [r.id for r in discrepancies.list_discrepancies(site.ctl, overdue_only=True)] == [
        late_id
    ]
    result = discrepancies.resolve(
        site.ctl, site.pharmacist, late_id, "miscount", "recounted", witness=site.nurse
    )
    assert result.late
    assert discrepancies.list_discrepancies(site.ctl, overdue_only=True) == []


def test_listing_order_overdue_then_open_then_closed(opened: Any) -> None:
    site, clock, cs_id = opened
    assign(site, "D1-P1", ACETAMINOPHEN)
    stock(site, "D1-P1", ACETAMINOPHEN, 5)
    first = counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D1-P1", 3).discrepancy_id
    second = counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D1-P1", 1).discrepancy_id
    discrepancies.resolve(site.ctl, site.pharmacist, first, "miscount", "ok", witness=site.nurse)
    assert [r.id for r in discrepancies.list_discrepancies(site.ctl)] == [cs_id, second, first]
    clock.advance(days=2)
    listed = discrepancies.list_discrepancies(site.ctl)
    assert [(r.id, r.overdue) for r in listed] == [(cs_id, True), (second, False), (first, False)]
    assert [r.id for r in discrepancies.list_discrepancies(site.ctl, cabinet="CS9")] == []
