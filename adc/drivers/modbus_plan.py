"""Block-read planning: the fewest Modbus requests that cover the points a snapshot needs.

The fastest full poll of a cabinet is the one with the fewest requests (docs/wire-protocols.md,
../shared/protocols.md): each request costs a frame gap and a header on a 19200-baud line, so reading
a few unused addresses inside a block is cheaper than a second request. A plan therefore covers, per
device and table, the needed addresses with contiguous reads that

- stay inside the address runs the device declares (a gap between two declared blocks may be
  illegal on a real device, so no read crosses it),
- are at most the device's own `max_read_registers` / `max_read_bits` long (≤ 125 / ≤ 2000),
- never split a float32 weight pair (two reads of one pair could tear between two moments).

Within one run a greedy cover from the lowest needed address is optimal (interval covering).
`minimum_requests()` computes the same minimum by exhaustive dynamic programming, independently of
the planner, so the bench and the tests can check that the plan is as small as the limits allow.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from adc.drivers.cabinet_points import cabinet_points
from adc.drivers.modbus_frames import Function, rtu_read_sizes
from adc.profiles.models import ModbusDIO, ModbusLoadcell, Profile, RegisterBlock
from adc.profiles.points import PointRef


class Table(StrEnum):
    COILS = "coils"
    DISCRETE_INPUTS = "discrete_inputs"
    INPUT = "input"
    HOLDING = "holding"

    @property
    def function(self) -> Function:
        return _READ_FUNCTION[self]

    @property
    def is_bits(self) -> bool:
        return self in (Table.COILS, Table.DISCRETE_INPUTS)


_READ_FUNCTION = {
    Table.COILS: Function.READ_COILS,
    Table.DISCRETE_INPUTS: Function.READ_DISCRETE_INPUTS,
    Table.HOLDING: Function.READ_HOLDING_REGISTERS,
    Table.INPUT: Function.READ_INPUT_REGISTERS,
}

ModbusDevice = ModbusDIO | ModbusLoadcell


@dataclass(frozen=True, order=True)
class Item:
    """Addresses one value occupies: a bit, a register, or a float32 register pair."""

    address: int
    width: int = 1

    @property
    def end(self) -> int:
        return self.address + self.width


@dataclass(frozen=True)
class ReadBlock:
    """One read request: `count` items of `table` from `start` on device `device` (unit `unit`)."""

    device: str
    unit: int
    table: Table
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def function(self) -> Function:
        return self.table.function

    def covers(self, item: Item) -> bool:
        return self.start <= item.address and item.end <= self.end


# ------------------------------------------------------------------------------- point locations
def point_items(device: ModbusDevice, ref: PointRef) -> list[tuple[Table, Item]]:
    """Where a point's value lives: for a load-cell channel its weight pair and its status word."""
    if isinstance(device, ModbusDIO):
        if ref.family == "coil":
            return [(Table.COILS, Item(device.coils.start + ref.index))]
        if ref.family == "di":
            return [(Table.DISCRETE_INPUTS, Item(device.discrete_inputs.start + ref.index))]
        if ref.family == "ai" and device.analog_inputs is not None:
            return [(Table.INPUT, Item(device.analog_inputs.start + ref.index))]
    elif ref.family == "ch":
        return [
            (Table.INPUT, Item(device.weight_start + 2 * ref.index, 2)),
            (Table.INPUT, Item(device.status_start + ref.index)),
        ]
    raise ValueError(f"{ref} is not a readable point of a {device.kind}")


def declared_runs(device: ModbusDevice, table: Table) -> list[tuple[int, int]]:
    """Contiguous (start, end) address runs the device declares in a table (blocks merged)."""
    blocks: list[RegisterBlock] = []
    if isinstance(device, ModbusDIO):
        if table is Table.COILS:
            blocks = [device.coils]
        elif table is Table.DISCRETE_INPUTS:
            blocks = [device.discrete_inputs]
        elif table is Table.INPUT and device.analog_inputs is not None:
            blocks = [device.analog_inputs]
    elif table is Table.INPUT:
        blocks = [device.weight_block(), device.status_block()]
    elif table is Table.HOLDING:
        blocks = [device.command_block()]
    runs: list[tuple[int, int]] = []
    for block in sorted(blocks, key=lambda b: b.start):
        if runs and block.start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], block.end))
        else:
            runs.append((block.start, block.end))
    return runs


def read_limit(device: ModbusDevice, table: Table) -> int:
    return device.max_read_bits if table.is_bits else device.max_read_registers


