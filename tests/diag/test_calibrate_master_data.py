"""A simulated backend never writes a real cabinet's master data (issue 20, item 1).

`adc diag calibrate --backend sim:` on a cabinet registered from hardware wrote the virtual
cabinet's default unit weight to the item, used by every real scale count afterwards. Only a cabinet
registered as simulated (`adc cabinet add --simulated`; the demo's and scenarios' cabinets) takes
master data from a simulated backend.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from adc.commands.common import is_simulated
from adc.controller import db as dbmod
from adc.controller import maintenance
from adc.controller.db import init_database, open_database
from adc.controller.models import Cabinet, Item, MaintenanceEvent
from adc.errors import Refused
from tests.controller.site import ACETAMINOPHEN, CABINET, START, Site
from tests.diag import test_cli
from tests.diag.conftest import set_simulated
from tests.diag.test_cli import adc, as_json
from tests.diag.test_maintenance import stock

CALIBRATE = ["calibrate", "--cabinet", CABINET, "--pocket", "D1-P1", "--known-count", "5"]


@pytest.fixture
def env(site: Site) -> dict[str, str]:
    return test_cli.env.__wrapped__(site)  # type: ignore[attr-defined]


def mark_simulated(site: Site) -> None:
    set_simulated(site, True)


def mark_real(site: Site) -> None:
    set_simulated(site, False)


def unit_weight(site: Site) -> float | None:
    with site.ctl.read() as session:
        return session.get(Item, site.item_id(ACETAMINOPHEN)).unit_weight_g


def kinds(site: Site) -> set[str]:
    with site.ctl.read() as session:
        return set(session.execute(select(MaintenanceEvent.kind)).scalars())


def test_sim_backend_calibrating_a_real_cabinet_is_refused(site: Site, env: dict[str, str]) -> None:
    mark_real(site)
    stock(site, "D1-P1", ACETAMINOPHEN, 10)  # the formulary says 0.55 g; virtual packs weigh 2 g
    result = adc(env, *CALIBRATE, "--backend", "sim:tcp-6drawer")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("refused:") and "not a simulated cabinet" in lines[0]
    assert "sim:" in lines[0]
    assert unit_weight(site) == 0.55
    assert not {"calibrated", "diag-calibrate"} & kinds(site)  # nothing ran, nothing recorded


def test_sim_backend_calibrates_a_simulated_cabinet(site: Site, env: dict[str, str]) -> None:
    stock(site, "D1-P1", ACETAMINOPHEN, 10)
    mark_simulated(site)
    result = adc(env, *CALIBRATE, "--backend", "sim:tcp-6drawer", "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result)["unit_weight_written"]["before"] == 0.55
    assert unit_weight(site) == pytest.approx(2.0, abs=0.1)


def test_the_controller_refuses_a_simulated_unit_weight_for_a_real_cabinet(site: Site) -> None:
    mark_real(site)
    site.assign("D1-P1", ACETAMINOPHEN, par=5, critical_low=1, max_qty=10)
    with pytest.raises(Refused, match="not a simulated cabinet"):
        maintenance.set_unit_weight(
            site.ctl, site.service, CABINET, "D1-P1", 2.0, from_simulator=True
        )
    assert unit_weight(site) == 0.55
    maintenance.set_unit_weight(site.ctl, site.service, CABINET, "D1-P1", 0.56)  # hardware
    assert unit_weight(site) == 0.56
    mark_simulated(site)
    maintenance.set_unit_weight(site.ctl, site.service, CABINET, "D1-P1", 2.0, from_simulator=True)
    assert unit_weight(site) == 2.0


def test_only_sim_uris_are_simulated() -> None:
    assert is_simulated("sim:") and is_simulated("sim:tcp-6drawer")
    for uri in ("modbus-tcp://127.0.0.1:5020", "profile:", "lockboard:///dev/ttyUSB0"):
        assert not is_simulated(uri)


def test_cabinet_add_simulated_and_list(site: Site, env: dict[str, str]) -> None:
    from tests.conftest import run_adc

    mark_real(site)
    env = {**env, "ADC_USER": "service"}
    added = run_adc("cabinet", "add", "--profile", "tcp-6drawer", "--id", "SIM1", "--simulated",
                    env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "simulated" in added.stdout
    listed = run_adc("cabinet", "list", "--json", env=env)
    simulated = {row["id"]: row["simulated"] for row in as_json(listed)}
    assert simulated == {CABINET: False, "SIM1": True}


def test_demo_and_scenario_cabinets_are_simulated(site: Site) -> None:
    """The scenario runner and the demo register their cabinets as simulated (grep-level check of
    the one call each makes; running them is covered by their own tests)."""
    root = Path(__file__).resolve().parents[2]
    for path in ("adc/scenario/runner.py", "adc/commands/demo.py"):
        text = (root / path).read_text()
        assert "add_cabinet(" in text and "simulated=True" in text, path


def test_an_older_database_gets_real_cabinets_on_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 5 adds `cabinet.simulated` to a database made before it (here: a version 4 one
    whose cabinet table lacks the column): existing cabinets are real ones."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url, create=True)
    monkeypatch.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS[:4])
    init_database(db, START)
    monkeypatch.undo()
    with db.write() as session:
        conn = session.connection()
        conn.exec_driver_sql("ALTER TABLE cabinet DROP COLUMN simulated")
        conn.exec_driver_sql(
            "INSERT INTO cabinet (id, profile_name, profile_path, description, created_at) "
            "VALUES ('OLD', 'tcp-6drawer', 'tcp-6drawer', '', '2024-01-01 00:00:00')"
        )
    result = init_database(db, START)
    assert result.applied == list(range(5, dbmod.current_version() + 1))
    with db.read() as session:
        assert session.get(Cabinet, "OLD").simulated is False
    db.close()


def test_a_simulated_cabinet_cannot_change_an_item_a_real_cabinet_stocks(
    site: Site, env: dict[str, str]
) -> None:
    """The unit weight is the item's, read by every cabinet that stocks it: a practice calibration
    on a simulated cabinet must not change what a real cabinet's scale counts compute."""
    from adc.controller import cabinets

    stock(site, "D1-P1", ACETAMINOPHEN, 10)  # W1: simulated (the diag site)
    cabinets.add_cabinet(site.ctl, site.service, "REAL", "tcp-6drawer")
    cabinets.assign_pocket(
        site.ctl,
        site.pharmacist,
        "REAL",
        "D1-P1",
        ACETAMINOPHEN,
        par=5,
        critical_low=1,
        max_qty=10,
    )
    result = adc(env, *CALIBRATE, "--backend", "sim:tcp-6drawer")
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[0]
    assert line.startswith("refused:") and "REAL" in line and "not simulated" in line
    assert unit_weight(site) == 0.55
    assert not {"calibrated", "diag-calibrate"} & kinds(site)  # refused before anything ran
    with pytest.raises(Refused, match="REAL"):
        maintenance.set_unit_weight(
            site.ctl, site.service, CABINET, "D1-P1", 2.0, from_simulator=True
        )
    assert unit_weight(site) == 0.55


@pytest.mark.parametrize(
    "command",
    [
        ["selftest"],
        ["recover", "--drawer", "D1", "--counter", "technician", "--count", "D1-P1=0"],
        ["watch", "--once"],
        ["sensors"],
    ],
    ids=["selftest", "recover", "watch", "sensors"],
)
def test_a_simulated_backend_records_nothing_against_a_real_cabinet(
    site: Site, env: dict[str, str], command: list[str]
) -> None:
    """A real drawer must never return to service (nor a real cabinet's record pass a check) on
    the virtual cabinet's verdicts."""
    mark_real(site)
    maintenance.mark_failed(site.ctl, site.service, CABINET, "D1", "failed", "jammed")
    with site.ctl.read() as session:
        before = len(list(session.execute(select(MaintenanceEvent.id)).scalars()))
    result = adc(
        env, command[0], "--cabinet", CABINET, "--backend", "sim:tcp-6drawer", *command[1:]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[0]
    assert line.startswith("refused:") and "not a simulated cabinet" in line
    with site.ctl.read() as session:
        assert len(list(session.execute(select(MaintenanceEvent.id)).scalars())) == before
