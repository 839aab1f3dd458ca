"""A site with two cabinets (W1 and W2, one stocked pocket each) for the fleet tests, and the
helpers they share: tampering as a database admin would, and the stock invariants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, text

from adc.controller import cabinets, inventory
from adc.controller.gs1 import parse_scan
from adc.controller.models import Pocket, StockLot, Transaction
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    HEPARIN,
    PROFILE,
    Site,
    build_site,
    datamatrix,
)

CABINETS = (CABINET, "W2")
POCKET = "D1-P1"
GTIN = {CABINET: ACETAMINOPHEN, "W2": HEPARIN}


@dataclass
class Fleet:
    site: Site

    def refill(self, cabinet: str, qty: int = 5) -> int:
        scan = parse_scan(datamatrix(GTIN[cabinet], date(2027, 1, 31), f"L{cabinet}"))
        return inventory.refill(self.site.ctl, self.site.tech, cabinet, POCKET, scan, qty).audit_seq

    def remove(self, cabinet: str, qty: int = 1) -> int:
        return inventory.remove(self.site.ctl, self.site.nurse, cabinet, POCKET, qty).audit_seq

    def admin_sql(self, *statements: str) -> None:
        """What an attacker with database admin rights does: triggers off, then edits."""
        with self.site.ctl.db.write() as session:
            if self.site.ctl.db.dialect == "sqlite":
                session.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_update"))
                session.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_delete"))
            else:
                session.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_change ON audit_entry"))
            for statement in statements:
                session.execute(text(statement))


def build_fleet(url: str) -> Fleet:
    site = build_site(url)
    cabinets.add_cabinet(site.ctl, site.service, "W2", PROFILE)
    for cabinet in CABINETS:
        cabinets.assign_pocket(
            site.ctl,
            site.pharmacist,
            cabinet,
            POCKET,
            GTIN[cabinet],
            par=40,
            critical_low=1,
            max_qty=50,
        )
    return Fleet(site)


def stock_problems(site: Site) -> list[str]:
    """on-hand = Σ lots = Σ transactions, for every pocket."""
    problems = []
    with site.ctl.read() as session:
        for pocket in session.execute(select(Pocket)).scalars():
            lots = session.execute(
                select(func.coalesce(func.sum(StockLot.qty), 0)).where(
                    StockLot.pocket_id == pocket.id
                )
            ).scalar()
            moved = session.execute(
                select(func.coalesce(func.sum(Transaction.qty), 0)).where(
                    Transaction.pocket_id == pocket.id
                )
            ).scalar()
            if not pocket.on_hand == lots == moved:
                problems.append(
                    f"{pocket.cabinet_id} {pocket.code}: {pocket.on_hand} {lots} {moved}"
                )
    return problems
