"""`adc sim serve`: the real entry point in a subprocess, read by the real drivers, stopped by signals."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from adc.drivers.registry import open_backend
from adc.profiles import load_profile, resolve_profile_path
from tests.conftest import ROOT, run_adc

BUS_LINE = re.compile(r"bus (\S+) \((\S+)\): (\S+)")


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """Start `adc sim serve ARGS`, wait (bounded) for it to say where it serves, stop it after.
    The process's later stdout lines are kept in `proc.later` (see `stop`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "adc", "sim", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    where: dict[str, str] = {}
    # A reader thread, not select() on the pipe: buffered readline() may hold several lines that
    # select() would never report again.
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    # stderr is drained as it comes too: a full pipe would block the serve in a write, and a
    # stop that hangs must still show the stacks the serve dumps (see `stop`).
    errors: list[str] = []
    assert proc.stderr is not None
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    drain.start()
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("adc sim serve did not start within 30 s")
            assert line, f"adc sim serve exited: {proc.wait(5)} {''.join(errors)}"
            if match := BUS_LINE.search(line):
                where[match.group(1)] = match.group(3)
            if line.startswith("serving"):
                break
        proc.later = lines  # type: ignore[attr-defined]
        proc.errors = errors, drain  # type: ignore[attr-defined]
        yield proc, where
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    """Signal the serve and wait for it; its exit code, later stdout and stderr. A serve that does
    not stop is asked for its threads' stacks (SIGUSR1), which the failure then shows."""
    errors, drain = proc.errors  # type: ignore[attr-defined]
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        pytest.fail(f"adc sim serve did not stop within 15 s of {sig.name}:\n{''.join(errors)}")
    out = []
    lines: queue.Queue[str] = proc.later  # type: ignore[attr-defined]
    while line := lines.get(timeout=5):
        out.append(line)
    drain.join(timeout=5)  # the process is gone: its stderr ends
    return code, "".join(out), "".join(errors)


def test_serve_tcp_in_real_time_and_stop_with_sigterm() -> None:
    profile = load_profile(resolve_profile_path("tcp-6drawer"))
    with serving("tcp-6drawer", "--modbus-tcp", "127.0.0.1:0", "--realtime-factor", "0.5") as (
        proc,
        where,
    ):
        driver = open_backend(f"modbus-tcp://{where['main']}", profile)
        try:
            assert driver.input_active("dio1:di.0") is True
            driver.pulse("dio1:coil.0")
            assert driver.lock_engaged("dio1:coil.0") is False
            # The cabinet runs on its own clock: the 0.5 s pulse ends after 0.25 s of real time.
            deadline = time.monotonic() + 5
            while not driver.lock_engaged("dio1:coil.0"):
                assert time.monotonic() < deadline, "the pulse never ended: time does not run"
                time.sleep(0.05)
            assert driver.snapshot().weights["lc1:ch.0"] is not None
        finally:
            driver.close()
        code, out, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_serve_serial_buses_on_ptys_and_stop_with_ctrl_c() -> None:
    profile = load_profile(resolve_profile_path("rs485-2bus"))
    with serving("rs485-2bus", "--pty") as (proc, where):
        assert set(where) == {"locks", "field"}
        assert all(path.startswith("/dev/") for path in where.values())
        driver = open_backend("profile:", profile, ports=where)
        try:
            snap = driver.snapshot()
            assert all(v is not None for v in snap.locks_engaged.values())
            assert all(v is not None for v in snap.weights.values())
        finally:
            driver.close()
        code, _, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err


def test_serve_refuses_bad_input_without_a_traceback() -> None:
    bad = run_adc("sim", "serve", "tcp-6drawer", "--modbus-tcp", "nowhere", timeout=60)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr and "Traceback" not in bad.stderr
    # The profile's serial ports do not exist here: say so, and how to serve on ptys instead.
    missing = run_adc("sim", "serve", "rs485-2bus", timeout=60)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "--pty" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.skipif(not os.path.exists("/usr/bin/mbpoll"), reason="mbpoll is not installed")
