"""Stock operations without hardware: FEFO, blocks, pulls, counts, discrepancies, recalls,
shortage notifications and their delivery, and the reports built on them."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from adc.controller import counts, inventory, recalls, reports, settings, shortages
from adc.controller.clock import ManualClock
from adc.controller.gs1 import parse_scan
from adc.controller.models import Discrepancy, StockLot, Transaction
from adc.errors import BadInput, Refused
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    HEPARIN,
    MORPHINE_CART,
    ONDANSETRON_VIAL,
    Site,
    build_site,
    datamatrix,
)


@pytest.fixture
def mclock_site(db_url: str):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    site = build_site(db_url, clock)
    yield site, clock
    site.ctl.db.close()


def scan(gtin: str, expiry: date, lot: str):  # type: ignore[no-untyped-def]
    return parse_scan(datamatrix(gtin, expiry, lot))


def refill(site: Site, pocket: str, gtin: str, expiry: date, lot: str, qty: int, **kw: object):  # type: ignore[no-untyped-def]
    return inventory.refill(
        site.ctl, site.tech, CABINET, pocket, scan(gtin, expiry, lot), qty, **kw
    )  # type: ignore[arg-type]


def lots(site: Site, pocket_code: str) -> dict[str, int]:
    with site.ctl.read() as s:
        rows = s.execute(select(StockLot.lot, StockLot.qty).order_by(StockLot.id)).all()
    return {lot: qty for lot, qty in rows}


def test_removal_takes_the_earliest_expiry_first(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN, par=20, critical_low=2, max_qty=30)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 9, 30), "LATE", 5)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 3, 31), "EARLY", 4)
    movement = inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 6)
    assert movement.qty == -6 and len(movement.txn_ids) == 2  # one transaction per lot
    assert lots(site, "D1-P1") == {"LATE": 3, "EARLY": 0}
    with pytest.raises(Refused, match="holds 3, cannot remove 4"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 4)


def test_refill_rules_hold_without_a_session(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN, par=10, critical_low=2, max_qty=12)
    good = date(2027, 1, 31)
    with pytest.raises(Refused, match="wrong drug: scanned Heparin"):
        refill(site, "D1-P1", HEPARIN, good, "H", 1)
    with pytest.raises(Refused, match="expired lot"):
        refill(site, "D1-P1", ACETAMINOPHEN, date(2026, 1, 31), "OLD", 1)
    with pytest.raises(Refused, match="at most 12 more, not 13"):
        refill(site, "D1-P1", ACETAMINOPHEN, good, "A", 13)
    with pytest.raises(BadInput, match="at least 1"):
        refill(site, "D1-P1", ACETAMINOPHEN, good, "A", 0)
    with pytest.raises(Refused, match="has no item assigned: load it instead"):
        refill(site, "D1-P2", ACETAMINOPHEN, good, "A", 1)
    with pytest.raises(BadInput, match="has no pocket 'D9-P9'"):
        refill(site, "D9-P9", ACETAMINOPHEN, good, "A", 1)
    # a misspelt cabinet is named as unknown, not as a cabinet without the pocket (both paths)
    with pytest.raises(BadInput, match="no cabinet 'NOPE'"):
        inventory.remove(site.ctl, site.nurse, "NOPE", "D1-P1", 1)
    with pytest.raises(BadInput, match="no cabinet 'NOPE'"):
        inventory.unload(site.ctl, site.tech, "NOPE", "D1-P1", 0)


def test_an_expired_lot_blocks_removal_until_pulled(mclock_site) -> None:  # type: ignore[no-untyped-def]
    site, clock = mclock_site
    site.assign("D1-P1", ONDANSETRON_VIAL, par=10, critical_low=2, max_qty=20)
    refill(site, "D1-P1", ONDANSETRON_VIAL, date(2026, 1, 10), "SOON", 3, confirm_short_dated=True)
    refill(site, "D1-P1", ONDANSETRON_VIAL, date(2027, 1, 31), "LATER", 6)
    assert reports.expiring(site.ctl, 30)[0].lot == "SOON"
    clock.advance(days=10)  # 2026-01-11: SOON expired yesterday
    expiring = reports.expiring(site.ctl, 30)
    assert [(e.lot, e.expired, e.days_left) for e in expiring] == [("SOON", True, -1)]
    assert reports.pockets(site.ctl, CABINET)[0].blocked == "expired"
    with pytest.raises(Refused, match="expired lot SOON \\(2026-01-10\\): removal blocked"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1)
    with pytest.raises(Refused, match="pull it before restocking"):
        refill(site, "D1-P1", ONDANSETRON_VIAL, date(2027, 1, 31), "LATER", 1)
    pulled = inventory.pull(site.ctl, site.tech, CABINET, "D1-P1", 2)  # one vial was missing
    assert (pulled.qty, pulled.on_hand) == (-3, 6) and pulled.discrepancy_id is not None
    with site.ctl.read() as s:
        disc = s.get(Discrepancy, pulled.discrepancy_id)
        txn = s.execute(select(Transaction).where(Transaction.kind == "pull")).scalar_one()
    assert (disc.trigger, disc.expected, disc.counted) == ("pull", 3, 2)
    assert (txn.reason, txn.expected, txn.counted) == ("expired", 3, 2)
    assert inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1).on_hand == 5
    with pytest.raises(Refused, match="holds no expired or recalled stock"):
        inventory.pull(site.ctl, site.tech, CABINET, "D1-P1", 0)


def test_a_recall_blocks_every_pocket_holding_the_lot(site: Site) -> None:
    site.assign("D1-P1", HEPARIN)
    site.assign("D2-P1", HEPARIN)
    good = date(2027, 1, 31)
    refill(site, "D1-P1", HEPARIN, good, "H-77", 4)
    refill(site, "D2-P1", HEPARIN, good, "H-77", 2)
    refill(site, "D2-P1", HEPARIN, good, "H-78", 5)
    blocked = recalls.add_recall(site.ctl, site.pharmacist, HEPARIN, "H-77", "FDA class I")
    assert blocked == ["W1/D1-P1", "W1/D2-P1"]
    listed = recalls.recalled_stock(site.ctl)
    assert [(r.pocket, r.lot, r.qty, r.reason) for r in listed] == [
        ("D1-P1", "H-77", 4, "FDA class I"),
        ("D2-P1", "H-77", 2, "FDA class I"),
    ]
    with pytest.raises(Refused, match="recalled lot H-77"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D2-P1", 1)
    with pytest.raises(
        Refused, match=r"recalled lot: GTIN .* lot H-77 is under recall \(FDA class I\)"
    ):
        refill(site, "D2-P1", HEPARIN, good, "H-77", 1)
    with pytest.raises(Refused, match="recalled already"):
        recalls.add_recall(site.ctl, site.pharmacist, HEPARIN, "H-77")
    pulled = inventory.pull(site.ctl, site.tech, CABINET, "D2-P1", 2)
    assert pulled.on_hand == 5
    assert [r.pocket for r in recalls.recalled_stock(site.ctl)] == ["D1-P1"]
    assert inventory.remove(site.ctl, site.nurse, CABINET, "D2-P1", 1).on_hand == 4


def test_recall_csv_import_is_all_or_nothing(site: Site, tmp_path: Path) -> None:
    csv = tmp_path / "recalls.csv"
    csv.write_text(f"gtin,lot,reason\n{HEPARIN},A1,x\n123,A2,\n{HEPARIN},,\n")
    with pytest.raises(BadInput) as err:
        recalls.import_recalls(site.ctl, site.pharmacist, csv)
    assert [d.split(":")[0] for d in err.value.details] == ["line 3", "line 4"]
    assert recalls.recalled_stock(site.ctl) == []
    csv.write_text(f"gtin,lot\n{HEPARIN},A1\n{HEPARIN},A2\n{HEPARIN},A1\n")
    result = recalls.import_recalls(site.ctl, site.pharmacist, csv)
    assert (result.added, result.already) == (2, 1)
    assert recalls.import_recalls(site.ctl, site.pharmacist, csv).added == 0


def test_count_follows_the_person_and_opens_a_discrepancy(site: Site) -> None:
    site.assign("D3-P1", MORPHINE_CART, par=10, critical_low=2, max_qty=10)
    counts.count_pocket(site.ctl, site.tech, CABINET, "D3-P1", 0, access="refill")  # CS: on access
    refill(site, "D3-P1", MORPHINE_CART, date(2027, 1, 31), "M1", 6)
    same = inventory.count(site.ctl, site.nurse, CABINET, "D3-P1", 6)
    assert (same.qty, same.discrepancy_id) == (0, None)
    short = inventory.count(site.ctl, site.nurse, CABINET, "D3-P1", 5)
    assert (short.qty, short.on_hand) == (-1, 5)
    with site.ctl.read() as s:
        disc = s.get(Discrepancy, short.discrepancy_id)
    assert (disc.expected, disc.counted, disc.trigger, disc.status) == (6, 5, "count", "open")
    assert disc.deadline == disc.opened_at + timedelta(hours=24)  # schedule II: resolve by then
    over = inventory.count(site.ctl, site.nurse, CABINET, "D3-P1", 7)
    assert over.on_hand == 7 and lots(site, "D3-P1") == {"M1": 7}
    site.assign("D3-P2", ONDANSETRON_VIAL)
    with pytest.raises(Refused, match="has no lot on record"):
        inventory.count(site.ctl, site.nurse, CABINET, "D3-P2", 2)


def test_unload_empties_and_unassigns_with_a_discrepancy_when_short(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 1, 31), "A1", 5)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 2, 28), "A2", 3)
    movement = inventory.unload(site.ctl, site.tech, CABINET, "D1-P1", 7)
    assert (movement.qty, movement.on_hand) == (-8, 0) and movement.discrepancy_id
    pocket = reports.pockets(site.ctl, CABINET)[0]
    assert (pocket.item, pocket.on_hand, pocket.par) == (None, 0, 0)
    assert shortages.list_shortages(site.ctl) == []  # an unassigned pocket is no shortage
    with pytest.raises(Refused, match="nothing to unload"):
        inventory.unload(site.ctl, site.tech, CABINET, "D1-P1", 0)


def test_shortages_open_once_escalate_and_resolve(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN, par=10, critical_low=3, max_qty=20)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 1, 31), "A1", 10)
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 7)  # 3: critical-low
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1)  # 2: still the same notification
    notes = shortages.list_shortages(site.ctl)
    assert [(n.kind, n.on_hand) for n in notes] == [("critical-low", 3)]
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 2)  # 0: stock-out supersedes
    notes = shortages.list_shortages(site.ctl, include_closed=True)
    assert [(n.kind, n.status) for n in notes] == [
        ("stock-out", "open"),
        ("critical-low", "resolved"),
    ]
    shortages.acknowledge(site.ctl, site.pharmacist, notes[0].id)
    assert shortages.list_shortages(site.ctl)[0].status == "acknowledged"
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 1, 31), "A1", 2)  # 2: not above critical yet
    assert [n.kind for n in shortages.list_shortages(site.ctl)] == ["stock-out"]
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 1, 31), "A1", 8)
    assert shortages.list_shortages(site.ctl) == []


def test_notifications_are_delivered_as_json_lines_to_a_file(site: Site, tmp_path: Path) -> None:
    sink = tmp_path / "shortages.jsonl"
    settings.set_setting(site.ctl, site.admin, "shortage-sink", f"file:{sink}")
    site.assign("D1-P1", ACETAMINOPHEN, par=10, critical_low=3, max_qty=20)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 1, 31), "A1", 4)
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1)  # delivered after the commit
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 3)
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [(n["kind"], n["pocket"], n["on_hand"]) for n in lines] == [
        ("critical-low", "D1-P1", 3),
        ("stock-out", "D1-P1", 0),
    ]
    assert lines[0]["item"] == "Acetaminophen 325 mg tablet" and lines[0]["ndc"] == "0904672261"
    assert all(n.delivered for n in shortages.list_shortages(site.ctl, include_closed=True))
    assert shortages.deliver_pending(site.ctl) == 0  # nothing is sent twice


def test_a_failing_sink_keeps_notifications_for_the_next_attempt(
    site: Site, tmp_path: Path
) -> None:
    received = tmp_path / "received.jsonl"
    settings.set_setting(site.ctl, site.admin, "shortage-sink", "command:false")
    site.assign("D1-P1", ACETAMINOPHEN, par=10, critical_low=3, max_qty=20)
    refill(site, "D1-P1", ACETAMINOPHEN, date(2027, 1, 31), "A1", 5)
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 5)  # committed despite the sink
    assert site.ctl.delivery_errors and "not delivered" in site.ctl.delivery_errors[-1]
    assert [n.delivered for n in shortages.list_shortages(site.ctl)] == [False]
    copy = (
        f"{sys.executable} -c \"import sys; open({str(received)!r}, 'a').write(sys.stdin.read())\""
    )
    settings.set_setting(site.ctl, site.admin, "shortage-sink", f"command:{copy}")
    assert shortages.deliver_pending(site.ctl) == 1
    assert json.loads(received.read_text())["kind"] == "stock-out"


def test_refill_list_is_critical_first_then_drawer_and_pocket(site: Site) -> None:
    for pocket, on_hand in (("D2-P1", 8), ("D1-P2", 5), ("D1-P1", 9), ("D4-P1", 1), ("D2-P2", 10)):
        site.assign(pocket, ACETAMINOPHEN, par=10, critical_low=2, max_qty=20)
        refill(site, pocket, ACETAMINOPHEN, date(2027, 1, 31), "A1", on_hand)
    site.assign("D3-P1", HEPARIN, par=4, critical_low=1, max_qty=6)  # empty: critical
    lines = reports.refill_list(site.ctl)
    assert [(line.pocket, line.critical, line.need) for line in lines] == [
        ("D3-P1", True, 4),
        ("D4-P1", True, 9),
        ("D1-P1", False, 1),
        ("D1-P2", False, 5),
        ("D2-P1", False, 2),
    ]


def test_policy_values_are_validated(site: Site) -> None:
    for name, value, message in (
        ("short-dated-days", "soon", "takes a number"),
        ("short-dated-days", "-1", "between 0 and 3650"),
        ("timezone", "Mars/Olympus", "not an IANA time zone"),
        ("shortage-sink", "mailto:x", "file:PATH or command:COMMAND"),
        ("colour", "blue", "unknown setting 'colour'"),
    ):
        with pytest.raises(BadInput, match=message):
            settings.set_setting(site.ctl, site.admin, name, value)
    assert settings.set_setting(site.ctl, site.admin, "short-dated-days", "60") == 60
    assert site.ctl.policy.short_dated_days == 60
    with pytest.raises(Refused, match="not allowed"):
        settings.set_setting(site.ctl, site.tech, "short-dated-days", "1")
