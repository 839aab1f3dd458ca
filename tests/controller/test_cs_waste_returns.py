"""Waste with a witness, returns to the return bin (never the original pocket), the pharmacist's
clear-out of the bin, and the controlled-substance activity record with its running balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import counts, inventory, returns, users, waste
from adc.controller.clock import ManualClock
from adc.controller.csreport import cs_activity, period
from adc.controller.models import Discrepancy, StockLot, Transaction, TxnKind
from adc.errors import BadInput, Refused
from tests.controller.cs import (
    CS_CABINET,
    add_cs_cabinet,
    assign,
    discrepancies,
    on_hand,
    replay_matches,
    snapshot,
    stock,
)
from tests.controller.site import CABINET, MORPHINE_CART, PIN, Site, build_site


@pytest.fixture
def cs(db_url: str) -> Any:
    """W1 (no return bin) and CS1 (return bin RB); morphine: 6 in W1 D3-P1, 8 in CS1 F-1."""
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    site = build_site(db_url, clock)
    add_cs_cabinet(site)
    assign(site, "D3-P1", MORPHINE_CART)
    stock(site, "D3-P1", MORPHINE_CART, 6)
    assign(site, "F-1", MORPHINE_CART, cabinet=CS_CABINET)
    stock(site, "F-1", MORPHINE_CART, 8, cabinet=CS_CABINET, lot="F1")
    yield site, clock
    site.ctl.db.close()


def take(site: Site, qty: int, *, pocket: str = "D3-P1", cabinet: str = CABINET) -> int:
    """A nurse's removal after her count; returns the removal id."""
    counts.count_pocket(
        site.ctl, site.nurse, cabinet, pocket, on_hand(site, pocket, cabinet), access="remove"
    )
    return inventory.remove(site.ctl, site.nurse, cabinet, pocket, qty).txn_ids[0]


def refused(site: Site, call: Any, error: type[Exception], match: str) -> None:
    before = snapshot(site)
    with pytest.raises(error, match=match):
        call()
    assert snapshot(site) == before


def test_waste_of_a_removal_needs_a_witness_and_moves_no_stock(cs: Any) -> None:
    site, _ = cs
    removal = take(site, 2)

    def wasted(qty: int = 1, witness: Any = None, actor: Any = None) -> Any:
        return waste.waste(
            site.ctl,
            actor or site.nurse,
            CABINET,
            qty,
            "partial dose: 1 mg given",
            witness=witness,
            removal_id=removal,
        )

    refused(site, lambda: wasted(), Refused, "needs a witness")
    refused(site, lambda: wasted(witness=site.nurse), Refused, "cannot witness their own")
    refused(site, lambda: wasted(witness=site.tech), Refused, "is a technician")
    refused(site, lambda: wasted(3, site.pharmacist), Refused, "2 unit.s. not yet wasted")
    refused(site, lambda: wasted(0, site.pharmacist), BadInput, "at least 1")
    refused(site, lambda: wasted(1, site.pharmacist, site.tech), Refused, "not allowed")
    record = wasted(1, site.pharmacist)
    assert (record.qty, record.witness, record.removal, record.on_hand) == (
        1,
        "pharmacist",
        removal,
        4,
    )
    with site.ctl.read() as s:
        txn = s.get(Transaction, record.txn_ids[0])
        assert (txn.kind, txn.qty, txn.counted, txn.related_id, txn.witness_id) == (
            TxnKind.WASTE,
            0,
            1,
            removal,
            site.pharmacist.user_id,
        )
    assert on_hand(site, "D3-P1") == 4
    refused(site, lambda: wasted(2, site.pharmacist), Refused, "1 unit.s. not yet wasted")
    refused(
        site,
        lambda: waste.waste(
            site.ctl, site.nurse, CABINET, 1, "x", witness=site.pharmacist, removal_id=999
        ),
        BadInput,
        "not a removal",
    )


def test_waste_from_the_pocket_is_an_access_counted_first(cs: Any) -> None:
    site, _ = cs

    def wasted() -> Any:
        return waste.waste(
            site.ctl,
            site.nurse,
            CABINET,
            1,
            "cartridge cracked",
            witness=site.pharmacist,
            pocket="D3-P1",
        )

    refused(site, wasted, Refused, "count it first")
    counts.count_pocket(site.ctl, site.nurse, CABINET, "D3-P1", 6, access="waste")
    assert wasted().on_hand == 5
    replay_matches(site)


