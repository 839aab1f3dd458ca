"""Helpers of the controlled-substance tests: stocking a pocket the way the rules demand (the count
on access first), a second cabinet with a return bin, and a whole-database snapshot to prove that a
refusal changed nothing."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from adc.controller import cabinets, counts, inventory
from adc.controller.context import Actor
from adc.controller.db import TABLES
from adc.controller.gs1 import parse_scan
from adc.controller.models import Discrepancy, Pocket, StockLot, Transaction
from tests.controller.site import CABINET, Site, datamatrix

GOOD = date(2027, 6, 30)
CS_CABINET = "CS1"  # cs-small: cubies, a fridge pocket F-1 (weighed) and the return bin RB


def stock(
    site: Site,
    pocket: str,
    gtin: str,
    qty: int,
    *,
    cabinet: str = CABINET,
    lot: str = "L1",
    expiry: date = GOOD,
    actor: Actor | None = None,
    witness: Actor | None = None,
) -> None:
    """Refill `qty` units, after the count on access (which finds what the record says)."""
    actor = actor or site.tech
    counts.count_pocket(
        site.ctl, actor, cabinet, pocket, on_hand(site, pocket, cabinet), access="refill"
    )
    inventory.refill(
        site.ctl,
        actor,
        cabinet,
        pocket,
        parse_scan(datamatrix(gtin, expiry, lot)),
        qty,
        witness=witness,
    )


def assign(
    site: Site, pocket: str, gtin: str, *, cabinet: str = CABINET, par: int = 10, max_qty: int = 20
) -> None:
    cabinets.assign_pocket(
        site.ctl, site.pharmacist, cabinet, pocket, gtin, par=par, critical_low=1, max_qty=max_qty
    )


def add_cs_cabinet(site: Site) -> None:
    cabinets.add_cabinet(site.ctl, site.service, CS_CABINET, "cs-small")


def on_hand(site: Site, pocket: str, cabinet: str = CABINET) -> int:
    with site.ctl.read() as s:
        row = s.execute(
            select(Pocket.on_hand).where(Pocket.cabinet_id == cabinet, Pocket.code == pocket)
        ).scalar_one()
    return int(row)


def snapshot(site: Site) -> list[list[tuple[object, ...]]]:
    with site.ctl.read() as session:
        return [
            [tuple(r) for r in session.execute(select(t).order_by(*t.primary_key.columns))]
            for t in TABLES
        ]


def discrepancies(site: Site) -> list[Discrepancy]:
    with site.ctl.read() as s:
        return list(s.execute(select(Discrepancy).order_by(Discrepancy.id)).scalars())


def replay_matches(site: Site) -> None:
    """For every pocket: on-hand = sum of its lots = sum of its transactions."""
    with site.ctl.read() as s:
        for pocket in s.execute(select(Pocket)).scalars():
            lots = s.execute(
                select(func.coalesce(func.sum(StockLot.qty), 0)).where(
                    StockLot.pocket_id == pocket.id
                )
            ).scalar_one()
            replay = s.execute(
                select(func.coalesce(func.sum(Transaction.qty), 0)).where(
                    Transaction.pocket_id == pocket.id
                )
            ).scalar_one()
            assert pocket.on_hand == lots == replay, (pocket.code, pocket.on_hand, lots, replay)
