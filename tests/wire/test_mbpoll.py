"""Interoperability with mbpoll, a Modbus master we did not write (Debian package `mbpoll`).

It reads registers and bits from, and writes a coil to, the Modbus TCP emulator, and reads over RTU
through a pseudo-terminal. The values it prints are compared with the virtual devices' own registers.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adc.profiles import load_profile
from adc.sim.cabinet import VirtualCabinet
from adc.sim.emulator_modbus import ModbusRtuEmulator, ModbusTcpEmulator

PROFILES = Path(__file__).resolve().parents[2] / "hardware-profiles"
MBPOLL = shutil.which("mbpoll")
pytestmark = pytest.mark.skipif(
    MBPOLL is None, reason="mbpoll is not installed (Debian package mbpoll; .ci/run installs it)"
)
VALUE = re.compile(r"^\[(\d+)\]:\s+(-?[0-9.]+)", re.MULTILINE)


def mbpoll(*args: str) -> subprocess.CompletedProcess[str]:
    """One poll (-1), PDU addressing (-0: reference 0 is address 0), half a second timeout."""
    assert MBPOLL is not None
    return subprocess.run(
        [MBPOLL, "-0", "-1", "-o", "0.5", *args], capture_output=True, text=True, timeout=20
    )


def values(out: str) -> dict[int, str]:
    return {int(ref): value for ref, value in VALUE.findall(out)}


@pytest.fixture
def tcp() -> Iterator[tuple[VirtualCabinet, int, threading.RLock]]:
    cabinet = VirtualCabinet(load_profile(PROFILES / "tcp-6drawer.toml"), seed=3)
    lock = threading.RLock()
    with ModbusTcpEmulator(cabinet, "main", port=0, lock=lock) as emulator:
        yield cabinet, emulator.address[1], lock


def test_mbpoll_reads_input_registers_over_tcp(
    tcp: tuple[VirtualCabinet, int, threading.RLock],
) -> None:
    cabinet, port, lock = tcp
    result = mbpoll(
        "-m", "tcp", "-p", str(port), "-a", "2", "-t", "3", "-r", "0", "-c", "16", "127.0.0.1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with lock:
        expected = cabinet.device("lc1").read_registers("input", 0, 16)  # type: ignore[union-attr]
    got = values(result.stdout)
    # mbpoll prints 16-bit registers signed; the device holds them unsigned.
    assert [int(got[i]) & 0xFFFF for i in range(16)] == expected
    assert any(expected), "float32 weights of a loaded cabinet are not all zero"


def test_mbpoll_reads_discrete_inputs_and_coils_over_tcp(
    tcp: tuple[VirtualCabinet, int, threading.RLock],
) -> None:
    cabinet, port, lock = tcp
    inputs = mbpoll(
        "-m", "tcp", "-p", str(port), "-a", "1", "-t", "1", "-r", "0", "-c", "26", "127.0.0.1"
    )
    coils = mbpoll(
        "-m", "tcp", "-p", str(port), "-a", "1", "-t", "0", "-r", "0", "-c", "30", "127.0.0.1"
    )
    assert inputs.returncode == 0 and coils.returncode == 0, inputs.stderr + coils.stderr
    with lock:
        dio = cabinet.device("dio1")
        want_inputs = dio.read_bits("discrete_inputs", 0, 26)  # type: ignore[union-attr]
        want_coils = dio.read_bits("coils", 0, 30)  # type: ignore[union-attr]
    assert [values(inputs.stdout)[i] == "1" for i in range(26)] == want_inputs
    assert [values(coils.stdout)[i] == "1" for i in range(30)] == want_coils
    assert want_inputs[0] and not want_coils[0]  # drawers shut, no lock pulsing


def test_mbpoll_writes_a_coil_over_tcp(tcp: tuple[VirtualCabinet, int, threading.RLock]) -> None:
    cabinet, port, lock = tcp
    light = 20  # dio1:coil.20, the guide light of drawer D1
    with lock:
        assert cabinet.device("dio1").read_bits("coils", light, 1) == [False]  # type: ignore[union-attr]
    result = mbpoll(
        "-m", "tcp", "-p", str(port), "-a", "1", "-t", "0", "-r", str(light), "127.0.0.1", "1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Written 1 references" in result.stdout
    with lock:
        assert cabinet.device("dio1").read_bits("coils", light, 1) == [True]  # type: ignore[union-attr]


def test_mbpoll_pulses_a_lock_coil_and_sees_busy_inside_the_rearm_window(
    tcp: tuple[VirtualCabinet, int, threading.RLock],
) -> None:
    cabinet, port, lock = tcp
    args = ("-m", "tcp", "-p", str(port), "-a", "1", "-t", "0", "-r", "0", "127.0.0.1", "1")
    assert mbpoll(*args).returncode == 0
    with lock:
        assert cabinet.device("dio1").read_bits("coils", 0, 1) == [True]  # type: ignore[union-attr]
    second = mbpoll(*args)
    assert second.returncode != 0
    assert "busy" in (second.stdout + second.stderr).lower()


def test_unknown_device_id_gets_gateway_exception_and_no_log(
    tcp: tuple[VirtualCabinet, int, threading.RLock], caplog: pytest.LogCaptureFixture
) -> None:
    _, port, _ = tcp
    with caplog.at_level(logging.DEBUG):
        result = mbpoll("-m", "tcp", "-p", str(port), "-a", "99", "-t", "0", "-r", "0", "127.0.0.1")
    assert result.returncode != 0
    assert "target device failed to respond" in (result.stdout + result.stderr).lower()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_mbpoll_reads_over_rtu_through_a_pty() -> None:
    cabinet = VirtualCabinet(load_profile(PROFILES / "cs-small.toml"), seed=3)
    with ModbusRtuEmulator(cabinet, "rtu") as emulator:
        result = mbpoll(
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "2", "-t", "3",
            "-r", "0", "-c", "4", emulator.port,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        expected = cabinet.device("lc1").read_registers("input", 0, 4)  # type: ignore[union-attr]
        bits = mbpoll(
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "1",
            "-r", "0", "-c", "21", emulator.port,
        )  # fmt: skip
        assert bits.returncode == 0, bits.stdout + bits.stderr
        want_bits = cabinet.device("dio1").read_bits("discrete_inputs", 0, 21)  # type: ignore[union-attr]
    got = values(result.stdout)
    assert [int(got[i]) & 0xFFFF for i in range(4)] == expected
    assert [values(bits.stdout)[i] == "1" for i in range(21)] == want_bits


def test_rtu_stays_silent_for_an_unknown_device_id() -> None:
    cabinet = VirtualCabinet(load_profile(PROFILES / "cs-small.toml"), seed=3)
    with ModbusRtuEmulator(cabinet, "rtu") as emulator:
        result = mbpoll(
            "-m",
            "rtu",
            "-b",
            "19200",
            "-P",
            "none",
            "-a",
            "77",
            "-t",
            "1",
            "-r",
            "0",
            emulator.port,
        )
    assert result.returncode != 0
    assert "timed out" in (result.stdout + result.stderr).lower()
