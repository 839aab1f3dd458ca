"""The audit trail: every change appends a chained entry in its own transaction; tampering,
gaps and truncation are found; two writers at once keep the sequence gap-free."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select, text

from adc.controller import audit, inventory
from adc.controller.audit import canonical_json, entry_hash, verify_chain, verify_trail
from adc.controller.context import Controller
from adc.controller.db import open_database
from adc.controller.gs1 import parse_scan
from adc.controller.models import AuditEntry, Setting
from adc.controller.permissions import Action
from adc.errors import CheckFailed
from tests.controller.site import ACETAMINOPHEN, CABINET, HEPARIN, Site, datamatrix


def _drop_triggers(site: Site) -> None:
    """What an attacker with database admin rights would do first."""
    with site.ctl.db.write() as session:
        if site.ctl.db.dialect == "sqlite":
            session.execute(text("DROP TRIGGER audit_entry_no_update"))
            session.execute(text("DROP TRIGGER audit_entry_no_delete"))
        else:
            session.execute(text("DROP TRIGGER audit_entry_no_change ON audit_entry"))


def test_every_change_is_audited_with_a_valid_chain(site: Site) -> None:
    with site.ctl.read() as session:
        entries = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
    actions = [e.action for e in entries]
    assert actions[:3] == ["db.init", "user.add", "user.add"]
    assert {"formulary.import", "cabinet.add"} <= set(actions)
    site_chain = [e for e in entries if e.chain == "site"]
    assert [e.chain_seq for e in site_chain] == list(range(1, len(site_chain) + 1))
    first, second = entries[0], entries[1]
    assert first.prev_hash == audit.GENESIS_HASH and second.prev_hash == first.hash
    assert second.hash == entry_hash(
        second.chain_seq,
        second.at,
        second.actor,
        second.witness,
        second.action,
        second.payload,
        second.prev_hash,
        "site",
        second.seq,
    )
    assert verify_trail(site.ctl).entries == len(entries)


def test_canonical_encoding_does_not_depend_on_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"a": "é"}) == '{"a":"é"}'


def test_a_stock_change_and_its_entry_share_the_sequence(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN)
    scan = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 1, 31), "A1"))
    movement = inventory.refill(site.ctl, site.tech, CABINET, "D1-P1", scan, 5)
    with site.ctl.read() as session:
        entry = session.get(AuditEntry, movement.audit_seq)
    assert entry.action == "stock.refill" and entry.actor == "technician"
    assert '"lot":"A1"' in entry.payload and '"on_hand":5' in entry.payload


@pytest.mark.parametrize("field", ["payload", "actor", "at"])
def test_a_tampered_entry_is_named(site: Site, field: str) -> None:
    _drop_triggers(site)
    with site.ctl.db.write() as session:
        session.execute(text(f"UPDATE audit_entry SET {field} = {field} || 'x' WHERE seq = 3"))
    with pytest.raises(
        CheckFailed, match=r"audit chain site broken at entry 3 \(#3 user.add by admin"
    ):
        verify_trail(site.ctl)


def test_a_deleted_entry_is_a_gap(site: Site) -> None:
    _drop_triggers(site)
    with site.ctl.db.write() as session:
        session.execute(text("DELETE FROM audit_entry WHERE seq = 4"))
    with pytest.raises(
        CheckFailed, match=r"chain site broken at entry 5 .*expected entry 4, found 5"
    ):
        verify_trail(site.ctl)


def test_a_cut_tail_is_found_through_the_stock_transactions(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN)
    scan = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 1, 31), "A1"))
    movement = inventory.refill(site.ctl, site.tech, CABINET, "D1-P1", scan, 5)
    _drop_triggers(site)
    with site.ctl.db.write() as session:
        session.execute(text(f"DELETE FROM audit_entry WHERE seq >= {movement.audit_seq}"))
    with pytest.raises(
        CheckFailed,
        match=f"audit entry #{movement.audit_seq} is missing: a stock transaction of cabinet",
    ):
        verify_trail(site.ctl)


def test_a_change_without_an_audit_entry_is_not_committed(site: Site) -> None:
    with (
        pytest.raises(RuntimeError, match="without an audit entry"),
        site.ctl.write(site.admin, Action.SETTINGS_MANAGE) as tx,
    ):
        tx.session.add(Setting(key="policy.short_dated_days", value="9"))
    with site.ctl.read() as session:
        assert session.get(Setting, "policy.short_dated_days") is None


def test_two_writers_at_once_keep_the_chain_gap_free(site: Site) -> None:
    """Two controllers (own engines, own connections) refill two pockets in parallel threads."""
    site.assign("D1-P1", ACETAMINOPHEN, par=40, critical_low=1, max_qty=50)
    site.assign("D1-P2", HEPARIN, par=40, critical_low=1, max_qty=50)
    before = verify_trail(site.ctl).entries
    per_writer = 60  # refills and removals, alternating
    errors: list[BaseException] = []

    def writer(pocket: str, gtin: str) -> None:
        ctl = Controller(open_database(site.url), site.clock)
        scan = parse_scan(datamatrix(gtin, date(2027, 1, 31), f"L{pocket}"))
        try:
            for _ in range(per_writer // 2):
                inventory.refill(ctl, site.tech, CABINET, pocket, scan, 2)
                inventory.remove(ctl, site.nurse, CABINET, pocket, 1)
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)
        finally:
            ctl.db.close()

    threads = [
        threading.Thread(target=writer, args=("D1-P1", ACETAMINOPHEN)),
        threading.Thread(target=writer, args=("D1-P2", HEPARIN)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    report = verify_trail(site.ctl)
    cabinet_chain = {c.chain: c.entries for c in report.chains}[f"cabinet:{CABINET}"]
    assert cabinet_chain == 2 * per_writer  # both writers' changes in the cabinet's one chain
    assert report.anchors == 1  # its head reached 100: anchored in the site chain
    assert report.entries == before + 2 * per_writer + report.anchors
    with site.ctl.read() as session:
        places = (
            session.execute(
                select(AuditEntry.chain_seq)
                .where(AuditEntry.chain == f"cabinet:{CABINET}")
                .order_by(AuditEntry.chain_seq)
            )
            .scalars()
            .all()
        )
        assert places == list(range(1, 2 * per_writer + 1))
        refills = select(func.count()).where(AuditEntry.action == "stock.refill")
        assert session.execute(refills).scalar() == per_writer
        assert verify_chain(session).head_hash == report.head_hash
