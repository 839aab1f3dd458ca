"""The register-level view of the virtual cabinet: each device as its bus sees it.

The wire emulators serve these objects on Modbus TCP / RTU and the lock-board protocol; the
in-process driver (`adc.drivers.sim`) calls them directly. Both therefore decode the same registers,
bits and exceptions that real hardware would give them. The surface, which the emulators rely on:

`VirtualModbusDevice` (kinds `modbus-dio` and `modbus-loadcell`)
    `name`, `unit_id` (the profile address), `bus`, `kind`, `max_read_registers`, `max_read_bits`,
    property `online`;
    `read_bits(table: "coils" | "discrete_inputs", start, count) -> list[bool]`;
    `read_registers(table: "input" | "holding", start, count) -> list[int]` (0..65535 each);
    `write_coil(address, value: bool) -> None`; `write_register(address, value: int) -> None`;
    `write_coils(address, values: Sequence[bool]) -> None` (function 15, all or nothing: every
    address and every pulse coil asked to pulse is checked before any coil changes, and the first
    problem refuses the whole write, as real pulse-output modules do).
    Addresses are Modbus protocol addresses as laid out by the profile's register blocks.
    - DIO: coils block, discrete_inputs block (raw bits after `input_polarity`: active-low gives
      0 for an active input), analog_inputs block in the input table (counts of `analog_scale`,
      two's complement when `analog_signed`). A coil the layout uses as a lock (`lock`,
      `lid_lock`) is a pulse output: writing 1 starts a pulse of `solenoid.pulse_ms`, after which
      the device clears the coil itself; writing 0 to it is accepted and ignored (the pulse is
      self-timed). With `coil_mode = "latched"` a lock coil is a plain output too: 1 energises
      the solenoid until 0 is written (no re-arm refusal: the driver keeps the limits). Every
      other coil is a plain output (a light) that holds what was written.
    - Load cell: per channel N, input registers `weight_start + 2N, +1` hold the weight in grams as
      IEEE float32 (`word_order` big: high word first), input register `status_start + N` the
      status (0 ok, 1 unstable, 2 overload, 3 fault), holding register `command_start + N` the
      command word (write 1 = zero, 2 = tare, 3 = save; reads back the last command).
`VirtualLockboard` (kind `lockboard-cu16`)
    `name`, `board` (the profile address), `bus`, property `online`;
    `status() -> (lock_bits, input_bits)`: 16 bits each, bit i = lock/input i as raw wire bits
    (`lock_polarity` / `input_polarity`; active-low gives 0 for a locked lock or an active input);
    `unlock(lock_index)`; `unlock_all() -> list[int]` (pulses every lock not re-arming, returns
    which); `unlock_time_ms()` / `set_unlock_time_ms(ms)` (the pulse length, CU16 0x38 / 0x37).

Errors (`adc.sim.errors`): `VirtualDeviceOffline` (no answer: the wire stays silent),
`IllegalFunction` 01 (a table the device does not have), `IllegalAddress` 02, `IllegalValue` 03
(a bad value, or more than the device answers in one read), `DeviceFailure` 04 (a command the
channel cannot carry out, e.g. zeroing a failed cell), `DeviceBusy` 06 (a pulse inside the re-arm
window; `retry_after_s` says how long).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Literal

from adc.profiles.models import LockboardCU16, ModbusDIO, ModbusLoadcell, Polarity
from adc.sim.errors import (
    DeviceBusy,
    DeviceFailure,
    IllegalAddress,
    IllegalFunction,
    IllegalValue,
    VirtualDeviceOffline,
)
from adc.sim.mechanics import (
    InputSlot,
    LoadCellChannel,
    ModuleConversions,
    PlainOutput,
    PowerSupply,
    Solenoid,
)

BitTable = Literal["coils", "discrete_inputs"]
RegisterTable = Literal["input", "holding"]
Coil = Solenoid | PlainOutput

CMD_ZERO, CMD_TARE, CMD_SAVE = 1, 2, 3


@dataclass(frozen=True)
class _Block:
    """A run of addresses of one table, read as a run: `read(offset, count)` gives `count` values
    from `offset` inside the block in one call, so a multi-register read looks its block up once
    and a load-cell channel is weighed once for both of its words. The values are already what
    the wire carries (bools for a bit table, 0..65535 for a register table), so a read passes
    them on without another pass over them. `write(offset, value)` writes one address;
    `check(offset, value)`, where given, raises what that write would raise, and changes nothing
    (a write of several addresses checks them all before writing any)."""

    start: int
    count: int
    read: Callable[[int, int], list[int]]
    write: Callable[[int, int], None] | None = None
    check: Callable[[int, int], None] | None = None

    @property
    def end(self) -> int:
        return self.start + self.count

    def holds(self, address: int) -> bool:
        return self.start <= address < self.start + self.count


def _each(read_one: Callable[[int], int]) -> Callable[[int, int], list[int]]:
    """A run reader from a one-address reader, for blocks with nothing to share between addresses."""
    return lambda offset, count: [read_one(i) for i in range(offset, offset + count)]


class VirtualDevice:
    """What every virtual device shares: a name, a bus, and whether it answers at all."""

    def __init__(self, name: str, bus: str, power: PowerSupply) -> None:
        self.name = name
        self.bus = bus
        self._power = power
        self.failed = False  # the `device_offline` fault

    @property
    def online(self) -> bool:
        """False while the device would not answer (failed, or the cabinet has no power)."""
        return self._power.on and not self.failed

    def _answer(self) -> None:
        if not self._power.on:
            raise VirtualDeviceOffline(self.name, "no answer (cabinet power is off)")
        if self.failed:
            raise VirtualDeviceOffline(self.name, "no answer")


class VirtualModbusDevice(VirtualDevice):
    """A Modbus device as tables of blocks; see the module docstring for the layout."""

    def __init__(self, name: str, model: ModbusDIO | ModbusLoadcell, power: PowerSupply) -> None:
        super().__init__(name, model.bus, power)
        self.kind: str = model.kind
        self.unit_id = model.address
        self.max_read_registers = model.max_read_registers
        self.max_read_bits = model.max_read_bits
        self._bits: dict[str, list[_Block]] = {}
        self._registers: dict[str, list[_Block]] = {}
        # (table, start, count) → the runs `_read` reads: the blocks are fixed once built, and a
        # poller asks for the same few ranges over and over
        self._runs: dict[
            tuple[str, int, int], list[tuple[Callable[[int, int], list[int]], int, int]]
        ] = {}

    # ------------------------------------------------------------------------------- wire surface
    def read_bits(self, table: BitTable, start: int, count: int) -> list[bool]:
        if self.failed or not self._power.on:  # the common case without a call
            self._answer()
        return self._read(self._bits, table, start, count, self.max_read_bits)

    def read_registers(self, table: RegisterTable, start: int, count: int) -> list[int]:
        if self.failed or not self._power.on:
            self._answer()
        return self._read(self._registers, table, start, count, self.max_read_registers)

    def write_coil(self, address: int, value: bool) -> None:
        self._answer()
        block = self._find(self._blocks(self._bits, "coils"), "coils", address)
        assert block.write is not None
        block.write(address - block.start, int(bool(value)))

    def write_coils(self, address: int, values: Sequence[bool]) -> None:
        """Write-multiple-coils, all or nothing: each address is mapped and each coil's write
        checked (a pulse coil inside its re-arm window: `DeviceBusy`) before any coil is
        written; the first problem, in address order, refuses the whole write."""
        self._answer()
        blocks = self._blocks(self._bits, "coils")
        writes = []
        for i, value in enumerate(values):
            block = self._find(blocks, "coils", address + i)
            assert block.write is not None
            writes.append((block, address + i - block.start, int(bool(value))))
        for block, offset, bit in writes:
            if block.check is not None:
                block.check(offset, bit)
        for block, offset, bit in writes:
            assert block.write is not None
            block.write(offset, bit)

    def write_register(self, address: int, value: int) -> None:
        self._answer()
        block = self._find(self._blocks(self._registers, "holding"), "holding", address)
        if not 0 <= value <= 0xFFFF:
            raise IllegalValue(self.name, f"{value} does not fit a 16-bit register")
        if block.write is None:
            raise IllegalAddress(self.name, f"holding register {address} is read-only")
        block.write(address - block.start, value)

    # ------------------------------------------------------------------------------------ helpers
    def _blocks(self, tables: dict[str, list[_Block]], table: str) -> list[_Block]:
        blocks = tables.get(table)
        if not blocks:
            raise IllegalFunction(self.name, f"a {self.kind} device has no {table} table")
        return blocks

    def _find(self, blocks: Sequence[_Block], table: str, address: int) -> _Block:
        for block in blocks:
            if block.holds(address):
                return block
        raise IllegalAddress(self.name, f"{table} address {address} is not mapped")

    def _read(
        self, tables: dict[str, list[_Block]], table: str, start: int, count: int, limit: int
    ) -> list:
        """The values at `start .. start+count-1` of `tables[table]`, in address order: each
        address from the first block (in table order) that maps it, a run of addresses in one
        block read in one call."""
        blocks = tables.get(table)  # `_blocks`, written out
        if not blocks:
            raise IllegalFunction(self.name, f"a {self.kind} device has no {table} table")
        if not 1 <= count <= limit:
            raise IllegalValue(self.name, f"reads 1 to {limit} {table} at a time, not {count}")
        runs = self._runs.get((table, start, count))
        if runs is None:  # an unmapped address raises here, every time (nothing is kept)
            runs = []
            address, end = start, start + count
            while address < end:
                block = self._find(blocks, table, address)
                stop = self._run_end(blocks, block, address, end)
                runs.append((block.read, address - block.start, stop - address))
                address = stop
            self._runs[(table, start, count)] = runs
        if len(runs) == 1:
            read, offset, n = runs[0]
            return read(offset, n)
        out: list[int] = []
        for read, offset, n in runs:
            out.extend(read(offset, n))
        return out

    @staticmethod
    def _run_end(blocks: Sequence[_Block], block: _Block, address: int, end: int) -> int:
        """Where the run of addresses from `address` that `block` answers ends: at the block's
        end, the read's end, or where a block listed before it starts (profiles refuse
        overlapping blocks; this keeps "the first block that maps an address" exact anyway)."""
        stop = min(end, block.end)
        for other in blocks:
            if other is block:
                break
            if address < other.start < stop:
                stop = other.start
        return stop


class VirtualDIO(VirtualModbusDevice):
    """A digital I/O module: lock and light coils, switch and presence inputs, analog probes."""

    def __init__(
        self,
        name: str,
        model: ModbusDIO,
        power: PowerSupply,
        coils: list[Coil],
        inputs: list[InputSlot],
        analogs: list[Callable[[], float] | None],
    ) -> None:
        super().__init__(name, model, power)
        self._coils = coils
        self._inputs = inputs
        self._analogs = analogs
        self._active_low = model.input_polarity is Polarity.ACTIVE_LOW
        self._scale = model.analog_scale
        self._signed = model.analog_signed
        self.latched = model.coil_mode == "latched"  # lock coils are plain held outputs
        self._bits["coils"] = [
            _Block(
                model.coils.start,
                model.coils.count,
                self._read_coils,
                self._write_coil,
                self._check_coil,
            )
        ]
        self._bits["discrete_inputs"] = [
            _Block(model.discrete_inputs.start, model.discrete_inputs.count, self._read_inputs)
        ]
        if model.analog_inputs is not None:
            ai = model.analog_inputs
            self._registers["input"] = [_Block(ai.start, ai.count, _each(self._read_analog))]

    def _read_coils(self, offset: int, count: int) -> list[bool]:
        return [
            bool(coil.energised if isinstance(coil, Solenoid) else coil.value)
            for coil in self._coils[offset : offset + count]
        ]

    def _write_coil(self, offset: int, value: int) -> None:
        coil = self._coils[offset]
        if isinstance(coil, PlainOutput):
            coil.value = bool(value)
            return
        if self.latched:  # a plain output: on while 1, whatever the coil can take
            if value:
                coil.hold()
            else:
                coil.let_go()
            return
        if not value:
            return  # a pulse output times itself; 0 is accepted and changes nothing
        remaining = coil.try_pulse()
        if remaining > 0:
            raise self._busy(offset, coil, remaining)

    def _check_coil(self, offset: int, value: int) -> None:
        """What `_write_coil` would refuse, without pulsing: a pulse coil inside its re-arm window."""
        coil = self._coils[offset]
        if isinstance(coil, Solenoid) and value and not self.latched:
            remaining = coil.rearm_remaining()
            if remaining > 0:
                raise self._busy(offset, coil, remaining)

    def _busy(self, offset: int, coil: Solenoid, remaining: float) -> DeviceBusy:
        return DeviceBusy(
            self.name,
            f"coil {offset + self._bits['coils'][0].start} ({coil.point}) is re-arming",
            retry_after_s=remaining,
        )

    def _read_inputs(self, offset: int, count: int) -> list[bool]:
        low = self._active_low
        return [  # `slot.active()`, written out: 32 inputs a snapshot on a DIO module
            (
                slot.stuck
                if slot.stuck is not None
                else (slot.sense() if slot.sense is not None else False)
            )
            != low
            for slot in self._inputs[offset : offset + count]
        ]

    def _read_analog(self, offset: int) -> int:
        source = self._analogs[offset]
        if source is None:
            return 0
        counts = round(source() / self._scale)
        if self._signed:
            return max(-32768, min(32767, counts)) & 0xFFFF
        return max(0, min(0xFFFF, counts))

    def coil_points(self) -> list[Coil]:
        """The coil slots in address order (for emulators that want names in their logs)."""
        return list(self._coils)


_FLOAT32 = struct.Struct(">f")
_TWO_WORDS = struct.Struct(">HH")


def float32_packers(
    channels: int, word_order: Literal["big", "little"]
) -> list[tuple[struct.Struct, struct.Struct]]:
    """For n = 0 .. channels: (n float32s, 2n words) in the word order, compiled once. Packing n
    floats with the first and unpacking with the second gives each channel's two words as
    `float32_words` does (little-endian throughout is the low word first), and back."""
    end = ">" if word_order == "big" else "<"
    return [
        (struct.Struct(f"{end}{n}f"), struct.Struct(f"{end}{2 * n}H")) for n in range(channels + 1)
    ]


def float32_words(value: float, word_order: Literal["big", "little"]) -> tuple[int, int]:
    """A float as two 16-bit registers, in the device's word order (big: high word first)."""
    high, low = _TWO_WORDS.unpack(_FLOAT32.pack(value))
    return (high, low) if word_order == "big" else (low, high)


