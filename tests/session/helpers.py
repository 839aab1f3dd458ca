"""Helpers of the restock-session tests: a site on the wall clock (the CLI under test runs on it too).

The controller tests' site (tests/controller/site.py) with cabinet W1 (tcp-6drawer) and four
pockets assigned: two weighed matrix pockets, a lidded pocket holding morphine (schedule II) and
a count-back pocket without a scale. Expiry dates are relative to today, since the `adc` process
under test reads the real clock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from adc.controller.gs1 import GS
from adc.profiles import load_profile, resolve_profile_path
from adc.sim.serve import CabinetServer, realtime_cabinet
from tests.controller.site import (
    ACETAMINOPHEN,
    HEPARIN,
    MORPHINE_CART,
    ONDANSETRON_VIAL,
    Site,
    build_site,
)

PROFILE = load_profile(resolve_profile_path("tcp-6drawer"))

# (pocket, GTIN, par, critical-low, max): the refill list in its order (all empty: all critical)
POCKETS = [
    ("D1-P1", ONDANSETRON_VIAL, 10, 2, 20),
    ("D2-P1", HEPARIN, 8, 2, 12),
    ("D3-P1", MORPHINE_CART, 5, 1, 10),
    ("D6-P1", ACETAMINOPHEN, 30, 5, 50),
]


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def today() -> date:
    return datetime.now(UTC).date()


def good_expiry() -> date:
    return today() + timedelta(days=400)


def datamatrix(gtin: str, expiry: date, lot: str, serial: str = "SER0001") -> str:
    """What a DataMatrix scanner sends: `]d2`, GS (0x1D) after the lot."""
    return f"]d201{gtin}17{expiry:%y%m%d}10{lot}{GS}21{serial}"


def hri(gtin: str, expiry: date, lot: str) -> str:
    return f"(01){gtin}(17){expiry:%y%m%d}(10){lot}"


@dataclass
class SessionSite:
    site: Site
    path: Path

    @property
    def url(self) -> str:
        return self.site.url

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for `adc` subprocesses: this database, wide output, no stray ADC_ vars."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("ADC_")}
        return {
            **base,
            "ADC_DATABASE_URL": self.url,
            "ADC_HOME": str(self.path.parent / "home"),
            "COLUMNS": "120",
            **extra,
        }

    def rows(self, query: str) -> list[tuple]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(query).fetchall()

    def audit_count(self) -> int:
        return self.rows("SELECT count(*) FROM audit_entry")[0][0]

    def on_hand(self, pocket: str) -> int:
        return self.rows(f"SELECT on_hand FROM pocket WHERE code = '{pocket}'")[0][0]


def build_session_site(path: Path) -> SessionSite:
    site = build_site(f"sqlite:///{path}", WallClock())
    for pocket, gtin, par, critical_low, max_qty in POCKETS:
        site.assign(pocket, gtin, par=par, critical_low=critical_low, max_qty=max_qty)
    return SessionSite(site, path)


@contextmanager
def emulator() -> Iterator[tuple[CabinetServer, str]]:
    """The virtual cabinet tcp-6drawer on a Modbus TCP emulator in real time (as `adc sim
    serve` runs it), in this process: a test can be the person at it. Yields (server, HOST:PORT)."""
    cabinet = realtime_cabinet(PROFILE, seed=2)
    server = CabinetServer(cabinet, tcp=("127.0.0.1", 0))
    (served,) = server.start()
    stop = threading.Event()
    clock = threading.Thread(target=server.run_realtime, args=(stop,), daemon=True)
    clock.start()
    try:
        yield server, served.where
    finally:
        stop.set()
        clock.join(5)
        server.close()
