"""A small site to test against: users of every role, the demo formulary, one registered cabinet.

Built only through the controller's public functions, so building it also exercises them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adc.controller import cabinets, formulary, users
from adc.controller.clock import Clock, ManualClock
from adc.controller.context import Actor, Controller
from adc.controller.db import init_database, open_database
from adc.controller.gs1 import GS
from adc.controller.models import Role

ROOT = Path(__file__).resolve().parents[2]
DEMO_FORMULARY = ROOT / "adc" / "data" / "formulary-demo.csv"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PIN = "2468"
CABINET = "W1"
PROFILE = "tcp-6drawer"

# GTINs of the demo formulary used by the tests
ACETAMINOPHEN = "00309046722618"  # 325 mg tablet, 0.55 g
ONDANSETRON_VIAL = "00304094755038"  # 4.6 g, second GTIN 50304094755033
HEPARIN = "00363323047016"
MORPHINE_CART = "00304091890015"  # schedule II, 6.3 g
MIDAZOLAM = "00304092305174"


def fast_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "SCRYPT_N", 2**8)


def datamatrix(gtin: str, expiry: date, lot: str, serial: str | None = None) -> str:
    """Raw scanner data as a DataMatrix reader sends it: `]d2`, GS after variable fields."""
    data = f"]d201{gtin}17{expiry:%y%m%d}10{lot}"
    return data + (f"{GS}21{serial}" if serial else "")


def hri(gtin: str, expiry: date, lot: str) -> str:
    return f"(01){gtin}(17){expiry:%y%m%d}(10){lot}"


def digital_link(gtin: str, expiry: date, lot: str) -> str:
    return f"https://id.gs1.org/01/{gtin}/10/{lot}?17={expiry:%y%m%d}"


@dataclass
class Site:
    ctl: Controller
    clock: Clock
    url: str
    actors: dict[Role, Actor] = field(default_factory=dict)

    @property
    def admin(self) -> Actor:
        return self.actors[Role.ADMIN]

    @property
    def tech(self) -> Actor:
        return self.actors[Role.TECHNICIAN]

    @property
    def pharmacist(self) -> Actor:
        return self.actors[Role.PHARMACIST]

    @property
    def nurse(self) -> Actor:
        return self.actors[Role.NURSE]

    @property
    def service(self) -> Actor:
        return self.actors[Role.SERVICE]

    def item_id(self, gtin: str) -> int:
        with self.ctl.read() as session:
            return formulary.find_item(session, gtin).id or 0

    def assign(
        self, pocket: str, gtin: str, par: int = 10, critical_low: int = 2, max_qty: int = 20
    ) -> None:
        cabinets.assign_pocket(
            self.ctl,
            self.pharmacist,
            CABINET,
            pocket,
            gtin,
            par=par,
            critical_low=critical_low,
            max_qty=max_qty,
        )


def build_site(url: str, clock: Clock | None = None, *, with_cabinet: bool = True) -> Site:
    clock = clock or ManualClock(START)
    db = open_database(url, create=True)
    init_database(db, clock.now())
    ctl = Controller(db, clock)
    site = Site(ctl=ctl, clock=clock, url=url)
    users.add_user(ctl, None, "admin", "admin", PIN, "Site Admin")
    site.actors[Role.ADMIN] = users.authenticate(ctl, "admin", PIN)
    for role in (Role.PHARMACIST, Role.TECHNICIAN, Role.NURSE, Role.SERVICE):
        users.add_user(ctl, site.admin, role.value, role.value, PIN)
        site.actors[role] = users.authenticate(ctl, role.value, PIN)
    formulary.import_items(ctl, site.pharmacist, DEMO_FORMULARY)
    if with_cabinet:
        cabinets.add_cabinet(ctl, site.service, CABINET, PROFILE)
    return site
