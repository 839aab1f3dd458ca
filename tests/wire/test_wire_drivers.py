"""The wire drivers and emulators beyond the contract: request counts, dead devices, stale replies,
reconnects, typed exceptions, lock-board busy and re-arm, URIs, line timing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adc.drivers import modbus_frames as mf
from adc.drivers.base import DeviceFault, DeviceOffline, LockNotReleased, RearmRefused
from adc.drivers.buses import WireDriver
from adc.drivers.lockboard import LockboardClient, LockboardPart
from adc.drivers.modbus import ModbusPart
from adc.drivers.modbus_client import (
    ModbusClient,
    ModbusExceptionReply,
    SerialEndpoint,
    TcpEndpoint,
)
from adc.drivers.modbus_plan import Table, minimum_requests, plan_reads, read_wire_time
from adc.drivers.registry import open_backend
from adc.errors import BadInput
from adc.profiles import load_profile
from adc.profiles.models import Profile
from adc.sim.cabinet import VirtualCabinet
from adc.sim.emulator_line import PtyLine
from adc.sim.emulator_lockboard import LockboardEmulator
from adc.sim.emulator_modbus import ModbusRtuEmulator, ModbusTcpEmulator

PROFILES = Path(__file__).resolve().parents[2] / "hardware-profiles"


def profile(name: str) -> Profile:
    return load_profile(PROFILES / f"{name}.toml")


@pytest.fixture
def tcp6() -> Iterator[tuple[VirtualCabinet, WireDriver, ModbusClient]]:
    p = profile("tcp-6drawer")
    cabinet = VirtualCabinet(p, seed=5)
    with ModbusTcpEmulator(cabinet, "main") as emulator:
        host, port = emulator.address
        driver = open_backend(
            f"modbus-tcp://{host}:{port}", p, clock=lambda: cabinet.env.now, timeout_s=0.1
        )
        part = driver.parts[0]
        assert isinstance(part, ModbusPart)
        yield cabinet, driver, part.clients["main"]
        driver.close()


def test_snapshot_takes_exactly_the_planned_minimum_of_requests(tcp6) -> None:  # type: ignore[no-untyped-def]
    cabinet, driver, client = tcp6
    before = client.exchanges
    snap = driver.snapshot()
    assert client.exchanges - before == minimum_requests(cabinet.profile)["main"] == 6
    assert all(v is not None for v in snap.inputs.values())


def test_dead_device_is_offline_and_the_others_still_answer(tcp6) -> None:  # type: ignore[no-untyped-def]
    cabinet, driver, client = tcp6
    cabinet.sim_inject_fault("device_offline", "lc1")
    before = client.exchanges
    snap = driver.snapshot()
    # lc1's first block used its 1 + 2 retries, its second block was not tried at all.
    assert client.exchanges - before == 4 + 3
    assert all(v is None for p, v in snap.weights.items() if p.startswith("lc1:"))
    assert all(v is not None for p, v in snap.weights.items() if p.startswith("lc2:"))
    assert all(v is not None for v in snap.inputs.values())
    assert not snap.health["lc1"].online and snap.health["lc2"].online
    # Once offline it is tried once per snapshot, so a dead device costs one timeout, not three.
    before = client.exchanges
    driver.snapshot()
    assert client.exchanges - before == 4 + 1
    cabinet.sim_clear_fault("device_offline", "lc1")
    assert driver.snapshot().weights["lc1:ch.0"] is not None
    assert driver.health()["lc1"].online


def test_exception_reply_is_a_typed_error_naming_device_and_point(tcp6) -> None:  # type: ignore[no-untyped-def]
    _, _, client = tcp6
    with pytest.raises(ModbusExceptionReply) as err:
        client.read("lc2", 3, Table.INPUT, 0, 40, point="lc2:ch.0")  # lc2 answers 32 at most
    assert err.value.code == 0x03 and err.value.device == "lc2" and err.value.point == "lc2:ch.0"
    assert "illegal data value" in str(err.value) and "lc2:ch.0" in str(err.value)
    with pytest.raises(DeviceOffline, match="gateway"):
        client.read("ghost", 99, Table.COILS, 0, 1)


def test_tcp_client_reconnects_with_backoff_after_the_server_goes_away() -> None:
    p = profile("tcp-6drawer")
    cabinet = VirtualCabinet(p, seed=5)
    emulator = ModbusTcpEmulator(cabinet, "main").start()
    host, port = emulator.address
    client = ModbusClient("main", TcpEndpoint(host, port), timeout_s=0.2, retries=1, backoff_s=0.3)
    try:
        assert client.read("dio1", 1, Table.DISCRETE_INPUTS, 0, 1) == [1]
        emulator.close()
        with pytest.raises(DeviceOffline):
            client.read("dio1", 1, Table.DISCRETE_INPUTS, 0, 1)
        # Within the backoff the client does not even try: it fails at once and says when.
        started = time.monotonic()
        with pytest.raises(DeviceOffline, match="next attempt in"):
            client.read("dio1", 1, Table.DISCRETE_INPUTS, 0, 1)
        assert time.monotonic() - started < 0.05
        emulator = ModbusTcpEmulator(cabinet, "main", host, port).start()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert client.read("dio1", 1, Table.DISCRETE_INPUTS, 0, 1) == [1]
                break
            except DeviceOffline:
                assert time.monotonic() < deadline, "never reconnected"
                time.sleep(0.05)
        assert client.health["dio1"].online
    finally:
        client.close()
        emulator.close()


def _fake_rtu(line: PtyLine, answers: list[list[bytes]], stop: threading.Event) -> None:
    """Answer the n-th request with answers[n] (several frames: stale ones first)."""
    decoder = mf.RtuDecoder(requests=True)
    n = 0
    while not stop.is_set():
        data = line.read(0.02)
        if not data:
            continue
        decoder.feed(data)
        while decoder.next_frame() is not None:
            for frame in answers[min(n, len(answers) - 1)]:
                line.write(frame)
            n += 1


def test_stale_reply_of_another_size_is_discarded_not_taken() -> None:
    def regs(values: list[int]) -> bytes:
        pdu = mf.encode_response(
            mf.RegistersResponse(mf.Function.READ_INPUT_REGISTERS, tuple(values))
        )
        return mf.encode_rtu(10, pdu)

    line, stop = PtyLine(), threading.Event()
    # First answer: the late reply to an earlier, longer read of the same device.
    answers = [[regs([9, 9, 9, 9])], [regs([1, 2])]]
    server = threading.Thread(target=_fake_rtu, args=(line, answers, stop), daemon=True)
    server.start()
    client = ModbusClient("field", SerialEndpoint(line.name), timeout_s=0.2, retries=2)
    try:
        assert client.read("lc1", 10, Table.INPUT, 100, 2) == [1, 2]
        health = client.health["lc1"]
        assert health.errors == 1 and health.retries == 1 and health.online
    finally:
        client.close()
        stop.set()
        server.join(2)
        line.close()


@pytest.fixture
def locks() -> Iterator[tuple[VirtualCabinet, LockboardPart, LockboardClient, WireDriver]]:
    p = profile("rs485-2bus")
    cabinet = VirtualCabinet(p, seed=5)
    lock = threading.RLock()
    with LockboardEmulator(cabinet, "locks", lock=lock) as emulator:
        driver = open_backend(
            f"lockboard://{emulator.port}?baudrate=19200",
            p,
            clock=lambda: cabinet.env.now,
            timeout_s=0.1,
        )
        part = driver.parts[0]
        assert isinstance(part, LockboardPart)
        yield cabinet, part, part.clients["locks"], driver
        driver.close()


def test_lockboard_unlock_then_rearm_refused_locally_without_a_frame(locks) -> None:  # type: ignore[no-untyped-def]
    cabinet, _, client, driver = locks
    driver.pulse("lb0:lock.1")
    sent = client.exchanges
    with pytest.raises(RearmRefused) as refused:
        driver.pulse("lb0:lock.1")
    assert client.exchanges == sent, "a pulse inside the re-arm window went on the wire"
    assert refused.value.remaining_ms == pytest.approx(2000)
    cabinet.run(1.5)
    with pytest.raises(RearmRefused) as refused:
        driver.pulse("lb0:lock.1")
    assert refused.value.remaining_ms == pytest.approx(500)
    cabinet.run(0.6)
    driver.pulse("lb0:lock.1")


def test_lockboard_unlock_a_board_did_not_carry_out_is_not_released(locks) -> None:  # type: ignore[no-untyped-def]
    cabinet, part, _, driver = locks
    # Another master pulsed the lock and its pulse is over: the board, re-arming, silently does
    # not carry out ours (public boards answer no unlock). No busy answer exists: the status,
    # read until the end of our pulse, shows the bolt never came out.
    cabinet.device("lb1").unlock(3)  # type: ignore[union-attr]
    cabinet.run(0.6)
    part.wait = cabinet.run  # let the cabinet's time pass while the driver waits for the bolt
    with pytest.raises(LockNotReleased) as refused:
        driver.pulse("lb1:lock.3")
    assert refused.value.device == "lb1" and refused.value.point == "lb1:lock.3"
    assert cabinet.lock_holding("lb1:lock.3")


def test_lockboard_query_all_and_unlock_all(locks) -> None:  # type: ignore[no-untyped-def]
    cabinet, part, client, _ = locks
    sent = client.exchanges
    statuses = part.query_all()
    assert client.exchanges == sent + 1, "query all is one request"
    assert statuses == {
        "lb0": cabinet.device("lb0").status(),  # type: ignore[union-attr]
        "lb1": cabinet.device("lb1").status(),  # type: ignore[union-attr]
    }
    cabinet.sim_inject_fault("device_offline", "lb1")
    assert part.query_all()["lb1"] is None
    cabinet.sim_clear_fault("device_offline", "lb1")
    locks_bits, _ = part.unlock_all("lb1")
    cabinet.run(0.1)
    assert not any(cabinet.lock_holding(f"lb1:lock.{i}") for i in range(16))
    assert isinstance(locks_bits, int)


def test_lockboard_bad_checksums_are_retried_and_counted(locks) -> None:  # type: ignore[no-untyped-def]
    cabinet, _, _, driver = locks
    cabinet.sim_inject_fault("bus_noise", "locks", probability=0.5)
    answers = 0
    for _ in range(30):
        try:
            assert driver.input_active("lb0:input.4") is True
            answers += 1
        except (DeviceFault, DeviceOffline):  # anything else fails the test
            pass
    health = driver.health()["lb0"]
    assert answers > 0 and health.errors > 0 and health.retries > 0


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("modbus-tcp://nohost", "HOST:PORT"),
        ("modbus-tcp://127.0.0.1:1?timeout_ms=x", "integer"),
        ("lockboard://", "needs a port"),
        ("profile:?nobus=/dev/null", "no bus"),
    ],
)
def test_bad_uris_are_bad_input(uri: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        open_backend(uri, profile("rs485-2bus"))


def test_rtu_uri_with_query_and_profile_from_the_uri() -> None:
    p = profile("cs-small")
    cabinet = VirtualCabinet(p, seed=1)
    with ModbusRtuEmulator(cabinet, "rtu") as emulator:
        driver = open_backend(f"modbus-rtu://{emulator.port}?baudrate=19200&profile=cs-small")
        try:
            assert driver.profile.name == "cs-small"
            assert driver.input_active("dio1:di.0") is True
            assert driver.temperature("dio1:ai.0").celsius == pytest.approx(4.5, abs=0.05)
        finally:
            driver.close()


def test_line_timing_makes_a_read_take_its_wire_time() -> None:
    p = profile("rs485-2bus")
    cabinet = VirtualCabinet(p, seed=1)
    block = next(b for b in plan_reads(p)["field"] if b.device == "lc1" and b.count == 20)
    bound = read_wire_time(block, 19200)
    with ModbusRtuEmulator(cabinet, "field", line_timing=True) as emulator:
        client = ModbusClient("field", SerialEndpoint(emulator.port), timeout_s=0.5)
        try:
            client.read(block.device, block.unit, block.table, block.start, block.count)  # warm up
            started = time.monotonic()
            client.read(block.device, block.unit, block.table, block.start, block.count)
            took = time.monotonic() - started
        finally:
            client.close()
    # 8N1 is 10 bits a character, the bound assumes 11: the line alone takes 10/11 of it.
    assert 0.85 * bound < took < 2 * bound, (took, bound)


def test_a_latched_coil_is_switched_off_on_time_with_nobody_calling_the_driver() -> None:
    """On the real clock the driver's own timer writes the 0: the coil is not left on until
    someone next asks the driver something."""
    import time as _time

    from adc.profiles.models import ModbusDIO

    p = profile("tcp-6drawer")
    dio = p.devices["dio1"]
    assert isinstance(dio, ModbusDIO)
    solenoid = dio.solenoid.model_copy(update={"pulse_ms": 100})
    devices = {
        **p.devices,
        "dio1": dio.model_copy(update={"coil_mode": "latched", "solenoid": solenoid}),
    }
    p = p.model_copy(update={"devices": devices})
    cabinet = VirtualCabinet(p, seed=5)
    with ModbusTcpEmulator(cabinet, "main") as emulator:
        host, port = emulator.address
        driver = open_backend(f"modbus-tcp://{host}:{port}", p, timeout_s=0.2)
        try:
            driver.pulse("dio1:coil.0")
            assert cabinet._parts.solenoids["dio1:coil.0"].energised
            deadline = _time.monotonic() + 2.0
            while cabinet._parts.solenoids["dio1:coil.0"].energised:
                assert _time.monotonic() < deadline, "the latched coil was left on"
                _time.sleep(0.01)
            assert driver.health()["dio1"].errors == 0
        finally:
            driver.close()


def test_a_slow_device_behind_tcp_is_a_timeout_not_a_bad_crc() -> None:
    """A device that answers after the timeout: each attempt times out and the late answers
    arrive during the retries. TCP has no CRC: counted and worded as timeouts."""
    import socket
    import time as _time

    from adc.drivers import modbus_frames as mf
    from adc.drivers.modbus_client import TcpEndpoint
    from adc.drivers.modbus_plan import Table

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def slow() -> None:
        conn, _ = srv.accept()
        buf = b""
        with conn:
            while data := conn.recv(1024):
                buf += data
                while len(buf) >= 12:
                    frame, buf = buf[:12], buf[12:]
                    _time.sleep(0.15)
                    conn.sendall(
                        mf.encode_mbap(int.from_bytes(frame[:2]), frame[6], b"\x03\x02\x00\x07")
                    )

    threading.Thread(target=slow, daemon=True).start()
    client = ModbusClient("main", TcpEndpoint(*srv.getsockname()), timeout_s=0.1, retries=2)
    try:
        with pytest.raises(DeviceOffline) as offline:
            client.read("dev", 1, Table.HOLDING, 0, 1)
    finally:
        client.close()
        srv.close()
    health = client.health["dev"]
    assert health.timeouts == 3 and health.errors == 0
    assert "CRC" not in str(offline.value) and "timeout" in str(offline.value)
