"""Clients of one station at once, as separate processes over `station:PATH`: a scripted restock
and a diagnostics watch together (both succeed; the restock's opening is on record and attributed
to it, no unauthorized-access alarm; the station watches on), and a restock client killed with
SIGKILL while its drawer is open (the station flags the access as interrupted: relocked, the
drawer failed for a blind recount, `access.interrupted` audited).

The station runs in this test's process, in wall time, over the in-process virtual cabinet (sim
backend), because its hands are here: `adc station run --backend sim:...` in a process of its own
has nobody to pull the drawer a remote restock unlocks (a `station:` client has no simulated
hands, and `adc sim serve`'s control socket injects faults only). The clients are real `adc`
processes; the hands act under the station's bus lock, as a person at the cabinet would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import access_log, maintenance
from adc.controller.models import AccessLog, AuditEntry, MaintenanceEvent
from adc.station.service import Station
from tests.conftest import ROOT, run_adc
from tests.controller.conftest import _fast_pins, db_url  # noqa: F401  (fixtures)
from tests.controller.rig import sim_driver
from tests.controller.site import ACETAMINOPHEN, CABINET, PIN, hri
from tests.station.conftest import make_site

GOOD = date(2027, 6, 30)
DRAWER, POCKET, LOCK = "D1", "D1-P2", "dio1:coil.0"


@dataclass
class Live:
    site: Any
    driver: Any
    station: Station
    sock: Path
    env: dict[str, str]
    thread: threading.Thread

    def act(self, fn: Any) -> Any:
        """The hands at the cabinet, between the station's reads."""
        with self.station.bus_lock:
            return fn(self.driver.cabinet)

    def events(self, kind: str | None = None) -> list[MaintenanceEvent]:
        with self.site.ctl.read() as session:
            q = select(MaintenanceEvent).order_by(MaintenanceEvent.id)
            if kind:
                q = q.where(MaintenanceEvent.kind == kind)
            return list(session.execute(q).scalars())

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.site.ctl.read() as session:
            found = session.execute(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            ).scalars()
            return [json.loads(r.payload) for r in found]


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    from adc.commands.access import SystemClock
    from adc.controller.context import Controller

    driver = sim_driver("tcp-6drawer")
    site = make_site(db_url, driver)
    site.ctl = Controller(site.ctl.db, SystemClock())  # a live station: wall time on both sides
    sock = tmp_path / "st.sock"
    station = Station(
        site.ctl, CABINET, lambda: driver, backend="sim:tcp-6drawer", listen=str(sock),
        directory=tmp_path / "run", real_time=True, recover_s=0.5,
    )  # fmt: skip
    station.start()
    stop = threading.Event()
    thread = threading.Thread(target=station.run, args=(stop,), daemon=True)
    thread.start()
    env = {
        "ADC_DATABASE_URL": db_url,
        "ADC_USER": "technician",
        "ADC_PIN": PIN,
        "ADC_STATION_DIR": str(tmp_path / "run"),
    }
    try:
        yield Live(site, driver, station, sock, env, thread)
    finally:
        stop.set()
        thread.join(timeout=10)
        station.close("test over")
        site.ctl.db.close()


def _script(tmp_path: Path, lot: str) -> Path:
    script = tmp_path / f"{lot}.toml"
    script.write_text(
        f'cabinet = "{CABINET}"\n\n[[line]]\npocket = "{POCKET}"\n'
        f'scan = "{hri(ACETAMINOPHEN, GOOD, lot)}"\nquantity = 6\nconfirm_discrepancy = true\n'
    )
    return script


