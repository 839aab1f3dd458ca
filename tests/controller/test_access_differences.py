"""What the old copies of the unlock got differently (issue 13), through the callers' public
calls only, so the same tests run on the code before the access machine (where they fail):

- a nurse's withdrawal judged only the drawer lock's relock: a pocket's lid lock whose bolt stays
  out after the pulse went unrecorded, the drawer stayed in service;
- `adc count --backend` pulsed each lock from the CLI and weighed at once: a lock board whose
  bolt stays retracted left the drawer unlatched with nothing recorded.

Cabinet W1 is rs485-2bus on the in-process sim backend: drawer D3 (lock lb0:lock.2) with lidded
pocket D3-P1 (lid lock lb1:lock.0).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from adc.controller import cabinets, inventory, maintenance, withdrawal
from adc.controller.gs1 import parse_scan
from adc.controller.models import MaintenanceEvent
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import CABINET, ONDANSETRON_VIAL, PIN, Site, build_site, datamatrix

POCKET, DRAWER = "D3-P1", "D3"
DRAWER_LOCK, LID_LOCK = "lb0:lock.2", "lb1:lock.0"
VIAL_G = 4.6


@pytest.fixture
def w1(db_url: str) -> Iterator[tuple[Site, Any]]:
    driver = sim_driver("rs485-2bus")
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "rs485-2bus")
    site.assign(POCKET, ONDANSETRON_VIAL, par=8, critical_low=1, max_qty=12)
    scan = parse_scan(datamatrix(ONDANSETRON_VIAL, date(2027, 6, 30), "D1"))
    inventory.refill(site.ctl, site.tech, CABINET, POCKET, scan, 4)
    driver.advance(3.0)
    yield site, driver
    site.ctl.db.close()


def _events(site: Site) -> list[tuple[str, str | None]]:
    with site.ctl.read() as s:
        rows = s.execute(select(MaintenanceEvent).order_by(MaintenanceEvent.id)).scalars()
        return [(e.kind, e.drawer_code) for e in rows]


def test_a_withdrawal_whose_pocket_lock_does_not_relatch_takes_the_drawer_out(w1) -> None:
    site, driver = w1
    cabinet = driver.cabinet
    cabinet.sim_inject_fault("lock_no_reengage", LID_LOCK)
    w = withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, POCKET, 1)
    w.unlock()
    driver.advance(0.05)
    assert cabinet.sim_open(DRAWER) and cabinet.sim_open(POCKET)
    w.poll()
    cabinet.sim_take(POCKET, 1)
    w.record()
    driver.advance(1.0)
    cabinet.sim_close(DRAWER)
    for _ in range(30):
        driver.advance(0.1)
        w.poll()
    w.finish()
    assert _events(site) == [("relock-failed", DRAWER)]
    assert DRAWER in maintenance.out_of_service(site.ctl, CABINET)


def test_adc_count_over_a_lock_board_whose_bolt_stays_out_records_the_relock_failure(
    w1, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adc.cli import app
    from adc.commands import count as count_command

    site, driver = w1
    driver.cabinet.sim_inject_fault("lock_no_reengage", DRAWER_LOCK)
    monkeypatch.setattr(count_command, "_open_driver", lambda *args: driver)
    monkeypatch.setattr(driver, "close", lambda: None)  # the test reads the cabinet afterwards
    result = CliRunner().invoke(
        app,
        ["count", "-c", CABINET, "-p", POCKET, "--count", f"{POCKET}=4", "--backend", "sim:"],
        env={"ADC_DATABASE_URL": site.url, "ADC_USER": "nurse", "ADC_PIN": PIN},
    )
    assert result.exit_code == 0, result.output
    assert _events(site) == [("relock-failed", DRAWER)]
    assert DRAWER in maintenance.out_of_service(site.ctl, CABINET)
