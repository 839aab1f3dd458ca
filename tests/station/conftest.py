"""Station fixtures: a site on SQLite (and PostgreSQL when given), the virtual cabinet behind the
sim backend, and a station over it stepped by hand in simulated time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import cabinets
from adc.controller.models import AuditEntry, MaintenanceEvent
from adc.station.service import Station
from tests.controller.conftest import _fast_pins, db_url  # noqa: F401  (fixtures)
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import ACETAMINOPHEN, CABINET, MORPHINE_CART, Site, build_site

TABLET_G = 0.55
MORPHINE_G = 6.3


@dataclass
class Rig:
    site: Site
    driver: Any
    station: Station

    @property
    def cabinet(self) -> Any:
        return self.driver.cabinet

    def wait(self, seconds: float, step_s: float = 0.1) -> list[Any]:
        """Let time pass with the station polling every `step_s`; the alarms it raised."""
        raised = []
        elapsed = 0.0
        while elapsed < seconds - 1e-9:
            self.driver.advance(step_s)
            elapsed += step_s
            raised.extend(self.station.step())
        return raised

    def events(self, kind: str | None = None) -> list[MaintenanceEvent]:
        with self.site.ctl.read() as session:
            q = select(MaintenanceEvent).order_by(MaintenanceEvent.id)
            if kind:
                q = q.where(MaintenanceEvent.kind == kind)
            return list(session.execute(q).scalars())

    def audit(self, action: str) -> list[dict[str, Any]]:
        import json

        with self.site.ctl.read() as session:
            rows = session.execute(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            ).scalars()
            return [json.loads(r.payload) for r in rows]


def make_site(url: str, driver: Any) -> Site:
    site = build_site(url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "tcp-6drawer")
    site.assign("D1-P1", ACETAMINOPHEN, par=20, critical_low=2, max_qty=40)
    site.assign("D1-P2", ACETAMINOPHEN, par=20, critical_low=2, max_qty=40)
    site.assign("D2-P1", MORPHINE_CART, par=10, critical_low=2, max_qty=20)
    driver.cabinet.sim_stock("D1-P1", 20, TABLET_G)
    driver.cabinet.sim_stock("D1-P2", 20, TABLET_G)
    driver.cabinet.sim_stock("D2-P1", 10, MORPHINE_G)
    return site


@pytest.fixture
def rig(db_url: str, tmp_path: Path) -> Iterator[Rig]:  # noqa: F811
    driver = sim_driver("tcp-6drawer")
    site = make_site(db_url, driver)
    station = Station(
        site.ctl, CABINET, lambda: driver, backend="sim:tcp-6drawer", directory=tmp_path / "run"
    )
    station.start()
    built = Rig(site, driver, station)
    built.wait(1.5)  # first looks: references weighed
    yield built
    if station.driver is not None:
        station.close("test over")
    site.ctl.db.close()
