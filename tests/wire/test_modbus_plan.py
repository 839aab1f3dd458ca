"""Block-read planning: fewest requests, limits honoured, every needed item covered."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adc.drivers.modbus_plan import (
    Item,
    ReadBlock,
    Table,
    declared_runs,
    exchange_wire_time,
    minimum_requests,
    needed_items,
    plan_device,
    plan_reads,
    read_limit,
    read_wire_time,
)
from adc.profiles import load_profile
from adc.profiles.models import ModbusDIO, ModbusLoadcell

PROFILES = sorted((Path(__file__).resolve().parents[2] / "hardware-profiles").glob("*.toml"))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_shipped_profiles_plan_the_minimum(path: Path) -> None:
    profile = load_profile(path)
    plan = plan_reads(profile)
    assert {bus: len(blocks) for bus, blocks in plan.items()} == minimum_requests(profile)
    needed = needed_items(profile)
    for blocks in plan.values():
        for block in blocks:
            device = profile.devices[block.device]
            assert isinstance(device, ModbusDIO | ModbusLoadcell)
            assert block.count <= read_limit(device, block.table)
            runs = declared_runs(device, block.table)
            assert any(s <= block.start and block.end <= e for s, e in runs)
    for name, tables in needed.items():
        for table, items in tables.items():
            blocks = [
                b for b in plan[profile.devices[name].bus] if b.device == name and b.table == table
            ]
            for item in items:
                assert sum(b.covers(item) for b in blocks) == 1, (name, table, item)


def test_tcp_profile_plan_is_one_read_per_table_and_run() -> None:
    profile = load_profile(PROFILES[[p.stem for p in PROFILES].index("tcp-6drawer")])
    plan = plan_reads(profile)["main"]
    assert [(b.device, b.table, b.start, b.count) for b in plan] == [
        ("dio1", Table.COILS, 0, 30),
        ("dio1", Table.DISCRETE_INPUTS, 0, 26),
        ("lc1", Table.INPUT, 0, 16),
        ("lc1", Table.INPUT, 100, 8),
        ("lc2", Table.INPUT, 0, 16),
        ("lc2", Table.INPUT, 100, 8),
    ]


def _loadcell(channels: int, limit: int, status_start: int = 100) -> ModbusLoadcell:
    return ModbusLoadcell(
        bus="b",
        kind="modbus-loadcell",
        address=7,
        channels=channels,
        max_read_registers=limit,
        status_start=status_start,
    )


def test_device_read_limit_splits_blocks_without_tearing_a_float() -> None:
    device = _loadcell(32, limit=33, status_start=200)
    items = {Table.INPUT: [Item(2 * ch, 2) for ch in range(32)]}
    blocks = plan_device("lc", device, items)
    # 33 registers hold 16 whole pairs; the 17th pair may not be split across two reads.
    assert [(b.start, b.count) for b in blocks] == [(0, 32), (32, 32)]


def test_adjacent_blocks_merge_into_one_read() -> None:
    # status words right after the weights: one run, one read.
    device = _loadcell(4, limit=125, status_start=8)
    blocks = plan_device("lc", device, {Table.INPUT: [Item(0, 2), Item(6, 2), Item(8), Item(11)]})
    assert [(b.start, b.count) for b in blocks] == [(0, 12)]


def test_a_read_never_crosses_an_undeclared_gap() -> None:
    device = _loadcell(4, limit=125, status_start=9)  # gap at address 8
    blocks = plan_device("lc", device, {Table.INPUT: [Item(6, 2), Item(9)]})
    assert [(b.start, b.count) for b in blocks] == [(6, 2), (9, 1)]


@settings(max_examples=200)
@given(
    st.integers(1, 32),
    st.integers(2, 125),
    st.sets(st.integers(0, 31), min_size=1),
    st.integers(64, 400),
)
def test_greedy_plan_equals_the_exhaustive_minimum(
    channels: int, limit: int, wanted: set[int], status_start: int
) -> None:
    from adc.drivers.modbus_plan import _minimum_for

    device = _loadcell(channels, limit, status_start)
    chans = sorted(c for c in wanted if c < channels) or [0]
    items = [Item(2 * c, 2) for c in chans] + [Item(status_start + c) for c in chans]
    blocks = plan_device("lc", device, {Table.INPUT: items})
    runs = declared_runs(device, Table.INPUT)
    assert len(blocks) == _minimum_for(items, runs, limit)
    for item in items:
        assert sum(b.covers(item) for b in blocks) == 1
    assert all(b.count <= limit for b in blocks)


def test_wire_time_matches_the_published_table() -> None:
    # ../shared/protocols.md: read of N registers, 8 + 5+2N bytes, two 3.5-character gaps.
    expected = {
        (9600, 1): 25.2, (9600, 16): 59.6, (9600, 64): 169.6, (9600, 125): 309.4,
        (19200, 1): 12.6, (19200, 16): 29.8, (19200, 64): 84.8, (19200, 125): 154.7,
        (115200, 1): 4.9, (115200, 16): 7.8, (115200, 64): 17.0, (115200, 125): 28.6,
    }  # fmt: skip
    for (baud, n), ms in expected.items():
        block = ReadBlock("d", 1, Table.HOLDING, 0, n)
        assert round(read_wire_time(block, baud) * 1000, 1) == ms, (baud, n)
    assert exchange_wire_time(8, 7, 19200) == pytest.approx(
        read_wire_time(ReadBlock("d", 1, Table.INPUT, 0, 1), 19200)
    )