class VirtualLoadcell(VirtualModbusDevice):
    """A weighing module: float32 weight and a status word per channel, a command word per channel."""

    def __init__(
        self, name: str, model: ModbusLoadcell, power: PowerSupply, channels: list[LoadCellChannel]
    ) -> None:
        super().__init__(name, model, power)
        self.channels = channels
        self._word_order = model.word_order
        self._packers = float32_packers(len(channels), model.word_order)
        self._conversions = ModuleConversions(channels)
        weights, status, commands = (
            model.weight_block(),
            model.status_block(),
            model.command_block(),
        )
        self._registers["input"] = [
            _Block(weights.start, weights.count, self._read_weight_words),
            _Block(status.start, status.count, self._read_statuses),
        ]
        self._registers["holding"] = [
            _Block(commands.start, commands.count, self._read_commands, self._write_command)
        ]

    def _read_weight_words(self, offset: int, count: int) -> list[int]:
        """Words `offset ..` of the weight block: each channel weighed once for both its words
        (packed as float32 all at once: the same words `float32_words` gives one by one)."""
        first, last = offset // 2, (offset + count - 1) // 2
        grams = self._conversions.weigh(first, last + 1)
        floats, words = self._packers[len(grams)]
        skip = offset % 2  # the read may start on a channel's second word
        return list(words.unpack(floats.pack(*grams))[skip : skip + count])

    def _read_statuses(self, offset: int, count: int) -> list[int]:
        return [channel.status() for channel in self.channels[offset : offset + count]]

    def _read_commands(self, offset: int, count: int) -> list[int]:
        return [c.last_command & 0xFFFF for c in self.channels[offset : offset + count]]

    def _write_command(self, offset: int, value: int) -> None:
        channel = self.channels[offset]
        if value not in (0, CMD_ZERO, CMD_TARE, CMD_SAVE):
            raise IllegalValue(self.name, f"command {value} is not 1 (zero), 2 (tare) or 3 (save)")
        if value in (CMD_ZERO, CMD_TARE) and not channel.usable():
            raise DeviceFailure(self.name, f"channel {offset} ({channel.point}) has failed")
        channel.last_command = value
        if value == CMD_ZERO:
            channel.zero()
        elif value == CMD_TARE:
            channel.tare()
        elif value == CMD_SAVE:
            channel.save()


