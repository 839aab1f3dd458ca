"""`adc diag` through the real entry point: against `adc sim serve` in another process (TCP and ptys),
against the in-process sim backend, with a database for the record, and with bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from adc.controller import cabinets, maintenance
from adc.controller.audit import verify_chain
from adc.controller.models import AuditEntry, Item, MaintenanceEvent
from tests.conftest import ROOT, run_adc
from tests.controller.site import ACETAMINOPHEN, MORPHINE_CART, PIN, Site
from tests.diag.test_maintenance import stock
from tests.wire.test_sim_serve import serving

HEAVY = ["sqlmodel", "sqlalchemy", "pymodbus", "simpy", "serial", "pydantic"]


@pytest.fixture
def env(site: Site) -> dict[str, str]:
    """The site's database, the service engineer logged in by environment, wide output."""
    return {
        "ADC_DATABASE_URL": site.url,
        "ADC_USER": "service",
        "ADC_PIN": PIN,
        "COLUMNS": "200",
        "ADC_HOME": str(Path(site.url.removeprefix("sqlite:///")).parent / "home"),
    }


def adc(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = run_adc("diag", *args, env=env, timeout=60, input=stdin)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------------- start-up
@pytest.mark.parametrize("args", [["diag", "--help"], ["diag", "selftest", "--help"]])
def test_help_stays_light(args: list[str]) -> None:
    code = (
        "import sys\nfrom adc.cli import app\ntry:\n"
        f"    app({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


# ---------------------------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_line_and_exit_2(env: dict[str, str]) -> None:
    unknown_bus = adc(env, "scan", "--profile", "tcp-6drawer", "--bus", "nope")
    assert unknown_bus.returncode == 2
    assert "error: profile tcp-6drawer has no bus nope; its buses: main" in unknown_bus.stderr
    no_cabinet = adc(env, "selftest", "--backend", "sim:tcp-6drawer")
    assert (
        no_cabinet.returncode == 2
        and "name the registered cabinet (--cabinet ID)" in no_cabinet.stderr
    )


def test_a_port_that_cannot_be_opened(env: dict[str, str]) -> None:
    result = adc(env, "scan", "--port", "127.0.0.1:1", "--json")
    assert result.returncode == 1
    (check,) = as_json(result)["checks"]
    assert check["flags"] == ["port"] and "cannot open 127.0.0.1:1" in check["reason"]


def test_ports_lists_what_pyserial_lists(env: dict[str, str]) -> None:
    from serial.tools import list_ports

    result = adc(env, "ports", "--json", "--profile", "rs485-2bus")
    listed = sorted(p.device for p in list_ports.comports(include_links=True))
    report = as_json(result)
    assert sorted(p["device"] for p in report["data"]["ports"]) == listed
    buses = {c["subject"]: c for c in report["checks"]}
    present = os.path.exists("/dev/ttyUSB0")
    assert buses["bus locks (lockboard)"]["verdict"] == ("pass" if present else "fail")
    assert result.returncode == (0 if present and os.path.exists("/dev/ttyUSB1") else 1)


# ------------------------------------------------------------------- adc sim serve, over TCP
@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serving("tcp-6drawer", "--modbus-tcp", "127.0.0.1:0") as (_proc, where):
        yield f"modbus-tcp://{where['main']}"


def test_against_sim_serve_over_tcp(env: dict[str, str], served: str, tmp_path: Path) -> None:
    wire = ["--backend", served, "--profile", "tcp-6drawer"]
    scan = adc(env, "scan", *wire, "--addresses", "1-4", "--json")
    assert scan.returncode == 0, scan.stdout
    assert [c["point"] for c in as_json(scan)["checks"]] == ["dio1", "lc1", "lc2"]

    # a profile that expects one more module than the cabinet has: named, the others still found
    text = (ROOT / "hardware-profiles" / "tcp-6drawer.toml").read_text()
    extra = tmp_path / "tcp-6drawer.toml"
    extra.write_text(
        text.replace(
            "[sim]", '[devices.lc9]\nbus = "main"\nkind = "modbus-loadcell"\naddress = 9\n\n[sim]'
        )
    )
    missing = adc(env, "scan", "--backend", served, "--profile", str(extra), "--addresses", "1-3")
    assert missing.returncode == 1
    assert (
        "device lc9 (modbus-loadcell, unit 9)" in missing.stdout and "no answer" in missing.stdout
    )
    assert missing.stdout.count("PASS") == 3

    stats = as_json(adc(env, "stats", *wire, "--polls", "3", "--json"))
    assert stats["result"] == "pass" and stats["checks"][1]["data"]["requests"] > 0

    sensors = adc(
        env, "sensors", *wire, "--pocket", "D1-P1", "--samples", "3", "--interval", "0.1", "--json"
    )
    (sensor,) = as_json(sensors)["checks"]
    assert sensors.returncode == 0 and sensor["data"]["samples"] == 3

    watch = adc(env, "watch", *wire, "--iterations", "2", "--rate", "20")
    assert watch.returncode == 0
    assert watch.stdout.count("bus health") == 2 and "D5-P1" in watch.stdout

    # the simulated person is in another process: nobody here opens a door
    selftest = adc(
        env,
        "selftest",
        "--cabinet",
        "W1",
        "--backend",
        served,
        "--drawer",
        "D2",
        "--person",
        "none",
        "--json",
    )
    report = as_json(selftest)
    assert selftest.returncode == 0, report
    assert {c["verdict"] for c in report["checks"]} == {"not exercised"}
    assert isinstance(report["recorded_event"], int)


# ------------------------------------------------------------- adc sim serve, lock boards on ptys
def test_lock_feedback_and_prompts_over_ptys(site: Site, env: dict[str, str]) -> None:
    cabinets.add_cabinet(site.ctl, site.service, "R1", "rs485-2bus")
    with serving("rs485-2bus", "--pty") as (_proc, where):
        backend = f"profile:rs485-2bus?locks={where['locks']}&field={where['field']}"
        alone = adc(
            env,
            "selftest",
            "--cabinet",
            "R1",
            "--backend",
            backend,
            "--drawer",
            "D1",
            "--person",
            "none",
            "--json",
        )
        # a prompted engineer who does not pull: the switch stays shut, they say it did not open
        asked = adc(
            env,
            "selftest",
            "--cabinet",
            "R1",
            "--backend",
            backend,
            "--drawer",
            "D4",
            "--person",
            "prompt",
            "--person-timeout",
            "0.5",
            stdin="\n" * 3 + "n\n" * 3,
        )
    checks = {c["point"]: c for c in as_json(alone)["checks"]}
    lock = checks["lb0:lock.0"]
    assert lock["verdict"] == "pass" and 20 <= lock["data"]["actuation_ms"] < 500
    assert checks["dio1:di.0"]["verdict"] == "not exercised"
    assert "Hold the handle of drawer D4" in asked.stdout and "Did drawer D4 open?" in asked.stdout
    assert asked.returncode == 1 and "FAIL (jammed)" in asked.stdout


# --------------------------------------------------------------- the sim backend, with a record
def test_selftest_is_recorded_and_controlled_substances_need_a_witness(
    site: Site, env: dict[str, str]
) -> None:
    sim = ["--cabinet", "W1", "--backend", "sim:tcp-6drawer", "--drawer", "D1"]

    stock(site, "D1-P2", MORPHINE_CART, 3)
    refused = adc(env, "selftest", *sim)
    assert refused.returncode == 1
    assert "needs a pharmacist witness" in refused.stdout and "D1-P2" in refused.stdout
    witnessed = adc(
        {**env, "ADC_WITNESS_PIN": PIN}, "selftest", *sim, "--witness", "pharmacist", "--json"
    )
    assert witnessed.returncode == 0, witnessed.stdout
    assert as_json(witnessed)["summary"] == "selftest: 2 passed, 0 failed"
    nurse = adc({**env, "ADC_WITNESS_PIN": PIN}, "selftest", *sim, "--witness", "nurse")
    assert nurse.returncode == 1 and "is a nurse, not a pharmacist" in nurse.stderr

    with site.ctl.read() as session:
        runs = (
            session.execute(
                select(MaintenanceEvent).where(MaintenanceEvent.kind == "diag-selftest")
            )
            .scalars()
            .all()
        )
        entries = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.action == "maintenance.diagnostic")
                .order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
    assert len(runs) == 2  # the nurse-witnessed run was refused before anything ran
    assert [(e.actor, e.witness) for e in entries] == [("service", None), ("service", "pharmacist")]
    assert [json.loads(e.payload)["result"] for e in entries] == ["refused", "pass"]


def test_recover_walks_a_failed_drawer_back_into_service(site: Site, env: dict[str, str]) -> None:
    stock(site, "D1-P1", ACETAMINOPHEN, 10)
    sim = ["--cabinet", "W1", "--backend", "sim:tcp-6drawer"]
    marked = adc(
        env,
        "recover",
        "--cabinet",
        "W1",
        "--drawer",
        "D1",
        "--mark-failed",
        "open at power loss",
        "--kind",
        "power-loss-open",
    )
    assert marked.returncode == 0 and "drawer D1 is out of service" in marked.stdout
    listed = adc(env, "recover", "--cabinet", "W1")
    assert "drawer D1 out of service" in listed.stdout and "power-loss-open" in listed.stdout

    no_counter = adc(env, "recover", *sim, "--drawer", "D1")
    assert no_counter.returncode == 2 and "may not count stock" in no_counter.stderr

    counted = adc(
        {**env, "ADC_COUNTER_PIN": PIN},
        "recover",
        *sim,
        "--drawer",
        "D1",
        "--counter",
        "technician",
    )
    assert counted.returncode == 0, counted.stdout
    assert "blind recount required" in counted.stdout and "D1-P1: Acetaminophen" in counted.stdout
    assert "returned to service" in counted.stdout
    assert maintenance.out_of_service(site.ctl, "W1") == {}
    with site.ctl.read() as session:
        verify_chain(session)  # raises if the run broke the audit chain


def test_calibrate_writes_the_unit_weight(site: Site, env: dict[str, str]) -> None:
    stock(
        site, "D1-P1", ACETAMINOPHEN, 10
    )  # the formulary says 0.55 g; the virtual packs weigh 2 g
    from tests.diag.test_calibrate_master_data import mark_simulated

    mark_simulated(site)  # only a simulated cabinet takes a sim: backend's unit weight
    result = adc(
        env,
        "calibrate",
        "--cabinet",
        "W1",
        "--backend",
        "sim:tcp-6drawer",
        "--pocket",
        "D1-P1",
        "--known-count",
        "5",
        "--json",
    )
    report = as_json(result)
    assert result.returncode == 0, report
    assert report["unit_weight_written"]["before"] == 0.55
    with site.ctl.read() as session:
        weight = session.get(Item, site.item_id(ACETAMINOPHEN)).unit_weight_g
        kinds = set(session.execute(select(MaintenanceEvent.kind)).scalars())
    assert weight == pytest.approx(2.0, abs=0.1)
    assert {"calibrated", "diag-calibrate"} <= kinds

    sensors = as_json(
        adc(
            env,
            "sensors",
            "--cabinet",
            "W1",
            "--backend",
            "sim:tcp-6drawer",
            "--pocket",
            "D1-P1",
            "--json",
        )
    )
    (check,) = sensors["checks"]
    assert check["data"]["unit_weight_g"] == weight and check["data"]["on_hand"] == 10


def test_watch_is_live_on_a_terminal() -> None:
    """On a terminal the screen is redrawn in place (rich.live), not printed once per refresh."""
    import pexpect

    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "adc",
            "diag",
            "watch",
            "--backend",
            "sim:rs485-2bus",
            "--iterations",
            "3",
            "--rate",
            "20",
        ],
        cwd=str(ROOT),
        env={**os.environ, "COLUMNS": "120", "LINES": "80", "TERM": "xterm"},
        encoding="utf-8",
        timeout=30,
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0, screen
    assert "bus health" in screen and "D3-P6" in screen
    assert "\x1b[1A" in screen and "\x1b[2K" in screen  # cursor up, erase line: redrawn in place
    assert "not recorded" not in screen  # watch without --cabinet prints no record line