def needed_items(profile: Profile) -> dict[str, dict[Table, list[Item]]]:
    """Per Modbus device and table, the items a full snapshot reads (sorted, no repeats)."""
    needed: dict[str, dict[Table, set[Item]]] = defaultdict(lambda: defaultdict(set))
    for text in cabinet_points(profile).all():
        ref = PointRef.parse(text)
        device = profile.devices[ref.device]
        if not isinstance(device, ModbusDIO | ModbusLoadcell):
            continue
        for table, item in point_items(device, ref):
            needed[ref.device][table].add(item)
    return {
        name: {table: sorted(items) for table, items in tables.items()}
        for name, tables in needed.items()
    }


# ------------------------------------------------------------------------------------- planning
def _run_of(item: Item, runs: list[tuple[int, int]]) -> tuple[int, int]:
    for run in runs:
        if run[0] <= item.address and item.end <= run[1]:
            return run
    raise ValueError(f"item at {item.address} lies outside every declared block")


def plan_device(name: str, device: ModbusDevice, items: dict[Table, list[Item]]) -> list[ReadBlock]:
    """Greedy cover per table and declared run: each read starts at the lowest uncovered item and
    takes every following item that still fits within the device's read limit."""
    blocks: list[ReadBlock] = []
    for table in Table:
        wanted = sorted(items.get(table, []))
        if not wanted:
            continue
        runs = declared_runs(device, table)
        limit = read_limit(device, table)
        current: tuple[int, int] | None = None  # (start, end) of the read being grown
        current_run: tuple[int, int] | None = None
        for item in wanted:
            run = _run_of(item, runs)
            if item.width > limit:
                raise ValueError(f"{name}: an item of {item.width} exceeds the read limit {limit}")
            if current is not None and run == current_run and item.end - current[0] <= limit:
                current = (current[0], max(current[1], item.end))
                continue
            if current is not None:
                blocks.append(ReadBlock(name, device.address, table, *_span(current)))
            current, current_run = (item.address, item.end), run
        if current is not None:
            blocks.append(ReadBlock(name, device.address, table, *_span(current)))
    return blocks


def _span(span: tuple[int, int]) -> tuple[int, int]:
    return span[0], span[1] - span[0]


def plan_reads(profile: Profile) -> dict[str, list[ReadBlock]]:
    """Per bus, the reads of one full snapshot of the profile's Modbus devices, device by device."""
    plan: dict[str, list[ReadBlock]] = {}
    needed = needed_items(profile)
    for name, device in profile.devices.items():
        if not isinstance(device, ModbusDIO | ModbusLoadcell) or name not in needed:
            continue
        plan.setdefault(device.bus, []).extend(plan_device(name, device, needed[name]))
    return plan


# ------------------------------------------------------------------------------ the minimum, again
def _minimum_for(items: list[Item], runs: list[tuple[int, int]], limit: int) -> int:
    """Fewest reads covering `items`, by dynamic programming over every way to split the sorted
    items into consecutive groups that each fit one read (same run, span ≤ limit)."""
    items = sorted(items)
    run_of = [_run_of(item, runs) for item in items]

    @cache
    def best(i: int) -> int:
        if i == len(items):
            return 0
        result = len(items) + 1
        for j in range(i, len(items)):
            if run_of[j] != run_of[i] or items[j].end - items[i].address > limit:
                break
            result = min(result, 1 + best(j + 1))
        return result

    return best(0)


def minimum_requests(profile: Profile) -> dict[str, int]:
    """Per bus, the fewest Modbus read requests a full snapshot can take under the limits."""
    totals: dict[str, int] = defaultdict(int)
    for name, tables in needed_items(profile).items():
        device = profile.devices[name]
        assert isinstance(device, ModbusDIO | ModbusLoadcell)
        for table, items in tables.items():
            totals[device.bus] += _minimum_for(
                items, declared_runs(device, table), read_limit(device, table)
            )
    return dict(totals)


# ------------------------------------------------------------------------------------ wire time
CHAR_BITS = 11  # start + 8 data + parity or second stop + stop: the worst case the formula uses


def char_time(baudrate: int) -> float:
    return CHAR_BITS / baudrate


def frame_gap(baudrate: int) -> float:
    """3.5 character times, fixed at 1.75 ms above 19200 baud (Modbus over serial line, 2.5.1.1)."""
    return 1.75e-3 if baudrate > 19200 else 3.5 * char_time(baudrate)


def exchange_wire_time(request_bytes: int, response_bytes: int, baudrate: int) -> float:
    """Seconds a request/response pair occupies an RTU line: both frames and two frame gaps."""
    return (request_bytes + response_bytes) * char_time(baudrate) + 2 * frame_gap(baudrate)


def read_wire_time(block: ReadBlock, baudrate: int) -> float:
    """Wire-time bound of one read (device processing not included)."""
    return exchange_wire_time(*rtu_read_sizes(block.function, block.count), baudrate)
