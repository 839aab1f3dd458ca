"""Every lock diagnostics opens goes through the controller's access machine (issue 13): a
`ServiceCycle` per lock, its access on the access log before the pulse and attributed to the
service user, the relock judged and recorded by the machine (once), and no pulse at all without a
database to record it on. A selftest killed with SIGKILL while a drawer is unlatched is flagged at
the next start, like any other access."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from adc.controller.models import AccessLog, MaintenanceEvent, User
from adc.diag.bench import bench_for
from adc.diag.person import NoPerson
from adc.diag.results import Verdict
from adc.diag.selftest import NO_RECORD, pocket_doors, selftest
from adc.profiles import load_profile, resolve_profile_path
from adc.waiting import SteppedTime
from tests.contract.rigs import sim_rig
from tests.diag.conftest import BENCH_CABINET, bench
from tests.hostile.crashkit import (
    CABINET,
    ROOT,
    as_at_a_terminal,
    build_template,
    clean_env,
    flag_problems,
    open_access_rows,
    rows,
    sqlite_url,
    told_problems,
)


def _rig(profile: str) -> Any:
    return sim_rig(load_profile(resolve_profile_path(profile)), 3)


def _accesses(b: Any) -> list[tuple[str, str | None, str, str, str | None]]:
    """(drawer, pocket, purpose, username, outcome) of the bench database's access log."""
    ctl = b.gate.recorder.ctl
    with ctl.read() as session:
        found = session.execute(
            select(AccessLog, User.username).join(User, User.id == AccessLog.user_id)  # type: ignore[arg-type]
        ).all()
        return [(a.drawer_code, a.pocket_code, a.purpose, name, a.outcome) for a, name in found]


def test_every_pulse_of_a_selftest_is_an_access_on_record_by_the_service_user() -> None:
    with _rig("rs485-2bus") as rig:
        b = bench(rig)
        report = selftest(b, ["D1", "D2"])
        drawers = {d.id: d for d in rig.driver.profile.layout.drawers}
    assert report.ok, report.failures()
    lids = {(d, p) for d in ("D1", "D2") for p, door, _ in pocket_doors(drawers[d]) if door}
    assert len(lids) == 6  # D2's six lids: each its own cycle
    accesses = _accesses(b)
    assert {(d, p) for d, p, *_ in accesses} == {("D1", None), ("D2", None)} | lids
    assert len(accesses) == len(report.checks) // 2  # one per lock cycled
    assert all(a[2:] == ("selftest", "service", "done") for a in accesses)  # all closed


def test_without_a_database_no_lock_is_pulsed() -> None:
    pulses: list[str] = []

    class Counting:
        def __init__(self, driver: Any) -> None:
            self._driver = driver

        def pulse(self, point: str) -> None:
            pulses.append(point)
            self._driver.pulse(point)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._driver, name)

    with _rig("rs485-2bus") as rig:
        cabinet = rig.cabinet
        b = bench_for(
            Counting(rig.driver),  # type: ignore[arg-type]
            waiter=SteppedTime(rig.advance, lambda: cabinet.env.now),
            gate=None,
        )
        report = selftest(b, ["D1", "D2"])
        assert not cabinet.is_open("D1")
    assert pulses == []
    assert report.checks and all(c.verdict is Verdict.NOT_EXERCISED for c in report.checks)
    assert all(c.flags == ["refused"] and c.reason == NO_RECORD for c in report.checks)
    assert report.refused


def test_a_lock_that_does_not_relatch_is_recorded_once_by_the_machine() -> None:
    with _rig("rs485-2bus") as rig:
        rig.cabinet.sim_inject_fault("lock_no_reengage", "lb0:lock.0")
        b = bench(rig, NoPerson())
        report = selftest(b, ["D1"])
        recorder = b.gate.recorder  # type: ignore[union-attr]
        recorder.record(report, rig.driver.profile)
    lock = next(c for c in report.checks if c.point == "lb0:lock.0")
    assert lock.verdict is Verdict.FAIL and "no-relock" in lock.flags
    assert "relock-failed" in lock.reason  # the machine's maintenance event is named
    with recorder.ctl.read() as session:
        kinds = session.execute(
            select(MaintenanceEvent.kind, MaintenanceEvent.drawer_code).where(
                MaintenanceEvent.cabinet_id == BENCH_CABINET,
                MaintenanceEvent.kind == "relock-failed",
            )
        ).all()
    assert kinds == [("relock-failed", "D1")]  # once: the run's record does not repeat it
    assert ("D1", None, "selftest", "service", "failed") in _accesses(b)


