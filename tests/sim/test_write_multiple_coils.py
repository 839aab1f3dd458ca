"""The emulated DIO module's write-multiple-coils (function 15) is all or nothing, as real
pulse-output modules are: every coil of the write is checked before any is written, so a
re-arming pulse coil refuses the whole write and no lower coil was pulsed first."""

from __future__ import annotations

import struct

import pytest

from adc.sim.cabinet import VirtualCabinet
from adc.sim.devices import VirtualModbusDevice
from adc.sim.emulator_modbus import ModbusService
from adc.sim.errors import DeviceBusy, IllegalAddress

DRAWER, LID = 0, 6  # tcp-6drawer dio1: coil 0 drawer D1's lock, coil 6 the first lid lock
LIGHT = 20


def _dio(cabinet: VirtualCabinet) -> VirtualModbusDevice:
    device = cabinet.device("dio1")
    assert isinstance(device, VirtualModbusDevice)
    return device


def _pulses(cabinet: VirtualCabinet) -> list[int]:
    return [coil.pulses for coil in _dio(cabinet).coil_points()[: LID + 1]]  # type: ignore[union-attr]


def _rearming(cabinet: VirtualCabinet, coil: int) -> None:
    _dio(cabinet).write_coil(coil, True)
    cabinet.run(0.6)  # the pulse is over, the coil still re-arms
    assert _dio(cabinet).read_bits("coils", coil, 1) == [False]


def test_a_write_with_a_rearming_coil_pulses_none_of_it(tcp: VirtualCabinet) -> None:
    dio = _dio(tcp)
    _rearming(tcp, LID)
    before = _pulses(tcp)
    with pytest.raises(DeviceBusy) as busy:
        dio.write_coils(DRAWER, [True, False, False, False, False, False, True])
    assert "coil 6" in str(busy.value) and busy.value.retry_after_s > 0
    assert _pulses(tcp) == before, "the drawer's coil was pulsed by a refused write"
    assert dio.read_bits("coils", DRAWER, LID + 1) == [False] * (LID + 1)
    tcp.run(busy.value.retry_after_s + 0.01)
    dio.write_coils(DRAWER, [True, False, False, False, False, False, True])
    assert dio.read_bits("coils", DRAWER, LID + 1) == [True] + [False] * 5 + [True]


def test_a_write_running_past_the_mapped_coils_writes_nothing(tcp: VirtualCabinet) -> None:
    dio = _dio(tcp)
    coils = len(dio.coil_points())
    with pytest.raises(IllegalAddress):
        dio.write_coils(LIGHT, [True] * (coils - LIGHT + 1))
    assert dio.read_bits("coils", LIGHT, 1) == [False]


def test_single_coil_writes_and_lights_in_a_write_are_as_before(tcp: VirtualCabinet) -> None:
    dio = _dio(tcp)
    dio.write_coils(LIGHT, [True, False, True])
    assert dio.read_bits("coils", LIGHT, 3) == [True, False, True]
    dio.write_coil(DRAWER, True)
    tcp.run(0.6)
    with pytest.raises(DeviceBusy):
        dio.write_coil(DRAWER, True)
    dio.write_coil(DRAWER, False)  # a 0 to a pulse output is accepted and ignored


def test_on_the_wire_the_whole_write_is_refused_with_exception_06(tcp: VirtualCabinet) -> None:
    service = ModbusService(tcp, "main")
    _rearming(tcp, LID)
    before = _pulses(tcp)
    bits = 1 << DRAWER | 1 << LID
    pdu = struct.pack(">BHHBB", 15, DRAWER, LID + 1, 1, bits)
    answer = service.answer(1, pdu)
    assert answer == bytes([0x8F, 0x06])
    assert _pulses(tcp) == before
    single = service.answer(1, struct.pack(">BHH", 5, LID, 0xFF00))
    assert single == bytes([0x85, 0x06])  # a single re-arming coil: the same exception
    tcp.run(2.0)
    assert service.answer(1, pdu) == struct.pack(">BHH", 15, DRAWER, LID + 1)
    assert _pulses(tcp) == [before[0] + 1, *before[1:LID], before[LID] + 1]
