"""`unlock_together` on the wire beyond the contract: what goes on the bus (one write-multiple
per Modbus device, back-to-back frames on a lock board), the order, and the account of a failure
(adc/drivers/unlock.py) for cases an emulator cannot stage."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adc.drivers.base import DeviceOffline, PartialUnlock, RearmRefused
from adc.drivers.buses import WireDriver
from adc.drivers.cabinet_points import PointInfo, Use, cabinet_points, classify_points
from adc.drivers.lockboard import LockboardClient, LockboardPart
from adc.drivers.modbus import ModbusPart
from adc.drivers.modbus_client import ModbusBusy, ModbusClient
from adc.drivers.registry import open_backend
from adc.drivers.unlock import GroupFailed, coil_span, pulse_groups, unlock_groups
from adc.errors import BadInput
from adc.profiles import load_profile
from adc.profiles.models import Profile
from adc.profiles.points import PointRef
from adc.sim.cabinet import VirtualCabinet
from adc.sim.emulator_lockboard import LockboardEmulator
from adc.sim.emulator_modbus import ModbusTcpEmulator

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


@pytest.fixture
def locks() -> Iterator[tuple[VirtualCabinet, LockboardClient, WireDriver]]:
    p = profile("rs485-2bus")
    cabinet = VirtualCabinet(p, seed=5)
    with LockboardEmulator(cabinet, "locks", lock=threading.RLock()) as emulator:
        driver = open_backend(
            f"lockboard://{emulator.port}", p, clock=lambda: cabinet.env.now, timeout_s=0.1
        )
        part = driver.parts[0]
        assert isinstance(part, LockboardPart)
        yield cabinet, part.clients["locks"], driver
        driver.close()


def _released(cabinet: VirtualCabinet, point: str) -> bool:
    cabinet.run(cabinet.profile.sim.actuation_ms / 1000 + 0.02)
    return not cabinet.lock_holding(point)


def test_one_modbus_device_takes_one_read_and_one_write_multiple(tcp6) -> None:  # type: ignore[no-untyped-def]
    cabinet, driver, client = tcp6
    before = client.exchanges
    driver.unlock_together(["dio1:coil.0", "dio1:coil.6"])  # drawer D1, the lid of one pocket
    assert client.exchanges - before == 2, "probe read + one write-multiple-coils"
    assert _released(cabinet, "dio1:coil.0") and _released(cabinet, "dio1:coil.6")
    # Only the two were pulsed: the locks written 0 between them stayed shut.
    assert all(cabinet.lock_holding(f"dio1:coil.{i}") for i in range(1, 6))


def test_the_drivers_own_rearm_window_refuses_without_a_frame(tcp6) -> None:  # type: ignore[no-untyped-def]
    cabinet, driver, client = tcp6
    driver.pulse("dio1:coil.6")
    cabinet.run(0.6)
    before = client.exchanges
    with pytest.raises(RearmRefused) as refused:
        driver.unlock_together(["dio1:coil.0", "dio1:coil.6"])
    assert refused.value.point == "dio1:coil.6"
    assert client.exchanges == before, "a refused unlock went on the wire"


def test_lock_board_unlock_is_a_status_then_back_to_back_frames_pocket_first(locks) -> None:  # type: ignore[no-untyped-def]
    cabinet, client, driver = locks
    before = client.exchanges
    driver.unlock_together(["lb0:lock.1", "lb0:lock.4"])  # drawer D2 and a lid in it
    # the status probe, the board's unlock time set and read back (before its first unlock),
    # then per lock one unlock (sent once) and one status read confirming it (this driver's
    # clock is the cabinet's, which stands still in the call: one read each)
    assert client.exchanges - before == 7
    assert _released(cabinet, "lb0:lock.1") and _released(cabinet, "lb0:lock.4")


def test_lost_answer_to_a_write_multiple_is_read_back_as_done() -> None:
    """The write landed, its answer was lost, the retry was answered busy: the coils read on."""
    p = profile("tcp-6drawer")

    class Client:
        def __init__(self) -> None:
            self.health: dict[str, Any] = {}
            self.written: list[tuple[int, list[bool]]] = []

        def write_coils(self, device: str, unit: int, address: int, values: list[bool], **_: Any):
            self.written.append((address, values))
            busy = ModbusBusy(device, 6)
            busy.attempt = 1
            raise busy

        def read(self, device: str, unit: int, table: Any, start: int, count: int, **_: Any):
            assert (start, count) == (0, 7)
            return [1] + [0] * 5 + [1] if self.written else [0] * count

    client = Client()
    part = ModbusPart(p, {"main": client}, {"dio1"}, clock=lambda: 0.0)  # type: ignore[dict-item]
    driver = WireDriver(p, [part], clock=lambda: 0.0)
    driver.unlock_together(["dio1:coil.0", "dio1:coil.6"])
    assert client.written == [(0, [True, False, False, False, False, False, True])]
    with pytest.raises(RearmRefused):  # both are now in the driver's own re-arm window
        driver.unlock_together(["dio1:coil.0"])


def test_a_write_multiple_refused_part_way_is_accounted_by_reading_back() -> None:
    p = profile("tcp-6drawer")

    class Client:
        def __init__(self) -> None:
            self.health: dict[str, Any] = {}

        def write_coils(self, device: str, unit: int, *args: Any, **_: Any) -> None:
            raise ModbusBusy(device, 6)

        reads = 0

        def read(self, device: str, unit: int, table: Any, start: int, count: int, **_: Any):
            self.reads += 1
            if self.reads == 1:
                return [0] * count  # the probe: nothing pulsing
            return [1] + [0] * 6  # coil 0 went out, coil 6 did not

    part = ModbusPart(p, {"main": Client()}, {"dio1"}, clock=lambda: 0.0)  # type: ignore[dict-item]
    driver = WireDriver(p, [part], clock=lambda: 0.0)
    with pytest.raises(PartialUnlock) as partial:
        driver.unlock_together(["dio1:coil.0", "dio1:coil.6"])
    assert partial.value.released == ("dio1:coil.0",)
    assert partial.value.not_released == ("dio1:coil.6",)
    assert partial.value.point == "dio1:coil.6" and partial.value.device == "dio1"
    assert isinstance(partial.value.cause, RearmRefused)


# ------------------------------------------------------------------------ the shared part
def _info(text: str, use: Use = Use.LOCK) -> PointInfo:
    return PointInfo(PointRef.parse(text), use)


def test_groups_put_pocket_locks_first_one_group_per_device() -> None:
    p = profile("rs485-2bus")
    drawer_locks = cabinet_points(p).drawer_locks
    groups = unlock_groups(
        [_info("lb0:lock.2"), _info("lb1:lock.0"), _info("lb0:lock.2")], drawer_locks
    )
    assert [[i.text for i in g] for g in groups] == [["lb1:lock.0"], ["lb0:lock.2"]]
    groups = unlock_groups([_info("lb0:lock.1"), _info("lb0:lock.4")], drawer_locks)
    assert [[i.text for i in g] for g in groups] == [["lb0:lock.4", "lb0:lock.1"]]
    with pytest.raises(BadInput):
        unlock_groups([], drawer_locks)


def test_coil_span_only_over_locks() -> None:
    points = classify_points(profile("tcp-6drawer"))
    assert coil_span([_info("dio1:coil.0"), _info("dio1:coil.6")], points) == (0, 6)
    assert coil_span([_info("dio1:coil.0")], points) is None
    # A light (coil 20+) between two outputs: no write-multiple, it would switch the light off.
    assert coil_span([_info("dio1:coil.19"), _info("dio1:coil.21")], points) is None


def test_account_across_groups() -> None:
    groups = [[_info("a:lock.0")], [_info("b:lock.0"), _info("b:lock.1")], [_info("c:lock.0")]]

    def offline_at_b1(group: Any) -> None:
        if group[0].ref.device == "b":
            raise GroupFailed(["b:lock.0"], ["b:lock.1"], DeviceOffline("b"), ["b:lock.1"])

    with pytest.raises(PartialUnlock) as partial:
        pulse_groups(groups, offline_at_b1)
    err = partial.value
    assert err.released == ("a:lock.0", "b:lock.0")
    assert err.not_released == ("b:lock.1", "c:lock.0")
    assert err.unconfirmed == ("b:lock.1",)
    assert err.device == "b" and "c:lock.0" in str(err) and "not confirmed" in " ".join(err.details)

    def refused_first(group: Any) -> None:
        raise GroupFailed([], [i.text for i in group], RearmRefused(group[0].text, 100))

    with pytest.raises(RearmRefused) as refused:  # nothing went out: the typed error itself
        pulse_groups(groups, refused_first)
    assert refused.value.point == "a:lock.0"
