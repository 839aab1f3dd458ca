"""A partial unlock at the interactive `adc restock` screen, through a real pseudo-terminal.

Cabinet W2 is rs485-2bus served on ptys in real time in this process: drawer D3's lock is
lb0:lock.2, its pocket D3-P1's lid lock lb1:lock.0 on the other lock board. Another master
(this test) leaves the drawer lock re-arming just before the scan: the lid is released, the drawer
lock refused. The screen says which lock opened and offers to unlock again; once the locks have
re-armed, Enter unlocks both.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pexpect
import pytest

from adc.controller import cabinets
from adc.profiles import load_profile, resolve_profile_path
from adc.sim.serve import CabinetServer, realtime_cabinet
from tests.conftest import ROOT
from tests.controller.site import PIN
from tests.session.helpers import ONDANSETRON_VIAL, SessionSite, good_expiry, hri

pytestmark = pytest.mark.timeout(90)


@contextmanager
def served_rs485() -> Iterator[tuple[CabinetServer, str]]:
    cabinet = realtime_cabinet(load_profile(resolve_profile_path("rs485-2bus")), seed=2)
    server = CabinetServer(cabinet, pty=True)
    served = server.start()
    stop = threading.Event()
    clock = threading.Thread(target=server.run_realtime, args=(stop,), daemon=True)
    clock.start()
    ports = "&".join(f"{s.bus}={s.where}" for s in served)
    try:
        yield server, f"profile:rs485-2bus?{ports}"
    finally:
        stop.set()
        clock.join(5)
        server.close()


@contextmanager
def _keeps_pulsing(server: CabinetServer, board: str, lock: int) -> Iterator[None]:
    """Another master pulses a lock again as soon as it has re-armed (every 2 s), so it is
    re-arming whenever the process under test, however slow to start, asks for it."""
    from adc.sim.errors import DeviceBusy

    stop = threading.Event()

    def pulse() -> None:
        while not stop.is_set():
            with server.lock, suppress(DeviceBusy):
                server.cabinet.device(board).unlock(lock)
            stop.wait(0.005)

    thread = threading.Thread(target=pulse, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def _jammed(server: CabinetServer, lock: str) -> Iterator[None]:
    """The drawer's lock is jammed: its bolt never comes out. A CU16 board does not answer an
    unlock (public protocol), so the driver learns it only from the status it reads back: the
    pocket's own lock went out first, the drawer's did not (a partial unlock, every time; a lock
    kept re-arming by another master is a race the board's status may or may not show)."""
    with server.lock:
        server.cabinet.sim_inject_fault("lock_jammed", lock)
    yield


def test_a_partial_unlock_says_which_lock_opened_and_unlocks_again(
    session_site: SessionSite,
) -> None:
    site = session_site.site
    cabinets.add_cabinet(site.ctl, site.service, "W2", "rs485-2bus")
    cabinets.assign_pocket(
        site.ctl, site.pharmacist, "W2", "D3-P1", ONDANSETRON_VIAL, par=4, critical_low=1, max_qty=6
    )
    with served_rs485() as (server, backend):
        child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "adc",
                "restock",
                "--cabinet",
                "W2",
                "--user",
                "technician",
                *("--backend", backend),
            ],
            env=session_site.env(),
            cwd=str(ROOT),
            dimensions=(60, 160),
            encoding="utf-8",
            timeout=20,
        )
        try:
            child.expect("PIN for technician:")
            child.sendline(PIN)
            child.expect("Scan a pack")
            with server.lock:  # another master pulses drawer D3's lock: it re-arms for 2 s
                server.cabinet.device("lb0").unlock(2)
            time.sleep(0.6)  # its pulse is over (nobody pulled); the coil still re-arms
            child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "PU1"))
            child.expect("D3-P1: not unlocked as asked")
            child.expect("lock lb1:lock.0 opened")
            child.expect("lock lb0:lock.2 did not")
            child.expect("Enter = unlock again")
            with server.lock:
                assert server.cabinet.lock_holding("lb0:lock.2"), "the drawer stayed locked"
            time.sleep(2.5)  # both locks re-arm
            child.sendline("")
            child.expect("drawer D3 and pocket D3-P1 unlocked — open it:")
            child.sendintr()
            child.expect("never opened, relocked")
            child.expect(pexpect.EOF)
            child.close()
            assert child.exitstatus == 130
        finally:
            if child.isalive():
                child.terminate(force=True)
    rows = session_site.rows("SELECT kind, drawer_code, pocket_code, detail FROM maintenance_event")
    assert len(rows) == 1
    kind, drawer, pocket, detail = rows[0]
    assert (kind, drawer, pocket) == ("alarm-partial-unlock", "D3", "D3-P1")
    assert "released lb1:lock.0; not released lb0:lock.2" in detail


def test_a_scripted_session_reports_the_partial_unlock_as_a_json_error_event(
    session_site: SessionSite, tmp_path: Path
) -> None:
    import json
    import subprocess

    site = session_site.site
    cabinets.add_cabinet(site.ctl, site.service, "W2", "rs485-2bus")
    cabinets.assign_pocket(
        site.ctl, site.pharmacist, "W2", "D3-P1", ONDANSETRON_VIAL, par=4, critical_low=1, max_qty=6
    )
    script = tmp_path / "round.toml"
    scan = hri(ONDANSETRON_VIAL, good_expiry(), "PU2")
    script.write_text(f'[[line]]\npocket = "D3-P1"\nscan = "{scan}"\nquantity = 4\n')
    with served_rs485() as (server, backend), _jammed(server, "lb0:lock.2"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "adc",
                "restock",
                "--cabinet",
                "W2",
                "--user",
                "technician",
                "--backend",
                backend,
                "--script",
                str(script),
                "--json",
            ],
            env={**session_site.env(), "ADC_PIN": PIN},
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=60,
        )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1, (result.stdout[-3000:], result.stderr[-2000:])
    (error,) = errors
    assert error["partial_unlock"] is True and error["pocket"] == "D3-P1"
    assert error["released"] == ["lb1:lock.0"] and error["not_released"] == ["lb0:lock.2"]
    assert error["unconfirmed"] == [] and error["out_of_service"] is False and error["retry"]
    assert error["maintenance_event"] > 0 and error["maintenance_kind"] == "alarm-partial-unlock"
    assert "lock lb1:lock.0 opened" in error["reason"]
    assert result.returncode == 1
