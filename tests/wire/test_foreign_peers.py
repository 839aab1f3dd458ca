"""Our drivers against peers nobody here wrote: pymodbus's own server (TCP, and RTU on a socat
pty pair) holding a profile's register map, read through our drivers and `adc diag scan` /
`adc diag sensors`; and a scripted CU16-like board on a pty that speaks the public protocol (it
answers status, 0x30, and never answers an unlock, 0x31).

What the lock-board driver must do with such a board: send an unlock once and never again, and
confirm it by the lock's status after the bolt's retract time (after setting the board's unlock time, 0x37, from the profile's
`pulse_ms` and reading it back, 0x38); a lock whose status never shows
the bolt out is not released (LockNotReleased from `pulse`, PartialUnlock from
`unlock_together`), and silence to the unlock is no failure by itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adc.drivers import lockboard_protocol as lp
from adc.drivers.base import DeviceOffline, LockNotReleased, PartialUnlock, Quality
from adc.drivers.registry import open_backend
from adc.profiles import load_profile
from adc.profiles.models import ModbusDIO, ModbusLoadcell, Polarity, Profile, SensorKind
from adc.sim.emulator_line import PtyLine
from tests.conftest import run_adc

PROFILE = Path(__file__).resolve().parents[2] / "hardware-profiles" / "rs485-2bus.toml"
RETRACT_S = 0.04  # the scripted bolt retracts this long after the unlock arrives
PULSE_S = 0.5  # rs485-2bus: pulse_ms 500


@dataclass
class ScriptedBoard:
    """CU16-like boards on one line, as public firmware behaves: status (0x30) answered with
    the 9-byte 0x35 frame (1 = locked, the profile's default polarity), unlock (0x31) pulses
    the lock and answers nothing. `jammed` locks never retract; `silent` answers nothing."""

    line: PtyLine = field(default_factory=PtyLine)
    jammed: set[tuple[int, int]] = field(default_factory=set)
    silent: bool = False
    frames: list[lp.Frame] = field(default_factory=list)
    unlock_ms: dict[int, int] = field(default_factory=lambda: {0: 300, 1: 300})
    _pulsed: dict[tuple[int, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def unlocks(self) -> list[tuple[int, int]]:
        return [(f.board, f.lock) for f in self.frames if f.cmd is lp.Cmd.UNLOCK]

    def _locks(self, board: int) -> int:
        now, bits = time.monotonic(), 0
        for lock in range(16):
            start = self._pulsed.get((board, lock))
            out = (
                start is not None
                and (board, lock) not in self.jammed
                and start + RETRACT_S <= now < start + PULSE_S
            )
            bits |= (not out) << lock
        return bits

    def serve(self) -> None:
        decoder = lp.StreamDecoder()
        while not self._stop.is_set():
            data = self.line.read(0.01)
            if not data:
                continue
            decoder.feed(data)
            frames, _ = decoder.drain()
            for frame in frames:
                self.frames.append(frame)
                if frame.cmd is lp.Cmd.UNLOCK:
                    self._pulsed[(frame.board, frame.lock)] = time.monotonic()
                    continue  # public firmware does not answer an unlock
                if self.silent or frame.board not in (0, 1):
                    continue
                if frame.cmd is lp.Cmd.STATUS:
                    reply = lp.status_reply(frame.board, self._locks(frame.board), 0xFFFF)
                elif frame.cmd is lp.Cmd.UNLOCK_TIME:
                    self.unlock_ms[frame.board] = frame.ms
                    reply = lp.unlock_time_reply(frame.board, frame.ms)
                elif frame.cmd is lp.Cmd.READ_UNLOCK_TIME:
                    reply = lp.unlock_time_reply(frame.board, self.unlock_ms[frame.board])
                else:
                    continue
                self.line.write(lp.encode(reply))

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def board() -> Iterator[ScriptedBoard]:
    scripted = ScriptedBoard()
    thread = threading.Thread(target=scripted.serve, daemon=True)
    thread.start()
    yield scripted
    scripted.close()
    thread.join(2)
    scripted.line.close()


def _driver(board: ScriptedBoard):  # type: ignore[no-untyped-def]
    return open_backend(f"lockboard://{board.line.name}", load_profile(PROFILE), timeout_s=0.05)


def test_an_unanswered_unlock_is_sent_once_and_confirmed_by_status(board: ScriptedBoard) -> None:
    driver = _driver(board)
    try:
        driver.pulse("lb0:lock.2")
        assert board.unlocks() == [(0, 2)], "the unlock was repeated"
        # before its first unlock the board's unlock time was set from pulse_ms and read back
        kinds = [f.cmd for f in board.frames]
        assert kinds[:3] == [lp.Cmd.UNLOCK_TIME, lp.Cmd.READ_UNLOCK_TIME, lp.Cmd.UNLOCK]
        assert board.unlock_ms[0] == 500
        after = board.frames[board.frames.index(lp.unlock_request(0, 2)) + 1 :]
        assert after and all(f.cmd is lp.Cmd.STATUS for f in after)
        assert not driver.lock_engaged("lb0:lock.2")
        assert driver.health()["lb0"].online
    finally:
        driver.close()


def test_a_lock_whose_bolt_never_shows_out_is_not_released_and_not_repulsed(
    board: ScriptedBoard,
) -> None:
    board.jammed.add((0, 2))
    driver = _driver(board)
    try:
        with pytest.raises(LockNotReleased) as err:
            driver.pulse("lb0:lock.2")
        assert err.value.point == "lb0:lock.2" and err.value.device == "lb0"
        assert board.unlocks() == [(0, 2)], "a lock that did not release was pulsed again"
    finally:
        driver.close()


def test_unlock_together_reports_the_jammed_lock_not_released(board: ScriptedBoard) -> None:
    board.jammed.add((0, 1))  # drawer D2's lock; lb0:lock.4 is a lid inside it
    driver = _driver(board)
    try:
        with pytest.raises(PartialUnlock) as err:
            driver.unlock_together(["lb0:lock.1", "lb0:lock.4"])
        assert err.value.released == ("lb0:lock.4",)
        assert err.value.not_released == ("lb0:lock.1",)
        assert err.value.unconfirmed == ()
        assert isinstance(err.value.cause, LockNotReleased)
        assert board.unlocks() == [(0, 4), (0, 1)], "one unlock per lock, pocket first"
    finally:
        driver.close()


def test_a_silent_board_gets_one_unlock_and_reads_retried(board: ScriptedBoard) -> None:
    driver = _driver(board)
    try:
        driver.pulse("lb0:lock.3")  # it answers now (and its unlock time is set)
        board.silent = True
        with pytest.raises(DeviceOffline) as err:
            driver.pulse("lb0:lock.2")
        assert err.value.point == "lb0:lock.2"
        assert board.unlocks() == [(0, 3), (0, 2)]
        after = board.frames[board.frames.index(lp.unlock_request(0, 2)) + 1 :]
        assert len(after) == 3 and all(f.cmd is lp.Cmd.STATUS for f in after), (
            "the status read after the unlock is retried (1 + 2 retries), the unlock never"
        )
    finally:
        driver.close()


def test_a_board_that_keeps_another_unlock_time_is_a_named_fault(board: ScriptedBoard) -> None:
    from adc.drivers.base import DeviceFault

    original = board.serve

    def stubborn() -> None:  # acknowledges 0x37 but keeps its own time
        board.unlock_ms = _Fixed({0: 300, 1: 300})  # type: ignore[assignment]
        original()

    board.serve = stubborn  # type: ignore[method-assign]
    thread = threading.Thread(target=board.serve, daemon=True)
    board._stop.set()  # stop the fixture's server, serve with the stubborn one
    time.sleep(0.05)
    board._stop.clear()
    thread.start()
    driver = _driver(board)
    try:
        with pytest.raises(
            DeviceFault, match="unlock time of 300 ms; the profile's pulse_ms is 500"
        ):
            driver.pulse("lb0:lock.2")
        assert board.unlocks() == [], "an unlock went out to a board with the wrong pulse time"
    finally:
        driver.close()
        board._stop.set()
        thread.join(2)


class _Fixed(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: object, value: object) -> None:
        pass


def test_a_cu48_bus_is_recognised_and_refused_by_name() -> None:
    from adc.drivers.base import BackendUnavailable
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.emulator_lockboard import LockboardEmulator

    p = load_profile(PROFILE)
    locks = p.buses["locks"].model_copy(update={"protocol": "cu48"})
    p = p.model_copy(update={"buses": {**p.buses, "locks": locks}})
    with pytest.raises(BackendUnavailable, match="protocol 'cu48' is not implemented"):
        open_backend("profile:", p, ports={"locks": "loop://", "field": "loop://"})
    with pytest.raises(BackendUnavailable, match="cu48"):
        open_backend("lockboard://loop://", p)
    with pytest.raises(ValueError, match="cu16 only"):
        LockboardEmulator(VirtualCabinet(p), "locks")


# ------------------------------------------------------------------- pymodbus's own server
WEIGHT_G = 123.5


def _register_map(profile: Profile) -> list[Any]:
    """The profile's Modbus devices as pymodbus SimDevices: DIO coils off, discrete inputs all
    active (drawers and doors shut), load-cell weights WEIGHT_G with status 0 (ok). pymodbus
    wants a block in every table, so an unused table gets one register far away."""
    from pymodbus.simulator import DataType, SimData, SimDevice

    def spare(bits: bool) -> list[Any]:
        kind = DataType.BITS if bits else DataType.REGISTERS
        return [SimData(60000, values=False if bits else 0, datatype=kind)]

    out = []
    for model in profile.devices.values():
        if isinstance(model, ModbusDIO):
            active = model.input_polarity is Polarity.ACTIVE_HIGH
            coils = [
                SimData(
                    model.coils.start, count=model.coils.count, values=False, datatype=DataType.BITS
                )
            ]
            inputs = [
                SimData(
                    model.discrete_inputs.start,
                    count=model.discrete_inputs.count,
                    values=active,
                    datatype=DataType.BITS,
                )
            ]
            analog = spare(False)
            if model.analog_inputs is not None:
                analog = [
                    SimData(
                        model.analog_inputs.start,
                        count=model.analog_inputs.count,
                        values=40,
                        datatype=DataType.REGISTERS,
                    )
                ]
            out.append(SimDevice(model.address, simdata=(coils, inputs, spare(False), analog)))
        elif isinstance(model, ModbusLoadcell):
            weights = [
                SimData(
                    model.weight_start,
                    count=model.channels,
                    values=WEIGHT_G,
                    datatype=DataType.FLOAT32,
                ),
                SimData(
                    model.status_start, count=model.channels, values=0, datatype=DataType.REGISTERS
                ),
            ]
            commands = [
                SimData(
                    model.command_start, count=model.channels, values=0, datatype=DataType.REGISTERS
                )
            ]
            out.append(
                SimDevice(model.address, simdata=(spare(True), spare(True), commands, weights))
            )
    return out


@dataclass
class Peer:
    """A running pymodbus server: `where` a client connects (`HOST:PORT` for TCP, a pty path
    for RTU); `get` / `set` reach its datastore from another thread (pymodbus function codes)."""

    where: str
    server: Any
    loop: asyncio.AbstractEventLoop

    def get(self, unit: int, fc: int, address: int, count: int = 1) -> list[int]:
        call = self.server.async_getValues(unit, fc, address, count)
        return [int(v) for v in asyncio.run_coroutine_threadsafe(call, self.loop).result(5)]

    def set(self, unit: int, fc: int, address: int, values: list[int]) -> None:
        call = self.server.async_setValues(unit, fc, address, values)
        asyncio.run_coroutine_threadsafe(call, self.loop).result(5)


@contextmanager
def pymodbus_server(profile: Profile, transport: str) -> Iterator[Peer]:
    """pymodbus's server with the profile's register map (see `Peer`); for RTU, socat links the
    server's pty to the one the client opens."""
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    socat = None
    try:
        if transport == "tcp":

            async def start() -> Any:
                server = ModbusTcpServer(_register_map(profile), address=("127.0.0.1", 0))
                await server.serve_forever(background=True)
                return server

            server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
            where = f"127.0.0.1:{server.transport.sockets[0].getsockname()[1]}"
        else:
            socat, ours, theirs = _pty_pair()

            async def start_rtu() -> Any:
                server = ModbusSerialServer(_register_map(profile), port=theirs, baudrate=19200)
                await server.serve_forever(background=True)
                return server

            server = asyncio.run_coroutine_threadsafe(start_rtu(), loop).result(10)
            where = ours
        yield Peer(where, server, loop)
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if socat is not None:
            socat.terminate()
            socat.wait(5)


def _pty_pair() -> tuple[subprocess.Popen[bytes], str, str]:
    """Two linked ptys made by socat (the RTU server opens one, our driver the other)."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (Debian package socat; .ci/run installs it)")
    folder = Path(tempfile.mkdtemp(prefix="adc-socat-"))
    a, b = folder / "ours", folder / "theirs"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("socat did not make its pty pair")
        time.sleep(0.01)
    return proc, str(a), str(b)


def _tcp6() -> Profile:
    return load_profile(PROFILE.parent / "tcp-6drawer.toml")


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_our_modbus_driver_reads_pymodbus_exactly(transport: str) -> None:
    profile = _tcp6()
    with pymodbus_server(profile, transport) as peer:
        where = peer.where
        uri = f"modbus-tcp://{where}" if transport == "tcp" else f"modbus-rtu://{where}"
        driver = open_backend(uri, profile, timeout_s=0.5)
        try:
            snap = driver.snapshot()
            assert snap.weights and all(
                w is not None and w.grams == WEIGHT_G and w.quality is Quality.OK
                for w in snap.weights.values()
            )
            assert snap.inputs and all(snap.inputs.values())
            assert snap.locks_engaged and all(snap.locks_engaged.values())
            assert all(h.online and h.errors == 0 for h in driver.health().values())
        finally:
            driver.close()


def test_a_latched_lock_on_a_plain_pymodbus_module_is_switched_off_by_our_driver() -> None:
    """pymodbus's coils hold what is written, as a plain module does: with coil_mode latched
    the driver writes 1, then 0 after the pulse, and the coil reads back off."""
    profile = _tcp6()
    dio = profile.devices["dio1"]
    assert isinstance(dio, ModbusDIO)
    solenoid = dio.solenoid.model_copy(update={"pulse_ms": 100})
    latched = dio.model_copy(update={"coil_mode": "latched", "solenoid": solenoid})
    profile = profile.model_copy(update={"devices": {**profile.devices, "dio1": latched}})
    with pymodbus_server(profile, "tcp") as peer:
        driver = open_backend(f"modbus-tcp://{peer.where}", profile, timeout_s=0.5)
        try:
            driver.pulse("dio1:coil.0")
            assert not driver.lock_engaged("dio1:coil.0")  # the coil is on
            time.sleep(0.3)
            assert driver.lock_engaged("dio1:coil.0"), "the latched coil was left on"
            assert driver.health()["dio1"].errors == 0
        finally:
            driver.close()


@pytest.mark.parametrize("how", ["query", "option"])
def test_diag_scan_against_pymodbus_honours_the_profile_either_way(how: str) -> None:
    profile = _tcp6()
    with pymodbus_server(profile, "tcp") as peer:
        args = ["--uri", f"modbus-tcp://{peer.where}?profile=tcp-6drawer"]
        if how == "option":
            args = ["--uri", f"modbus-tcp://{peer.where}", "--profile", "tcp-6drawer"]
        result = run_adc("diag", "scan", *args, "--addresses", "1-3", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    named = {check["point"]: check["verdict"] for check in report["checks"]}
    assert named == {"dio1": "pass", "lc1": "pass", "lc2": "pass"}


def test_diag_sensors_against_pymodbus() -> None:
    profile = _tcp6()
    with pymodbus_server(profile, "tcp") as peer:
        result = run_adc(
            "diag",
            "sensors",
            "--backend",
            f"modbus-tcp://{peer.where}",
            "--profile",
            "tcp-6drawer",
            "--samples",
            "3",
            "--interval",
            "0",
            "--json",
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    weighed = [c for c in report["checks"] if c["point"].startswith("lc")]
    load_cells = [p for _, p in profile.pockets() if p.sensor.kind is SensorKind.WEIGHT]
    assert len(weighed) == len(load_cells), report["summary"]
    for check in weighed:
        assert check["verdict"] == "pass" and check["data"]["mean_g"] == pytest.approx(WEIGHT_G)
    assert all(c["verdict"] == "pass" for c in report["checks"])  # presence inputs too


@dataclass
class PulseOutputTechnician:
    """Plays both the module's pulse timer and the person, on pymodbus's plain datastore: a lock
    coil written 1 is cleared again after pulse_ms (what a pulse-output module does itself);
    while it is on the person pulls drawer D1 (its switch reads open), puts `units` packs of
    `unit_g` on load cell lc1 ch.0, and shuts the drawer."""

    peer: Peer
    units: int
    unit_g: float
    stop: threading.Event = field(default_factory=threading.Event)
    done: bool = False

    def run(self) -> None:
        import struct

        while not self.stop.is_set() and not self.peer.get(1, 1, 0)[0]:  # coil.0 (D1's lock)
            time.sleep(0.005)
        if self.stop.is_set():
            return
        pulsed = time.monotonic()
        self.peer.set(1, 2, 0, [0])  # di.0: drawer D1 pulled open
        time.sleep(max(0.0, pulsed + 0.5 - time.monotonic()))
        self.peer.set(1, 5, 0, [0])  # the module ends its pulse
        time.sleep(0.3)
        words = struct.unpack(">HH", struct.pack(">f", WEIGHT_G + self.units * self.unit_g))
        self.peer.set(2, 4, 0, list(words))  # lc1 ch.0 gross weight
        time.sleep(0.6)
        self.peer.set(1, 2, 0, [1])  # drawer shut
        self.done = True


def test_a_restock_line_through_our_drivers_against_pymodbus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.controller.site import PIN, fast_pins
    from tests.session.helpers import ONDANSETRON_VIAL, build_session_site, good_expiry, hri

    fast_pins(monkeypatch)
    site = build_session_site(tmp_path / "adc.db")
    script = tmp_path / "line.toml"
    script.write_text(f'[[line]]\nscan = "{hri(ONDANSETRON_VIAL, good_expiry(), "PM1")}"\n')
    try:
        with pymodbus_server(_tcp6(), "tcp") as peer:
            person = PulseOutputTechnician(peer, units=10, unit_g=4.6)
            hands = threading.Thread(target=person.run, daemon=True)
            hands.start()
            try:
                result = run_adc(
                    "restock",
                    "--cabinet",
                    "W1",
                    "--backend",
                    f"modbus-tcp://{peer.where}",
                    "--script",
                    str(script),
                    "--json",
                    env=site.env(ADC_USER="technician", ADC_PIN=PIN),
                    timeout=90,
                )
            finally:
                person.stop.set()
                hands.join(5)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        events = [json.loads(line) for line in result.stdout.splitlines()]
        assert person.done
        assert [e["measured"] for e in events if e["event"] == "closed"] == [10]
        assert [(e["pocket"], e["qty"]) for e in events if e["event"] == "recorded"] == [
            ("D1-P1", 10)
        ]
        assert site.on_hand("D1-P1") == 10
    finally:
        site.site.ctl.db.close()
