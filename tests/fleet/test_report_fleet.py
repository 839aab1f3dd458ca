"""`adc report fleet`: one row per cabinet with what needs attention, as a table, --json, --csv,
for all cabinets or a --cabinet list; an unknown cabinet is bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from adc.controller import inventory, maintenance
from adc.controller.access import raise_alarm
from adc.controller.fleet import fleet_status
from adc.controller.gs1 import parse_scan
from tests.conftest import run_adc
from tests.controller.site import datamatrix
from tests.fleet.fleet import GTIN, POCKET, Fleet


def _attention(fleet: Fleet) -> None:
    """W1: an open discrepancy, a drawer out of service, an alarm; W2: critical low, expiring."""
    ctl = fleet.site.ctl
    fleet.refill("W1", 10)
    inventory.count(ctl, fleet.site.nurse, "W1", POCKET, 8)  # 10 on record: a discrepancy
    maintenance.mark_failed(ctl, None, "W1", "D2", "relock-failed", "test")
    raise_alarm(ctl, "W1", "alarm-door-ajar", "test")
    soon = parse_scan(datamatrix(GTIN["W2"], date(2026, 3, 20), "SOON"))
    inventory.refill(ctl, fleet.site.tech, "W2", POCKET, soon, 2, confirm_short_dated=True)
    fleet.remove("W2", 1)  # 1 left: at critical-low


def test_fleet_status_counts_what_needs_attention_per_cabinet(fleet: Fleet) -> None:
    _attention(fleet)
    rows = {r.cabinet: r for r in fleet_status(fleet.site.ctl)}
    w1, w2 = rows["W1"], rows["W2"]
    assert (w1.open_discrepancies, w1.drawers_out_of_service, w1.alarms_24h) == (1, 1, 1)
    assert (w2.open_discrepancies, w2.drawers_out_of_service, w2.alarms_24h) == (0, 0, 0)
    assert (w1.critical_low_pockets, w2.critical_low_pockets) == (0, 1)
    assert (w1.expiring_lots, w2.expiring_lots) == (0, 1)
    assert w1.last_change and w2.last_change and w1.last_change.startswith("2026-03-02T")


def test_adc_report_fleet_json_csv_and_cabinet_lists(fleet: Fleet) -> None:
    _attention(fleet)
    url = fleet.site.url
    table = run_adc("report", "fleet", "--db", url, env={"COLUMNS": "160"})
    assert table.returncode == 0, table.stderr
    assert "W1" in table.stdout and "W2" in table.stdout
    as_json = run_adc("report", "fleet", "--db", url, "--json")
    data = json.loads(as_json.stdout)
    assert [r["cabinet"] for r in data] == ["W1", "W2"] and data[1]["critical_low_pockets"] == 1
    as_csv = run_adc("report", "fleet", "--db", url, "--csv", "--cabinet", "W2")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["cabinet"] for r in parsed] == ["W2"] and parsed[0]["expiring_lots"] == "1"
    both = json.loads(run_adc("report", "fleet", "--db", url, "--json", "-c", "W2,W1").stdout)
    assert [r["cabinet"] for r in both] == ["W1", "W2"]
    unknown = run_adc("report", "fleet", "--db", url, "--cabinet", "W1,NOPE")
    assert unknown.returncode == 2 and "NOPE" in unknown.stderr
    assert "Traceback" not in unknown.stderr and len(unknown.stderr.splitlines()) == 1
