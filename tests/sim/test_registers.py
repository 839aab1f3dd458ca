"""The register-level view the wire emulators serve: tables, addresses, encodings, exceptions."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from adc.sim.cabinet import VirtualCabinet
from adc.sim.devices import VirtualLockboard, VirtualModbusDevice
from adc.sim.errors import (
    DeviceBusy,
    DeviceFailure,
    IllegalAddress,
    IllegalFunction,
    IllegalValue,
    SimInputError,
    VirtualDeviceOffline,
)
from tests.sim.conftest import variant


def _modbus(cabinet: VirtualCabinet, name: str) -> VirtualModbusDevice:
    device = cabinet.device(name)
    assert isinstance(device, VirtualModbusDevice)
    return device


def _lockboard(cabinet: VirtualCabinet, name: str) -> VirtualLockboard:
    device = cabinet.device(name)
    assert isinstance(device, VirtualLockboard)
    return device


def _float(words: list[int], order: str = "big") -> float:
    high, low = words if order == "big" else words[::-1]
    return struct.unpack(">f", struct.pack(">HH", high, low))[0]


def test_devices_carry_their_profile_identity(tcp: VirtualCabinet, rs485: VirtualCabinet) -> None:
    assert set(tcp.devices) == {"dio1", "lc1", "lc2"}
    lc2 = _modbus(tcp, "lc2")
    assert (lc2.name, lc2.unit_id, lc2.bus, lc2.max_read_registers) == ("lc2", 3, "main", 32)
    lb1 = _lockboard(rs485, "lb1")
    assert (lb1.board, lb1.bus, lb1.online) == (1, "locks", True)
    assert rs485.device_at("field", 10) is rs485.device("lc1")
    assert rs485.device_at("locks", 1) is lb1
    assert rs485.device_at("field", 99) is None
    with pytest.raises(SimInputError, match="nope"):
        tcp.device("nope")


def test_lock_coil_is_a_self_clearing_pulse_with_rearm(tcp: VirtualCabinet) -> None:
    dio = _modbus(tcp, "dio1")
    dio.write_coil(0, True)
    assert dio.read_bits("coils", 0, 1) == [True]
    tcp.run(0.499)
    assert dio.read_bits("coils", 0, 1) == [True]
    tcp.run(0.002)
    assert dio.read_bits("coils", 0, 1) == [False]  # pulse_ms = 500: the device cleared it
    with pytest.raises(DeviceBusy) as busy:
        dio.write_coil(0, True)
    assert busy.value.modbus_code == 6
    assert busy.value.retry_after_s == pytest.approx(2.0 - 0.501)
    dio.write_coil(0, False)  # accepted, changes nothing
    tcp.run(1.5)
    dio.write_coil(0, True)
    assert dio.read_bits("coils", 0, 1) == [True]


def test_plain_coil_holds_what_was_written(tcp: VirtualCabinet) -> None:
    dio = _modbus(tcp, "dio1")
    dio.write_coil(20, True)  # D1's guide light
    tcp.run(10)
    assert dio.read_bits("coils", 20, 2) == [True, False]
    dio.write_coil(20, False)
    assert dio.read_bits("coils", 20, 1) == [False]


def test_modbus_exceptions(tcp: VirtualCabinet) -> None:
    dio, lc = _modbus(tcp, "dio1"), _modbus(tcp, "lc1")
    with pytest.raises(IllegalAddress) as err:
        dio.read_bits("coils", 30, 3)  # 32 coils: 32 is past the end
    assert err.value.modbus_code == 2
    with pytest.raises(IllegalAddress):
        dio.write_coil(32, True)
    with pytest.raises(IllegalFunction):
        dio.read_registers("holding", 0, 1)
    with pytest.raises(IllegalFunction):
        lc.read_bits("coils", 0, 1)
    with pytest.raises(IllegalAddress):
        lc.read_registers("input", 16, 1)  # between the weight block (0-15) and status (100-107)
    with pytest.raises(IllegalValue):
        lc.write_register(0, 7)
    with pytest.raises(IllegalValue):
        lc.write_register(0, 70000)
    with pytest.raises(IllegalValue):
        _modbus(tcp, "lc2").read_registers("input", 0, 33)  # this module answers at most 32


def test_discrete_inputs_and_lockboard_bits_follow_polarity(rs485: VirtualCabinet) -> None:
    lb0 = _lockboard(rs485, "lb0")
    locks, inputs = lb0.status()
    # Locks are active-high (1 = locked), all locked; inputs are active-low: closed lids read 0.
    assert locks == 0xFFFF
    assert inputs & 0x03F0 == 0  # input.4-9 are D2's lid switches, all closed
    assert inputs & 0x000F == 0x000F  # input.0-3 are unwired: inactive, which is 1 here
    lb0.unlock(1)
    rs485.run(0.1)
    assert rs485.sim_open("D2")
    lb0.unlock(4)
    rs485.run(0.1)
    assert rs485.sim_open("D2-P1")
    locks, inputs = lb0.status()
    assert not locks & (1 << 1) and not locks & (1 << 4)
    assert inputs & (1 << 4), "an open lid reads 1 on an active-low input"
    with pytest.raises(DeviceBusy):
        lb0.unlock(1)
    with pytest.raises(IllegalAddress):
        lb0.unlock(16)


def test_active_low_dio_inputs_read_0_when_active(tmp_path: Path) -> None:
    profile = variant(
        tmp_path,
        "tcp-6drawer",
        {"solenoid = { pulse_ms": 'input_polarity = "active-low"\nsolenoid = { pulse_ms'},
    )
    cabinet = VirtualCabinet(profile)
    dio = _modbus(cabinet, "dio1")
    assert dio.read_bits("discrete_inputs", 0, 1) == [False]  # D1 closed: active, reads 0
    assert dio.read_bits("discrete_inputs", 20, 1) == [False]  # D5-P1 holds its unit
    assert dio.read_bits("discrete_inputs", 26, 1) == [True]  # unwired: inactive, reads 1
    dio.write_coil(0, True)
    cabinet.run(0.1)
    cabinet.sim_open("D1")
    assert dio.read_bits("discrete_inputs", 0, 1) == [True]


def test_lockboard_unlock_all_skips_rearming_locks(rs485: VirtualCabinet) -> None:
    lb0 = _lockboard(rs485, "lb0")
    lb0.unlock(3)
    rs485.run(0.6)
    pulsed = lb0.unlock_all()
    assert 3 not in pulsed and len(pulsed) == 15


def test_active_low_lock_feedback(tmp_path: Path) -> None:
    profile = variant(
        tmp_path,
        "rs485-2bus",
        {
            'address = 1\ninput_polarity = "active-low"': 'address = 1\ninput_polarity = "active-low"\nlock_polarity = "active-low"'
        },
    )
    cabinet = VirtualCabinet(profile)
    locks, _ = _lockboard(cabinet, "lb1").status()
    assert locks == 0  # all locked, and locked reads 0


def test_loadcell_float_words_status_and_word_order(tmp_path: Path) -> None:
    big = VirtualCabinet(variant(tmp_path, "tcp-6drawer", {"noise_g = 0.2": "noise_g = 0.0"}))
    words = _modbus(big, "lc1").read_registers("input", 0, 4)
    assert _float(words[:2]) == pytest.approx(150.0 + 10 * 2.0)
    assert _modbus(big, "lc1").read_registers("input", 100, 8) == [0] * 8

    little_profile = variant(
        tmp_path,
        "tcp-6drawer",
        {
            "noise_g = 0.2": "noise_g = 0.0",
            "command_start = 0\n": 'command_start = 0\nword_order = "little"\n',
        },
    )
    little = VirtualCabinet(little_profile)
    words_little = _modbus(little, "lc1").read_registers("input", 0, 2)
    assert words_little == words[:2][::-1]
    assert _float(words_little, "little") == pytest.approx(170.0)


def test_loadcell_zero_tare_save_and_power_cycle(tcp: VirtualCabinet) -> None:
    lc = _modbus(tcp, "lc1")
    lc.write_register(0, 1)  # zero channel 0
    assert abs(_float(lc.read_registers("input", 0, 2))) < 1.5
    assert lc.read_registers("holding", 0, 1) == [1]
    tcp.sim_inject_fault("power_loss", duration_s=1)
    tcp.run(1.1)
    assert _float(lc.read_registers("input", 0, 2)) == pytest.approx(170, abs=1.5), (
        "unsaved zero kept"
    )
    lc.write_register(0, 1)
    lc.write_register(0, 3)  # save
    tcp.sim_inject_fault("power_loss", duration_s=1)
    tcp.run(1.1)
    assert abs(_float(lc.read_registers("input", 0, 2))) < 1.5, "saved zero lost"
    tcp.sim_inject_fault("loadcell_offline", "lc1:ch.0")
    with pytest.raises(DeviceFailure):
        lc.write_register(0, 2)


def test_analog_inputs_are_signed_counts(tmp_path: Path) -> None:
    cold = variant(
        tmp_path, "cs-small", {"fridge_temperature_c = 4.5": "fridge_temperature_c = -18.0"}
    )
    cabinet = VirtualCabinet(cold)
    dio = _modbus(cabinet, "dio1")
    raw, room = dio.read_registers("input", 0, 2)
    assert raw == (-180) & 0xFFFF
    assert room == 0  # ai.1 is not wired to anything


def test_offline_device_does_not_answer_anything(tcp: VirtualCabinet) -> None:
    dio = _modbus(tcp, "dio1")
    tcp.sim_inject_fault("device_offline", "dio1")
    assert not dio.online and _modbus(tcp, "lc1").online
    for call in (
        lambda: dio.read_bits("coils", 0, 1),
        lambda: dio.read_registers("input", 0, 1),
        lambda: dio.write_coil(0, True),
        lambda: dio.write_register(0, 1),
    ):
        with pytest.raises(VirtualDeviceOffline):
            call()
    tcp.sim_clear_fault("device_offline", "dio1")
    assert dio.read_bits("coils", 0, 1) == [False], "a refused write must not have pulsed"


def test_bus_noise_state_and_seeded_rng(tcp: VirtualCabinet) -> None:
    assert tcp.bus_noise("main") == 0.0
    tcp.sim_inject_fault("bus_noise", "main", probability=0.25)
    assert tcp.bus_noise("main") == 0.25
    again = VirtualCabinet(tcp.profile, seed=1)
    other = VirtualCabinet(tcp.profile, seed=2)
    draws = [tcp.rng_for("main").random() for _ in range(5)]
    assert draws == [again.rng_for("main").random() for _ in range(5)]
    assert draws != [other.rng_for("main").random() for _ in range(5)]
    assert tcp.rng_for("main") is tcp.rng_for("main")
    with pytest.raises(SimInputError):
        tcp.bus_noise("nobus")
