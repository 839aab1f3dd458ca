"""Restocking into (or unloading) a quarantined pocket is refused: a fridge pocket quarantined by the station
after a cold-chain excursion takes no refill or load, neither when the restock line is selected
(before anything unlocks) nor when the stock is recorded; a pharmacist's release lifts it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from adc.controller import inventory, quarantine
from adc.controller.cold_chain import set_limits
from adc.controller.gs1 import parse_scan
from adc.controller.restock import State as RestockState
from adc.controller.restock import begin_restock
from adc.errors import Refused
from tests.conftest import run_adc
from tests.controller.conftest import _fast_pins, db_url  # noqa: F401  (fixtures)
from tests.controller.site import CABINET, ONDANSETRON_VIAL, PIN, datamatrix, hri
from tests.station.conftest import Rig
from tests.station.test_station_rules import FRIDGE, _warm, fridge  # noqa: F401  (fixture)

GOOD = date(2027, 6, 30)


def _quarantine(rig: Rig) -> quarantine.QuarantineView:
    """The station's own path: the fridge warms past its allowed excursion."""
    set_limits(rig.site.ctl, rig.site.pharmacist, CABINET, FRIDGE, "2:8:2")
    rig.station._last_recover = None  # reload the layout (limits) at the next step
    _warm(rig, 11.0)
    assert [a.kind for a in rig.wait(140.0, step_s=1.0)] == ["alarm-cold-chain"]
    (q,) = quarantine.list_quarantines(rig.site.ctl, CABINET, open_only=True)
    return q


def _unlocks(rig: Rig) -> int:
    with rig.site.ctl.read() as session:
        return int(session.execute(text("select count(*) from access_log")).scalar() or 0)


def test_a_refill_into_a_quarantined_pocket_is_refused_before_anything_unlocks(
    fridge: Rig,  # noqa: F811
) -> None:
    rig, site = fridge, fridge.site
    q = _quarantine(rig)
    before = _unlocks(rig)
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    (entry,) = [e for e in session.refill_list() if e.pocket == FRIDGE]  # 6 < par 8
    assert entry.blocked == "quarantined"
    assert session.next_line() is None  # the round passes it by (the only line below par)
    with pytest.raises(Refused) as refused:
        session.select(FRIDGE)
    line = str(refused.value)
    assert f"pocket {FRIDGE} is quarantined (#{q.id}: {q.reason})" in line
    assert "restocking blocked" in line and "\n" not in line
    assert session.state is RestockState.IDLE and session.line is None
    with pytest.raises(Refused, match="restocking blocked"):  # a load line too
        session.select(FRIDGE, "load", item=ONDANSETRON_VIAL, levels=(8, 1, 12))
    with pytest.raises(Refused, match="unloading blocked"):  # and taking it all out
        session.select(FRIDGE, "unload")
    assert session.state is RestockState.IDLE
    session.end()
    assert _unlocks(rig) == before  # nothing went on record as an access
    # the record itself refuses it too (a refill outside a session)
    scan = parse_scan(datamatrix(ONDANSETRON_VIAL, GOOD, "NEW1"))
    with pytest.raises(Refused, match=f"pocket {FRIDGE} is quarantined"):
        inventory.refill(site.ctl, site.pharmacist, CABINET, FRIDGE, scan, 2)
    with pytest.raises(Refused, match=f"pocket {FRIDGE} is quarantined.*unloading blocked"):
        inventory.unload(site.ctl, site.pharmacist, CABINET, FRIDGE, 6)
    (view,) = quarantine.list_quarantines(site.ctl, CABINET, open_only=True)
    assert view.qty == 6  # nothing was added to the quarantined stock
    # a pharmacist releases it: restocking is allowed again
    quarantine.release(site.ctl, site.pharmacist, q.id, "stability data covers 11 °C")
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    line_ok = session.select(FRIDGE)
    assert line_ok.pocket == FRIDGE and session.state is RestockState.AWAITING_SCAN
    session.cancel()
    session.end()


def test_a_scripted_restock_of_a_quarantined_pocket_exits_1_with_one_line(
    fridge: Rig,  # noqa: F811
    tmp_path: Path,
) -> None:
    rig, site = fridge, fridge.site
    q = _quarantine(rig)
    rig.station.close("test over")  # the command line restocks on its own backend
    script = tmp_path / "fridge.toml"
    script.write_text(
        f'[[line]]\npocket = "{FRIDGE}"\nscan = "{hri(ONDANSETRON_VIAL, GOOD, "NEW3")}"\n'
        "quantity = 2\n"
    )
    env = {"ADC_DATABASE_URL": site.url, "ADC_USER": "technician", "ADC_PIN": PIN}
    done = run_adc(
        "restock", "--cabinet", CABINET, "--backend", "sim:cs-small", "--script", str(script),
        env=env,
    )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"pocket {FRIDGE} is quarantined (#{q.id}: {q.reason})" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert _unlocks(rig) == 0