def _restock(live: Live, script: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "adc", "restock", "--cabinet", CABINET,
         "--backend", f"station:{live.sock}", "--script", str(script), "--json"],
        cwd=ROOT, env={**os.environ, **live.env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _pull_when_unlocked(live: Live, timeout_s: float = 60.0) -> None:
    """A person holds the handle and pulls as the lock clicks."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if live.act(lambda cab: cab.sim_open(DRAWER)):
            return
        time.sleep(0.01)
    raise AssertionError("the drawer was never unlocked for the restock")


def test_a_restock_and_a_diag_watch_at_once_through_one_station(live: Live, tmp_path: Path) -> None:
    polls_before = live.station.polls
    restock = _restock(live, _script(tmp_path, "TWO1"))
    _pull_when_unlocked(live)
    # the drawer is open for the restock: a second client reads the cabinet meanwhile
    watch = run_adc(
        "diag", "watch", "--once", "--cabinet", CABINET, "--backend", f"station:{live.sock}",
        env={**live.env, "ADC_USER": "service"}, timeout=60,
    )  # fmt: skip
    assert live.act(lambda cab: cab.is_open(DRAWER))  # the watch ran during the access
    live.act(lambda cab: cab.sim_add(POCKET, 6, 0.55))
    time.sleep(0.5)
    live.act(lambda cab: cab.sim_close(DRAWER))
    out, err = restock.communicate(timeout=90)
    assert watch.returncode == 0, watch.stderr
    shown = {line.split("│")[1].strip(): line for line in watch.stdout.splitlines() if "│" in line}
    assert "open" in shown[DRAWER] and "released" in shown[DRAWER], (
        watch.stdout
    )  # it saw the access
    assert "closed" in shown["D2"] and "locked" in shown["D2"], watch.stdout
    assert restock.returncode == 0, (out, err)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(e["event"] == "recorded" and e.get("pocket") == POCKET for e in events), out
    # the access is on record, closed, and it is the restock's
    with live.site.ctl.read() as session:
        rows = list(session.execute(select(AccessLog).order_by(AccessLog.id)).scalars())
    (row,) = rows
    assert (row.purpose, row.pocket_code, row.closed_at is not None) == ("restock", POCKET, True)
    assert row.outcome != maintenance.INTERRUPTED
    time.sleep(1.5)  # the station's next looks after the close
    assert live.events("alarm-unauthorized-access") == []
    assert live.audit("access.interrupted") == []
    assert live.thread.is_alive() and live.station.polls > polls_before + 10
    assert live.station.last_error is None
    assert access_log.open_accesses(live.site.ctl, CABINET) == []


def test_a_restock_client_killed_mid_access_is_flagged_by_the_station(
    live: Live, tmp_path: Path
) -> None:
    restock = _restock(live, _script(tmp_path, "KIL1"))
    _pull_when_unlocked(live)
    (row,) = access_log.open_accesses(live.site.ctl, CABINET)
    assert row.purpose == "restock" and row.pocket_code == POCKET
    assert str(restock.pid) in row.owner
    live.act(lambda cab: cab.sim_add(POCKET, 3, 0.55))  # half loaded, then the client dies
    restock.send_signal(signal.SIGKILL)
    restock.communicate(timeout=30)
    assert restock.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while access_log.open_accesses(live.site.ctl, CABINET) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert access_log.open_accesses(live.site.ctl, CABINET) == []  # the station closed it
    (audited,) = live.audit("access.interrupted")
    assert audited["access"] == row.id
    failures = maintenance.out_of_service(live.site.ctl, CABINET)[DRAWER]
    (failure,) = failures
    assert failure.kind == "failed" and "blind recount required" in failure.detail
    assert "restock of pocket D1-P2 by technician" in failure.detail
    assert live.act(lambda cab: cab.is_open(DRAWER))  # the dead client's drawer, still out
    live.act(lambda cab: cab.sim_close(DRAWER))  # someone pushes it shut: it relocks at once
    deadline = time.monotonic() + 5  # the bolt moves in the cabinet's (wall-followed) time
    while not live.act(lambda cab: cab.lock_holding(LOCK)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.act(lambda cab: cab.lock_holding(LOCK))
    with live.station.bus_lock:  # the coil is off (no pulse left) and the switch closed
        assert live.driver.lock_engaged(LOCK) is True
    with live.site.ctl.read() as session:
        closed = session.get(AccessLog, row.id)
        assert closed is not None and closed.outcome == maintenance.INTERRUPTED
    # a new access to the drawer is refused until it is recounted (fail closed)
    again = _restock(live, _script(tmp_path, "KIL2"))
    out, err = again.communicate(timeout=90)
    assert again.returncode != 0 and "out of service" in (out + err), (out, err)
    assert live.thread.is_alive()