class VirtualLockboard(VirtualDevice):
    """A CU16-style lock board: 16 solenoid outputs with feedback, 16 inputs."""

    LOCKS = 16

    def __init__(
        self,
        name: str,
        model: LockboardCU16,
        power: PowerSupply,
        solenoids: list[Solenoid],
        inputs: list[InputSlot],
    ) -> None:
        super().__init__(name, model.bus, power)
        self.kind: str = model.kind
        self.board = model.address
        self.solenoids = solenoids
        self._inputs = inputs
        self._lock_active_low = model.lock_polarity is Polarity.ACTIVE_LOW
        self._input_active_low = model.input_polarity is Polarity.ACTIVE_LOW
        self._bit_values = [1 << i for i in range(max(len(solenoids), len(inputs)))]

    def status(self) -> tuple[int, int]:
        """(lock feedback bits, input bits), raw as on the wire: bit i is lock / input i."""
        self._answer()
        lock_low, input_low = self._lock_active_low, self._input_active_low
        locks = [s.holding != lock_low for s in self.solenoids]
        inputs = [slot.active() != input_low for slot in self._inputs]
        # the sum of 1 << i over the i set, added up in C
        return sum(compress(self._bit_values, locks)), sum(compress(self._bit_values, inputs))

    def unlock(self, lock_index: int) -> None:
        """Pulse one lock; DeviceBusy inside its re-arm window."""
        self._answer()
        if not 0 <= lock_index < self.LOCKS:
            raise IllegalAddress(self.name, f"lock {lock_index} is not 0–15")
        solenoid = self.solenoids[lock_index]
        remaining = solenoid.try_pulse()
        if remaining > 0:
            raise DeviceBusy(
                self.name, f"lock {lock_index} ({solenoid.point}) is re-arming", remaining
            )

    def unlock_all(self) -> list[int]:
        """Pulse every lock that is not re-arming; the indices pulsed."""
        self._answer()
        return [i for i, s in enumerate(self.solenoids) if s.try_pulse() == 0.0]

    def unlock_time_ms(self) -> int:
        """The board's unlock (pulse) time (CU16 0x38)."""
        self._answer()
        return round(self.solenoids[0].pulse_s * 1000)

    def set_unlock_time_ms(self, ms: int) -> None:
        """Set every lock's pulse length (CU16 0x37); the coil's cool-down covers it."""
        self._answer()
        if not 20 <= ms <= 60_000:
            raise IllegalValue(self.name, f"unlock time {ms} ms is not 20-60000")
        for solenoid in self.solenoids:
            solenoid.pulse_s = ms / 1000
            solenoid.actuation_s = min(solenoid.actuation_s, solenoid.pulse_s)
            solenoid.rearm_s = max(solenoid.rearm_s, solenoid.pulse_s)