# ------------------------------------------------------------------------ kill -9 mid-selftest
def _read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """Characters of the child's stdout until `text` shows (a prompt ends without a newline)."""
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        while not done.is_set():
            char = proc.stdout.read(1)
            if not char:
                break
            seen.append(char)
            if "".join(seen[-len(text) :]) == text:
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return "".join(seen)


def test_a_selftest_killed_while_a_drawer_is_unlatched_is_flagged_at_the_next_start(
    tmp_path: Path,
) -> None:
    db = tmp_path / "adc.db"
    build_template(db)
    env = clean_env(sqlite_url(db), tmp_path / "home")
    args = [
        "diag", "selftest", "--cabinet", CABINET, "--user", "service", "--drawer", "D1",
        "--backend", "sim:tcp-6drawer", "--person", "prompt",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "adc", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=as_at_a_terminal,
    )
    try:
        assert proc.stdin is not None
        said = _read_until(proc, "press Enter", 60)
        assert "Hold the handle of drawer D1" in said, said
        proc.stdin.write("\n")  # the engineer holds the handle: the pulse goes out
        proc.stdin.flush()
        said += _read_until(proc, "[y/n]", 60)
        assert "Did drawer D1 open?" in said, said  # asked after the pulse, the access open
        opened = open_access_rows(db)
        assert [(c, d, p) for c, d, p, _ in opened.values()] == [(CABINET, "D1", None)]
        (owner,) = [o for *_, o in opened.values()]
        assert owner.split("|")[2] == str(proc.pid)  # the row names the process it dies with
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ((purpose, user),) = rows(
        db,
        "SELECT a.purpose, u.username FROM access_log a JOIN app_user u ON u.id = a.user_id "
        "WHERE a.closed_at IS NULL",
    )
    assert (purpose, user) == ("selftest", "service")

    # the next start: the engineer lists the drawers out of service
    nxt = subprocess.run(
        [sys.executable, "-m", "adc", "diag", "recover", "--cabinet", CABINET, "--user", "service"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert flag_problems(db, opened) == []
    assert told_problems(nxt.stderr, opened) == []
    assert "drawer D1 out of service" in nxt.stdout
    assert "selftest of drawer D1 by service" in nxt.stdout
    assert open_access_rows(db) == {}


def test_a_pulse_that_may_have_gone_out_is_judged_and_recorded_fail_closed() -> None:
    """The board took the pulse and went silent before answering: the access was on record
    first, and the cycle's end judges the lock it cannot read as not relocked (out of service)."""
    from adc.controller.access import AccessState, ServiceCycle
    from adc.controller.maintenance import out_of_service
    from adc.drivers.base import DeviceOffline
    from tests.diag.conftest import bench_site

    class SilentAfterPulse:
        def __init__(self, driver: Any) -> None:
            self._driver, self.silent = driver, False

        def pulse(self, point: str) -> None:
            self._driver.pulse(point)
            self.silent = True
            raise DeviceOffline("lb0", "no answer to the unlock", point)

        def lock_engaged(self, point: str) -> bool:
            if self.silent:
                raise DeviceOffline("lb0", "no answer", point)
            return bool(self._driver.lock_engaged(point))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._driver, name)

    with _rig("rs485-2bus") as rig:
        ctl, service = bench_site(rig)
        cycle = ServiceCycle(
            ctl, SilentAfterPulse(rig.driver), BENCH_CABINET, service, "D1", None, "lb0:lock.0",
            "selftest",
        )  # fmt: skip
        try:
            cycle.unlock()
        except DeviceOffline:
            pass
        else:
            raise AssertionError("the pulse's error is the procedure's to report")
        assert cycle.state is AccessState.UNLOCKED
        with ctl.read() as session:
            (row,) = session.execute(select(AccessLog)).scalars()
            assert row.closed_at is None and row.purpose == "selftest"
        rig.advance(2.0)
        assert cycle.finish("aborted")
    assert cycle.state is AccessState.FAILED and cycle.held is False
    assert [f.kind for f in out_of_service(ctl, BENCH_CABINET)["D1"]] == ["relock-failed"]
    assert "lock state unreadable" in cycle.alarms[0].detail
    with ctl.read() as session:
        (row,) = session.execute(select(AccessLog)).scalars()
        assert row.closed_at is not None and row.outcome == "aborted"