def test_returns_go_to_the_return_bin_never_the_pocket(cs: Any) -> None:
    site, _ = cs
    removal = take(site, 3, pocket="F-1", cabinet=CS_CABINET)
    assert on_hand(site, "F-1", CS_CABINET) == 5
    record = returns.return_units(site.ctl, site.nurse, CS_CABINET, removal, 2)
    assert (record.bin, record.qty, record.bin_on_hand) == ("RB", 2, 2)
    assert on_hand(site, "F-1", CS_CABINET) == 5  # not back into its pocket
    with site.ctl.read() as s:
        (lot,) = (
            s.execute(
                select(StockLot)
                .join(Transaction, Transaction.lot_id == StockLot.id)
                .where(Transaction.kind == TxnKind.RETURN.value)
            )
            .scalars()
            .all()
        )
        assert (lot.lot, lot.qty) == ("F1", 2)  # traceable to the lot it came from
    refused(
        site,
        lambda: returns.return_units(site.ctl, site.nurse, CS_CABINET, removal, 2),
        Refused,
        "1 unit.s. not yet wasted or returned",
    )
    w1_removal = take(site, 1)
    refused(
        site,
        lambda: returns.return_units(site.ctl, site.pharmacist, CABINET, w1_removal, 1),
        Refused,
        "no return bin",
    )  # W1's profile declares none
    refused(
        site,
        lambda: returns.return_units(site.ctl, site.tech, CS_CABINET, removal, 1),
        Refused,
        "not allowed",
    )
    nurses_removal = take(site, 1, pocket="F-1", cabinet=CS_CABINET)
    users.add_user(site.ctl, site.admin, "nurse2", "nurse", PIN)
    other = users.authenticate(site.ctl, "nurse2", PIN)
    refused(
        site,
        lambda: returns.return_units(site.ctl, other, CS_CABINET, nurses_removal, 1),
        Refused,
        "only they or a pharmacist",
    )
    # the remaining unit of the first removal is wasted: the removal is accounted for
    waste.waste(
        site.ctl, site.nurse, CS_CABINET, 1, "dropped", witness=site.pharmacist, removal_id=removal
    )
    with site.ctl.read() as s:
        assert waste.removal(s, removal).unaccounted == 0
    replay_matches(site)


def test_the_pharmacists_clear_out_counts_the_bin_blind_item_by_item(cs: Any) -> None:
    site, _ = cs
    removal = take(site, 3, pocket="F-1", cabinet=CS_CABINET)
    returns.return_units(site.ctl, site.nurse, CS_CABINET, removal, 3)
    (entry,) = returns.return_bin_items(site.ctl, CS_CABINET)
    assert entry.controlled and not hasattr(entry, "qty")  # the bin's count is not shown
    refused(
        site,
        lambda: returns.clear_return_bin(site.ctl, site.nurse, CS_CABINET, {entry.item_id: 3}),
        Refused,
        "not allowed",
    )
    refused(
        site,
        lambda: returns.clear_return_bin(site.ctl, site.pharmacist, CS_CABINET, {}),
        BadInput,
        "count every item",
    )
    refused(
        site,
        lambda: returns.clear_return_bin(
            site.ctl, site.pharmacist, CS_CABINET, {entry.item_id: -1}
        ),
        BadInput,
        "whole number",
    )
    result = returns.clear_return_bin(
        site.ctl, site.pharmacist, CS_CABINET, {entry.item_id: 2}, witness=site.tech
    )
    assert on_hand(site, "RB", CS_CABINET) == 0
    (disc,) = [d for d in discrepancies(site) if d.trigger == "clear-out"]
    assert (disc.id, disc.expected, disc.counted) == (result.discrepancy_ids[0], 3, 2)
    with site.ctl.read() as s:
        rows = (
            s.execute(select(Transaction).where(Transaction.session_id == result.session))
            .scalars()
            .all()
        )
        assert [(t.kind, t.qty, t.reason, t.witness_id) for t in rows] == [
            (TxnKind.UNLOAD, -3, returns.CLEAR_OUT, site.tech.user_id)
        ]
    refused(
        site,
        lambda: returns.clear_return_bin(site.ctl, site.pharmacist, CS_CABINET, {}),
        Refused,
        "holds nothing on record",
    )
    replay_matches(site)


def test_cs_activity_is_a_running_balance_that_ends_at_on_hand(cs: Any) -> None:
    site, clock = cs
    clock.advance(days=1)
    removal = take(site, 2)
    waste.waste(
        site.ctl, site.nurse, CABINET, 1, "partial", witness=site.pharmacist, removal_id=removal
    )
    counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D3-P1", 5)  # recount requested
    counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D3-P1", 3)  # stands: -1
    since, until = period(site.ctl, site.ctl.today(), site.ctl.today())
    events = [e for e in cs_activity(site.ctl, since, until) if e.cabinet == CABINET]
    assert [(e.kind, e.change, e.balance) for e in events] == [
        ("count", 0, 6),
        ("remove", -2, 4),
        ("waste", 0, 4),
        ("count", 0, 4),
        ("count", -1, 3),
    ]
    assert events[-1].balance == on_hand(site, "D3-P1")
    assert events[2].units == 1 and events[2].witness == "pharmacist"
    assert events[-1].discrepancy is not None and events[3].discrepancy is None
    with site.ctl.read() as s:
        assert s.get(Discrepancy, events[-1].discrepancy).counted == 3
    # the day before holds the stocking only; the opening balance carries over
    yesterday = site.ctl.today() - timedelta(days=1)
    before = cs_activity(site.ctl, *period(site.ctl, yesterday, yesterday))
    assert [e.balance for e in before if e.pocket == "D3-P1"] == [0, 6]
    assert cs_activity(site.ctl, since, until, cabinet="W9") == []
    with pytest.raises(BadInput, match="after --to"):
        period(site.ctl, site.ctl.today(), yesterday)
