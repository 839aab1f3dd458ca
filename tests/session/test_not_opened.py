"""The technician's "it did not open" (issue 13): at the restock screen (`stuck`, through a real
pseudo-terminal) and in a script (`stuck = true`), the answer is recorded the one way, by the
controller's access (`PocketAccess.not_opened`): an `open-failed` maintenance event with its
`maintenance.failed` audit entry, the drawer out of service, the access closed as failed, and the
line left without a stock record.

The cabinet is tcp-6drawer on the Modbus TCP emulator in real time, in this process, with drawer
D1's lock (dio1:coil.0, no feedback) jammed: the pulse is accepted, the drawer stays shut."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import pytest

from adc.controller.settings import set_setting
from tests.conftest import ROOT, run_adc
from tests.controller.site import PIN
from tests.session.helpers import ONDANSETRON_VIAL, SessionSite, emulator, good_expiry, hri

pytestmark = pytest.mark.timeout(90)

JAMMED = "dio1:coil.0"  # drawer D1's lock


def _recorded_once(site: SessionSite) -> None:
    """One open-failed event on D1, its audit entry, the access closed as failed, no stock."""
    events = site.rows("SELECT id, kind, drawer_code, pocket_code, detail FROM maintenance_event")
    assert [(k, d, p) for _, k, d, p, _ in events] == [("open-failed", "D1", "D1-P1")], events
    (event_id, *_rest, detail) = events[0]
    assert "did not open (restock by technician)" in detail
    audits = site.rows(
        "SELECT payload FROM audit_entry WHERE action = 'maintenance.failed'"
        " AND json_extract(payload, '$.drawer') = 'D1'"
    )
    assert len(audits) == 1 and json.loads(audits[0][0])["kind"] == "open-failed"
    # the access is closed (the line left): nothing for the next start to flag
    assert site.rows("SELECT purpose, outcome FROM access_log WHERE closed_at IS NOT NULL") == [
        ("restock", "failed")
    ]
    assert site.on_hand("D1-P1") == 0  # nothing recorded as stock
    assert site.rows("SELECT count(*) FROM stock_transaction WHERE qty > 0") == [(0,)]
    del event_id


def test_stuck_at_the_screen_records_open_failed_and_the_next_line_comes_up(
    session_site: SessionSite,
) -> None:
    with emulator() as (server, where):
        with server.lock:
            server.cabinet.sim_inject_fault("lock_jammed", JAMMED)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "adc", "restock", "--cabinet", "W1", "--user", "technician",
             "--backend", f"modbus-tcp://{where}"],
            env=session_site.env(),
            cwd=str(ROOT),
            dimensions=(60, 160),
            encoding="utf-8",
            timeout=20,
        )  # fmt: skip
        try:
            child.expect("PIN for technician:")
            child.sendline(PIN)
            child.expect("Scan a pack")
            child.sendline(hri(ONDANSETRON_VIAL, good_expiry(), "ST1"))
            child.expect("drawer D1 unlocked — open it:")
            child.expect("stuck = it stayed shut when pulled")
            with server.lock:
                assert not server.cabinet.sim_open("D1")  # the person pulls: it stays shut
            child.sendline("stuck")
            child.expect("D1-P1 did not open")
            child.expect("drawer D1 is out of service")
            child.expect("Scan a pack")  # the next line (D2-P1) comes up
            child.sendline("quit")
            child.expect(pexpect.EOF)
            child.close()
        finally:
            if child.isalive():
                child.terminate(force=True)
    _recorded_once(session_site)
    assert session_site.rows(
        "SELECT count(*) FROM audit_entry WHERE action = 'restock.shortage'"
    ) == [(0,)]


def _script(tmp_path: Path, stuck: str = "stuck = true") -> Path:
    path = tmp_path / "stuck.toml"
    path.write_text(
        f'[[line]]\npocket = "D1-P1"\nscan = "{hri(ONDANSETRON_VIAL, good_expiry(), "ST2")}"\n'
        f"quantity = 2\n{stuck}\n"
    )
    return path


def test_stuck_in_a_script_records_open_failed_when_it_was_not_opened_in_time(
    session_site: SessionSite, tmp_path: Path
) -> None:
    site = session_site.site
    set_setting(site.ctl, site.admin, "unlock-timeout-s", "2")  # nobody opens: quick timeout
    with emulator() as (server, where):
        with server.lock:
            server.cabinet.sim_inject_fault("lock_jammed", JAMMED)
        run = run_adc(
            "restock", "--cabinet", "W1", "--script", str(_script(tmp_path)),
            "--backend", f"modbus-tcp://{where}", "--json",
            env=session_site.env(ADC_USER="technician", ADC_PIN=PIN),
            timeout=60,
        )  # fmt: skip
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 1, run.stdout + run.stderr  # a drawer needs service
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert "timeout" in kinds and "not-opened" in kinds and "recorded" not in kinds
    failed = next(e for e in events if e["event"] == "not-opened")
    assert (failed["drawer"], failed["kind"]) == ("D1", "open-failed")
    left = next(e for e in events if e["event"] == "unfinished")
    assert left["reason"] == "did not open: the drawer is out of service"
    _recorded_once(session_site)


def test_stuck_in_a_script_is_not_used_where_the_pocket_opens(
    session_site: SessionSite, tmp_path: Path
) -> None:
    run = run_adc(
        "restock", "--cabinet", "W1", "--script", str(_script(tmp_path)),
        "--backend", "sim:", "--json",
        env=session_site.env(ADC_USER="technician", ADC_PIN=PIN),
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert any(e["event"] == "note" and "stuck not used" in e["reason"] for e in events)
    assert any(e["event"] == "recorded" for e in events)
    assert session_site.rows("SELECT count(*) FROM maintenance_event") == [(0,)]


def test_stuck_on_a_skipped_line_is_a_script_problem(
    session_site: SessionSite, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[line]]\nskip = "out of stock"\nstuck = true\n')
    run = run_adc(
        "restock", "--cabinet", "W1", "--script", str(path), "--backend", "sim:",
        env=session_site.env(ADC_USER="technician", ADC_PIN=PIN),
    )  # fmt: skip
    assert run.returncode == 2
    assert "bad.toml:3: a skipped line unlocks nothing: it cannot be stuck" in run.stderr
