"""Chains per cabinet: each cabinet's changes in its own chain, site-wide ones in the site chain,
cabinet heads anchored in the site chain; every kind of tampering is found and named."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from adc.controller.audit import verify_trail
from adc.controller.audit_chains import ANCHOR_ACTION, merkle_root
from adc.controller.models import AuditEntry
from adc.errors import CheckFailed
from tests.conftest import run_adc
from tests.fleet.fleet import Fleet


def _busy(fleet: Fleet, changes: int = 3) -> None:
    for _ in range(changes):
        for cabinet in ("W1", "W2"):
            fleet.refill(cabinet, 2)
            fleet.remove(cabinet, 1)


def _entries(fleet: Fleet, chain: str) -> list[AuditEntry]:
    with fleet.site.ctl.read() as session:
        return list(
            session.execute(
                select(AuditEntry).where(AuditEntry.chain == chain).order_by(AuditEntry.chain_seq)
            ).scalars()
        )


def test_each_cabinet_has_its_own_chain_and_site_changes_the_site_chain(fleet: Fleet) -> None:
    _busy(fleet)
    w1, w2, site = (_entries(fleet, c) for c in ("cabinet:W1", "cabinet:W2", "site"))
    assert [e.chain_seq for e in w1] == list(range(1, 7))
    assert [e.chain_seq for e in w2] == list(range(1, 7))
    assert {e.action for e in w1} == {"stock.refill", "stock.remove"}
    assert {"db.init", "user.add", "cabinet.add", "pocket.assign"} <= {e.action for e in site}
    assert w1[1].prev_hash == w1[0].hash and w2[0].prev_hash == "0" * 64
    report = verify_trail(fleet.site.ctl)
    chains = {c.chain: c.entries for c in report.chains}
    assert chains == {"site": len(site), "cabinet:W1": 6, "cabinet:W2": 6}


def test_an_anchor_records_every_cabinet_head_and_their_root(fleet: Fleet) -> None:
    _busy(fleet)
    seq = fleet.site.ctl.anchor()
    assert seq is not None
    assert fleet.site.ctl.anchor() is None  # nothing moved since: no second anchor
    anchor = _entries(fleet, "site")[-1]
    assert anchor.action == ANCHOR_ACTION and anchor.seq == seq
    heads = {
        c: (e[-1].chain_seq, e[-1].hash)
        for c in ("cabinet:W1", "cabinet:W2")
        for e in [_entries(fleet, c)]
    }
    assert f'"root":"{merkle_root(heads)}"' in anchor.payload
    assert verify_trail(fleet.site.ctl).anchors == 1


def test_an_edited_cabinet_entry_is_named_with_its_chain(fleet: Fleet) -> None:
    _busy(fleet)
    target = _entries(fleet, "cabinet:W2")[2]
    fleet.admin_sql(f"UPDATE audit_entry SET payload = payload || ' ' WHERE seq = {target.seq}")
    with pytest.raises(
        CheckFailed, match=rf"audit chain cabinet:W2 broken at entry 3 \(#{target.seq} "
    ):
        verify_trail(fleet.site.ctl)
    verify_trail(fleet.site.ctl, "W1")  # the other cabinet's chain alone verifies


def test_a_deleted_cabinet_entry_is_a_gap_in_its_chain(fleet: Fleet) -> None:
    _busy(fleet)
    target = _entries(fleet, "cabinet:W1")[3]
    fleet.admin_sql(
        f"DELETE FROM stock_transaction WHERE audit_seq = {target.seq}",
        f"DELETE FROM audit_entry WHERE seq = {target.seq}",
    )
    with pytest.raises(
        CheckFailed, match=r"chain cabinet:W1 broken at entry 5 .*expected entry 4, found 5"
    ):
        verify_trail(fleet.site.ctl)


def test_two_reordered_entries_are_found(fleet: Fleet) -> None:
    _busy(fleet)
    a, b = _entries(fleet, "cabinet:W1")[1:3]
    fleet.admin_sql(
        f"UPDATE audit_entry SET chain_seq = -1 WHERE seq = {a.seq}",
        f"UPDATE audit_entry SET chain_seq = 2 WHERE seq = {b.seq}",
        f"UPDATE audit_entry SET chain_seq = 3 WHERE seq = {a.seq}",
    )
    with pytest.raises(CheckFailed, match=r"chain cabinet:W1 broken at entry 2 .*previous-hash"):
        verify_trail(fleet.site.ctl)


def test_a_dropped_chain_is_found_through_the_anchor(fleet: Fleet) -> None:
    _busy(fleet)
    fleet.site.ctl.anchor()
    fleet.admin_sql(
        "DELETE FROM stock_transaction WHERE cabinet_id = 'W2'",
        "DELETE FROM audit_entry WHERE chain = 'cabinet:W2'",
    )
    with pytest.raises(
        CheckFailed,
        match=r"chain cabinet:W2 ends at entry 0, but site anchor entry \d+ .*whole chain is missing",
    ):
        verify_trail(fleet.site.ctl)
    with pytest.raises(CheckFailed, match="cabinet:W2"):
        verify_trail(fleet.site.ctl, "W2")


def test_a_chain_cut_below_its_anchor_is_found(fleet: Fleet) -> None:
    _busy(fleet)
    fleet.site.ctl.anchor()
    cut = _entries(fleet, "cabinet:W1")[4:]
    seqs = ", ".join(str(e.seq) for e in cut)
    fleet.admin_sql(
        f"DELETE FROM stock_transaction WHERE audit_seq IN ({seqs})",
        f"DELETE FROM audit_entry WHERE seq IN ({seqs})",
    )
    with pytest.raises(
        CheckFailed,
        match=r"chain cabinet:W1 ends at entry 4, but site anchor .* recorded its entry 6",
    ):
        verify_trail(fleet.site.ctl)


def test_two_cabinets_chains_swapped_are_found(fleet: Fleet) -> None:
    _busy(fleet)
    fleet.admin_sql(
        "UPDATE audit_entry SET chain = 'swap' WHERE chain = 'cabinet:W1'",
        "UPDATE audit_entry SET chain = 'cabinet:W1' WHERE chain = 'cabinet:W2'",
        "UPDATE audit_entry SET chain = 'cabinet:W2' WHERE chain = 'swap'",
    )
    with pytest.raises(
        CheckFailed, match=r"chain cabinet:W1 broken at entry 1 .*does not match its hash"
    ):
        verify_trail(fleet.site.ctl)


def test_an_edited_anchor_is_found(fleet: Fleet) -> None:
    _busy(fleet)
    seq = fleet.site.ctl.anchor()
    fleet.admin_sql(
        f"UPDATE audit_entry SET payload = replace(payload, '\"root\"', '\"root\" ') WHERE seq = {seq}"
    )
    with pytest.raises(
        CheckFailed, match=rf"chain site broken at entry \d+ \(#{seq} audit.anchor by system"
    ):
        verify_trail(fleet.site.ctl)


def test_a_chain_is_anchored_on_its_own_every_hundred_entries(fleet: Fleet) -> None:
    for _ in range(50):
        fleet.refill("W2", 2)
        fleet.remove("W2", 2)
    anchors = [e for e in _entries(fleet, "site") if e.action == ANCHOR_ACTION]
    assert len(anchors) == 1
    w2 = _entries(fleet, "cabinet:W2")
    assert f'"cabinet:W2":[100,"{w2[99].hash}"]' in anchors[0].payload
    assert verify_trail(fleet.site.ctl).anchors == 1


def test_audit_verify_names_the_broken_chain_and_verifies_one_cabinet(fleet: Fleet) -> None:
    _busy(fleet, 1)
    url = fleet.site.url
    ok = run_adc("audit", "verify", "--db", url)
    assert ok.returncode == 0, ok.stderr
    assert "3 chains" in ok.stdout and "cabinet:W1: 2 entries" in ok.stdout
    anchored = run_adc("audit", "anchor", "--db", url)
    assert anchored.returncode == 0 and "site entry #" in anchored.stdout, anchored.stderr
    target = _entries(fleet, "cabinet:W2")[0]
    fleet.admin_sql(f"UPDATE audit_entry SET actor = 'mallory' WHERE seq = {target.seq}")
    broken = run_adc("audit", "verify", "--db", url)
    assert broken.returncode == 1
    assert (
        broken.stderr.count("\n") == 1
        and "audit chain cabinet:W2 broken at entry 1" in broken.stderr
    )
    assert run_adc("audit", "verify", "--db", url, "--cabinet", "W1").returncode == 0
    assert run_adc("audit", "verify", "--db", url, "--cabinet", "W2").returncode == 1
    unknown = run_adc("audit", "verify", "--db", url, "--cabinet", "NOPE")
    assert (
        unknown.returncode == 2 and "NOPE" in unknown.stderr and "Traceback" not in unknown.stderr
    )
