"""`adc station run` as a process: a second station is refused with one line; SIGTERM stops it
with exit 0; killed -9 in the middle of a client's access and started again, it closes the access
as interrupted and flags its drawer for a blind recount (audited)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adc.controller import access_log, cabinets, maintenance
from adc.controller.access import PocketAccess
from adc.drivers.station import open_backend as open_station
from tests.conftest import ROOT, run_adc
from tests.controller.site import CABINET, build_site
from tests.controller.site import PROFILE as _PROFILE  # noqa: F401


def _registered() -> bool:
    from adc import cli

    names = {name for name, *_ in getattr(cli, "COMMANDS", [])}
    return "station" in names or "station" in {g.name for g in cli.app.registered_groups}


pytestmark = pytest.mark.skipif(
    not _registered(), reason="`adc station` is not registered in adc/cli.py in this tree yet"
)


@pytest.fixture
def world(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    site = build_site(db_url, with_cabinet=False)
    from adc.commands.access import SystemClock
    from adc.controller.context import Controller

    site.ctl = Controller(site.ctl.db, SystemClock())  # a live station: wall time on both sides
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "tcp-6drawer")
    env = {**os.environ, "ADC_STATION_DIR": str(tmp_path / "run"), "ADC_DATABASE_URL": db_url}
    yield site, env, tmp_path / "st.sock"
    site.ctl.db.close()


def _start(env: dict[str, str], sock: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "adc", "station", "run", "--cabinet", CABINET,
         "--backend", "sim:tcp-6drawer", "--listen", str(sock)],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate(timeout=5)
            raise AssertionError(f"station did not start: {out}{err}")
        time.sleep(0.05)
    return proc


def test_second_station_refused_and_sigterm_exits_0(world) -> None:  # type: ignore[no-untyped-def]
    _site, env, sock = world
    first = _start(env, sock)
    try:
        second = run_adc(
            "station", "run", "--cabinet", CABINET, "--backend", "sim:tcp-6drawer", env=env
        )
        assert second.returncode == 1
        assert len(second.stderr.strip().splitlines()) == 1
        assert "held by another station" in second.stderr
        status = run_adc("station", "status", "--cabinet", CABINET, "--json", env=env)
        assert status.returncode == 0, status.stderr
        assert '"running": true' in status.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert "bus closed" in out
    status = run_adc("station", "status", "--cabinet", CABINET, env=env)
    assert status.returncode == 1 and "not running (stopped)" in status.stdout


def test_station_killed_mid_access_flags_it_at_restart(world) -> None:  # type: ignore[no-untyped-def]
    site, env, sock = world
    station = _start(env, sock)
    client = open_station(str(sock))
    try:
        access = PocketAccess.for_pocket(
            site.ctl, client, CABINET, site.nurse, "D1-P1", "withdrawal"
        )
        access.unlock()
        (row,) = access_log.open_accesses(site.ctl, CABINET)
        station.send_signal(signal.SIGKILL)
        station.communicate(timeout=30)
    finally:
        client.close()
    assert maintenance.out_of_service(site.ctl, CABINET) == {}
    restarted = _start(env, sock)
    try:
        deadline = time.monotonic() + 20
        while access_log.open_accesses(site.ctl, CABINET) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert access_log.open_accesses(site.ctl, CABINET) == []
        (failure,) = maintenance.out_of_service(site.ctl, CABINET)["D1"]
        assert failure.kind == "failed" and "station watching the cabinet stopped" in failure.detail
        from tests.station.conftest import Rig

        audit = Rig(site, None, None).audit("access.interrupted")  # type: ignore[arg-type]
        assert [(a["access"], a["cause"]) for a in audit] == [(row.id, "station-stopped")]
        started = Rig(site, None, None).audit("station.started")  # type: ignore[arg-type]
        assert started[-1]["previous_ended_uncleanly"] == started[0]["id"]
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=30)
    assert restarted.returncode == 0
