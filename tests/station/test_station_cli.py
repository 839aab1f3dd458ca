"""`adc station alarms|notifications|ack`, `adc quarantine` and `adc report quarantine` as a
person runs them (the real entry point in a subprocess), over a database where the station
quarantined a fridge's stock after a cold-chain excursion."""

from __future__ import annotations

import csv
import io
import json

from adc.controller import quarantine
from tests.conftest import run_adc
from tests.controller.site import CABINET, PIN
from tests.station.conftest import Rig
from tests.station.test_station_rules import FRIDGE, _warm, fridge  # noqa: F401  (fixture)

PERIOD = ("--from", "2026-03-01", "--to", "2026-03-03")  # the rig's simulated days


def _env(rig: Rig, user: str) -> dict[str, str]:
    return {"ADC_DATABASE_URL": rig.site.url, "ADC_USER": user, "ADC_PIN": PIN}


def test_alarms_quarantine_and_notifications_from_the_command_line(fridge: Rig) -> None:  # noqa: F811
    rig = fridge
    rig.cabinet.sim_inject_fault("switch_stuck", "dio1:di.18", active=False)  # fridge door
    _warm(rig, 13.0)
    rig.wait(31 * 60.0, step_s=5.0)
    rig.station.close("test over")
    (q,) = quarantine.list_quarantines(rig.site.ctl, CABINET, open_only=True)
    env = _env(rig, "pharmacist")

    done = run_adc("station", "alarms", "--cabinet", CABINET, *PERIOD, "--json", env=env)
    assert done.returncode == 0, done.stderr
    kinds = [a["kind"] for a in json.loads(done.stdout)]
    assert kinds == ["alarm-unauthorized-access", "alarm-door-open", "alarm-cold-chain"]
    done = run_adc("station", "alarms", "--cabinet", CABINET, *PERIOD, "--csv", env=env)
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["kind"] for r in table] == kinds and table[2]["pocket"] == FRIDGE
    done = run_adc("station", "alarms", "--cabinet", CABINET, "--since", "1x", env=env)
    assert done.returncode == 2 and "--since" in done.stderr and "Traceback" not in done.stderr

    done = run_adc("station", "status", "--cabinet", CABINET, "--json", env=env)
    status = json.loads(done.stdout)
    assert done.returncode == 1 and status["station"]["running"] is False  # stopped above
    assert [x["id"] for x in status["quarantines"]] == [q.id]
    assert [n["kind"] for n in status["notifications"]] == ["quarantine"]

    done = run_adc("report", "quarantine", "--json", env=env)
    (row,) = json.loads(done.stdout)
    assert row["id"] == q.id and row["pocket"] == FRIDGE and "13.0 °C" in row["reason"]

    refused = run_adc(
        "quarantine", "release", str(q.id), "--note", "ok", env=_env(rig, "technician")
    )
    assert refused.returncode == 1 and "not a pharmacist" in refused.stderr
    assert [r["user"] for r in rig.audit("station.refused")] == ["technician"]

    done = run_adc("station", "notifications", "--cabinet", CABINET, "--json", env=env)
    (note,) = json.loads(done.stdout)
    assert note["kind"] == "quarantine"
    done = run_adc("station", "ack", str(note["id"]), env=env)
    assert done.returncode == 0, done.stderr
    done = run_adc("quarantine", "release", str(q.id), "--note", "within stability data", env=env)
    assert done.returncode == 0 and "released" in done.stdout, done.stderr
    done = run_adc("report", "quarantine", env=env)
    assert "no quarantined stock" in done.stdout
    assert [a["id"] for a in rig.audit("quarantine.released")] == [q.id]
    assert [a["id"] for a in rig.audit("notification.acknowledged")] == [note["id"]]