def test_a_person_reads_the_served_cabinet_with_mbpoll() -> None:
    with serving("tcp-6drawer", "--modbus-tcp", "127.0.0.1:0") as (proc, where):
        host, _, port = where["main"].rpartition(":")
        result = subprocess.run(
            [
                "mbpoll",
                "-m",
                "tcp",
                "-p",
                port,
                "-a",
                "1",
                "-t",
                "1",
                "-r",
                "1",
                "-c",
                "6",
                "-1",
                host,
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.findall(r"\[(\d)\]:\s+1", result.stdout) == ["1", "2", "3", "4", "5", "6"]
        code, _, _ = stop(proc, signal.SIGTERM)
    assert code == 0


def test_tcp_emulator_accept_queue_holds_a_burst_of_connects() -> None:
    """The listen backlog is at least 128: with nobody accepting yet (the server not started),
    100 connects all complete their handshake at once instead of stalling on dropped SYNs."""
    import socket

    from adc.profiles import load_profile
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.emulator_modbus import ModbusTcpEmulator
    from tests.conftest import PROFILES

    cabinet = VirtualCabinet(load_profile(PROFILES / "tcp-6drawer.toml"))
    emulator = ModbusTcpEmulator(cabinet, "main")  # bound and listening, not accepting
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection(emulator.address, timeout=0.3))
    finally:
        for sock in socks:
            sock.close()
        emulator.close()
    assert len(socks) == 100


def _commands(cabinet: object) -> list[int]:
    return [cabinet.device(n).channels[0].last_command for n in ("lc1", "lc2")]  # type: ignore[attr-defined]


def test_broadcast_write_is_carried_out_by_every_device_and_never_answered() -> None:
    """Unit id 0 on TCP and on RTU: a write reaches every Modbus device of the bus (both load
    cells take the tare command; the DIO module, which has no such register, ignores it) and
    nobody answers; a broadcast read is ignored and unanswered."""
    import socket

    import serial

    from adc.drivers import modbus_frames as mf
    from adc.profiles import load_profile
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.emulator_modbus import ModbusRtuEmulator, ModbusTcpEmulator
    from tests.conftest import PROFILES

    tare = mf.encode_request(mf.WriteSingleRequest(mf.Function.WRITE_REGISTER, 0, 2))
    read = mf.encode_request(mf.ReadRequest(mf.Function.READ_INPUT_REGISTERS, 0, 2))
    profile = load_profile(PROFILES / "tcp-6drawer.toml")

    cabinet = VirtualCabinet(profile)
    with ModbusTcpEmulator(cabinet, "main") as emulator:
        with socket.create_connection(emulator.address, timeout=0.3) as sock:
            sock.sendall(mf.encode_mbap(1, 0, read) + mf.encode_mbap(2, 0, tare))
            with pytest.raises(TimeoutError):
                sock.recv(100)
        assert emulator.service.broadcasts == 1
    assert _commands(cabinet) == [2, 2]

    cabinet = VirtualCabinet(profile)
    with ModbusRtuEmulator(cabinet, "main") as emulator:
        port = serial.serial_for_url(emulator.port, timeout=0.3)
        try:
            port.write(mf.encode_rtu(0, read))
            assert port.read(100) == b""
            port.write(mf.encode_rtu(0, tare))
            assert port.read(100) == b""
        finally:
            port.close()
        assert emulator.service.broadcasts == 1
    assert _commands(cabinet) == [2, 2]


def test_rtu_emulator_stays_silent_for_unknown_units_without_mbpoll() -> None:
    """A unit id no device on the line has gets no answer (another device's address on a real
    bus), for reads and writes alike; the devices that are there still answer right after."""
    import serial

    from adc.drivers import modbus_frames as mf
    from adc.profiles import load_profile
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.emulator_modbus import ModbusRtuEmulator
    from tests.conftest import PROFILES

    cabinet = VirtualCabinet(load_profile(PROFILES / "cs-small.toml"))
    read = mf.encode_request(mf.ReadRequest(mf.Function.READ_COILS, 0, 8))
    write = mf.encode_request(mf.WriteSingleRequest(mf.Function.WRITE_COIL, 11, 1))
    with ModbusRtuEmulator(cabinet, "rtu") as emulator:
        port = serial.serial_for_url(emulator.port, timeout=0.25)
        try:
            for unit in (3, 99, 247):
                port.write(mf.encode_rtu(unit, read) + mf.encode_rtu(unit, write))
                assert port.read(64) == b"", f"unit {unit} is not on the line but answered"
            port.write(mf.encode_rtu(1, read))
            assert port.read(64)[:2] == bytes([1, 1])
        finally:
            port.close()
        assert emulator.bad_frames == 0


def test_a_stop_is_not_held_up_by_clients_that_stay_connected(tmp_path: Path) -> None:
    """A Modbus client mid-connection and a control client that never sends its line: SIGTERM
    still stops the serve promptly (socketserver would join their threads without a bound)."""
    import socket

    control = tmp_path / "ctl.sock"
    with serving("tcp-6drawer", "--modbus-tcp", "127.0.0.1:0", "--control", str(control)) as (
        proc,
        where,
    ):
        host, _, port = where["main"].rpartition(":")
        modbus = socket.create_connection((host, int(port)), timeout=5)
        quiet = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        quiet.connect(str(control))
        try:
            modbus.sendall(b"\x00\x01\x00\x00")  # half an MBAP header, never finished
            time.sleep(0.3)  # both handlers are now waiting on their clients
            started = time.monotonic()
            code, out, err = stop(proc, signal.SIGTERM)
            took = time.monotonic() - started
        finally:
            modbus.close()
            quiet.close()
    assert code == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert took < 8, f"the stop took {took:.1f} s"
