"""`adc sim serve --fault` and `adc sim fault`: faults on the served cabinet, read over the wire."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from adc.drivers.base import DeviceOffline, LockNotReleased, Quality
from adc.drivers.registry import open_backend
from adc.profiles import load_profile, resolve_profile_path
from adc.sim.errors import SimInputError
from adc.sim.faults import FaultKind, parse_fault_spec
from tests.conftest import run_adc
from tests.wire.test_sim_serve import serving, stop


def test_a_fault_spec_reads_kind_target_time_and_params() -> None:
    spec = parse_fault_spec("loadcell_drift:lc1:ch.0@2m,rate_g_per_h=600")
    assert (spec.kind, spec.target, spec.at_s) == (FaultKind.LOADCELL_DRIFT, "lc1:ch.0", 120.0)
    assert dict(spec.params) == {"rate_g_per_h": 600.0}
    assert parse_fault_spec("power_loss@30").target is None
    assert dict(parse_fault_spec("switch_stuck:dio1:di.0,active=no").params) == {"active": False}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("jammed:dio1:coil.0", "unknown kind 'jammed'"),
        ("lock_jammed:dio1:coil.0@soon", "time 'soon'"),
        ("lock_jammed:dio1:coil.0@-5", "time '-5'"),
        ("bus_noise:main,probability=2", "probability must be 0..1"),
        ("loadcell_noisy:lc1:ch.0,sigma=3", "no parameter 'sigma'"),
    ],
)
def test_a_bad_fault_spec_is_named(text: str, named: str) -> None:
    with pytest.raises(SimInputError, match="fault") as err:
        parse_fault_spec(text)
    assert named in err.value.message


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("bogus:dio1:coil.0", "unknown kind 'bogus'"),
        ("lock_jammed:dio1:coil.99", "dio1:coil.99 is not one"),
        ("lock_jammed:lc1:ch.0", "lc1:ch.0 is not one"),
        ("device_offline:nowhere", "no device 'nowhere'"),
        ("lock_jammed:dio1:coil.0@later", "time 'later'"),
        ("power_loss:x", "takes no target"),
    ],
)
def test_serve_refuses_a_bad_fault_with_exit_2_and_one_line(fault: str, named: str) -> None:
    result = run_adc("sim", "serve", "tcp-6drawer", "--modbus-tcp", "127.0.0.1:0", "--fault", fault)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr


def test_served_faults_reach_the_driver_and_diag_and_can_be_changed_while_it_runs(
    tmp_path: Path,
) -> None:
    profile = load_profile(resolve_profile_path("tcp-6drawer"))
    control = tmp_path / "c.sock"
    args = ["tcp-6drawer", "--modbus-tcp", "127.0.0.1:0", "--control", str(control)]
    args += ["--fault", "loadcell_drift:lc1:ch.0,rate_g_per_h=36000"]
    with serving(*args) as (proc, where):
        uri = f"modbus-tcp://{where['main']}"
        driver = open_backend(uri, profile)
        try:
            assert driver.weight("lc1:ch.0").quality is Quality.UNSTABLE
            assert driver.weight("lc1:ch.1").quality is Quality.OK
            sensors = run_adc("diag", "sensors", "--backend", uri, "--profile", "tcp-6drawer")
            assert sensors.returncode == 1, sensors.stdout + sensors.stderr
            assert "drifting" in sensors.stdout

            fault = ["sim", "fault", "--serve", str(control)]
            injected = run_adc(*fault, "inject", "device_offline:lc2")
            assert injected.returncode == 0, injected.stderr
            with pytest.raises(DeviceOffline):
                driver.weight("lc2:ch.0")
            listed = run_adc(*fault, "list")
            assert (
                "device_offline:lc2" in listed.stdout and "loadcell_drift:lc1:ch.0" in listed.stdout
            )
            # a target the served cabinet lacks, a malformed spec: exit 2, one line, nothing sent
            bad = run_adc(*fault, "inject", "device_offline:lc9")
            assert bad.returncode == 2 and "no device 'lc9'" in bad.stderr
            assert run_adc(*fault, "inject", "nonsense").returncode == 2

            # a client that goes away without reading the answer troubles nobody
            for _ in range(3):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as rude:
                    rude.connect(str(control))
                    rude.sendall(b"list\n")
            cleared = run_adc(*fault, "clear", "device_offline:lc2")
            assert cleared.returncode == 0 and "cleared" in cleared.stdout
            assert driver.weight("lc2:ch.0").quality is not Quality.FAULT
        finally:
            driver.close()
        code, out, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err and "Exception" not in err, err
    assert (
        "fault injected: device_offline lc2" in out and "fault cleared: device_offline lc2" in out
    )
    assert not control.exists()  # the control socket goes with the server
    gone = run_adc("sim", "fault", "--serve", str(control), "list")
    assert gone.returncode == 1 and "no adc sim serve listens" in gone.stderr


def test_a_jammed_lock_on_a_served_lock_board(tmp_path: Path) -> None:
    profile = load_profile(resolve_profile_path("rs485-2bus"))
    args = ["rs485-2bus", "--pty", "--control", str(tmp_path / "c.sock")]
    with serving(*args, "--fault", "lock_jammed:lb0:lock.0") as (proc, where):
        driver = open_backend("profile:", profile, ports=where)
        try:
            with pytest.raises(LockNotReleased):
                driver.pulse("lb0:lock.0")
            assert driver.lock_engaged("lb0:lock.0") is True
            driver.pulse("lb0:lock.1")  # the others are fine
        finally:
            driver.close()
        code, _, err = stop(proc, signal.SIGINT)
    assert code == 0, err


def test_a_timed_fault_comes_at_its_time(tmp_path: Path) -> None:
    profile = load_profile(resolve_profile_path("tcp-6drawer"))
    args = ["tcp-6drawer", "--modbus-tcp", "127.0.0.1:0", "--control", str(tmp_path / "c.sock")]
    with serving(*args, "--realtime-factor", "0.1", "--fault", "device_offline:lc2@20s") as (
        proc,
        where,
    ):
        driver = open_backend(f"modbus-tcp://{where['main']}", profile)
        try:
            driver.weight("lc2:ch.0")  # answers before its time
            deadline = time.monotonic() + 10
            while True:
                try:
                    driver.weight("lc2:ch.0")
                except DeviceOffline:
                    break
                assert time.monotonic() < deadline, "the timed fault never came"
                time.sleep(0.1)
        finally:
            driver.close()
        code, out, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "fault injected: device_offline lc2 (at 20.0 s)" in out
