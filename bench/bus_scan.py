"""Bus scan benchmark: requests and wall time of one full snapshot, per shipped profile.

For each profile in hardware-profiles/:
1. requests one `snapshot()` sends vs the minimum the limits allow (Modbus: `minimum_requests`,
   an exhaustive search independent of the planner; lock boards: one status request per board).
   They must be equal.
2. wall time of that snapshot with every bus served on a pseudo-terminal at 19200 baud with line
   timing on (a Modbus TCP bus is served as RTU here, so it is timed on a line too), against the
   wire-time bound computed from the bytes exchanged: per request, request + response bytes at
   11 bits a character plus two 3.5-character gaps (../shared/protocols.md). Target: ≤ 1.25×.
3. a naive poll, one request per point (a weight: its float pair and its status word), timed in the
   same run for comparison.

Run: .venv/bin/python bench/bus_scan.py [--runs N]. Prints a table; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from adc.drivers import lockboard_protocol as lp
from adc.drivers.buses import WireDriver, open_profile_buses
from adc.drivers.cabinet_points import cabinet_points
from adc.drivers.lockboard import LockboardPart
from adc.drivers.modbus import ModbusPart
from adc.drivers.modbus_frames import rtu_read_sizes
from adc.drivers.modbus_plan import exchange_wire_time, minimum_requests, plan_reads, read_wire_time
from adc.profiles import load_profile
from adc.profiles.models import LockboardBus, LockboardCU16, Profile
from adc.profiles.points import PointRef
from adc.sim.cabinet import VirtualCabinet
from adc.sim.emulator_lockboard import LockboardEmulator
from adc.sim.emulator_modbus import ModbusRtuEmulator

ROOT = Path(__file__).resolve().parents[1]
BAUD = 19200


def _clients(driver: WireDriver) -> list[Any]:
    out: list[Any] = []
    for part in driver.parts:
        assert isinstance(part, ModbusPart | LockboardPart)
        out.extend({id(c): c for c in part.clients.values()}.values())
    return out


def _exchanges(driver: WireDriver) -> int:
    return sum(c.exchanges for c in _clients(driver))


def minimum(profile: Profile) -> int:
    """Fewest requests a snapshot can take: Modbus by exhaustive search, one status per board."""
    points = cabinet_points(profile).all()
    boards = {
        PointRef.parse(p).device
        for p in points
        if isinstance(profile.devices[PointRef.parse(p).device], LockboardCU16)
    }
    return sum(minimum_requests(profile).values()) + len(boards)


def snapshot_bytes(profile: Profile) -> tuple[int, int]:
    """(bytes, requests) one snapshot exchanges on the wire."""
    total, requests = 0, 0
    for blocks in plan_reads(profile).values():
        for block in blocks:
            total += sum(rtu_read_sizes(block.function, block.count))
            requests += 1
    boards = minimum(profile) - requests
    total += boards * (lp.FRAME_LENGTH[lp.Cmd.STATUS] + lp.FRAME_LENGTH[lp.Cmd.STATUS_REPLY])
    return total, requests + boards


def line_time(profile: Profile) -> float:
    """What the 8N1 line itself needs (10 bits a character, two gaps per request): the floor
    under any driver, below the bound, which assumes 11-bit characters."""
    total, requests = snapshot_bytes(profile)
    char = 10 / BAUD
    return total * char + requests * 2 * 3.5 * char


def snapshot_bound(profile: Profile) -> float:
    """Wire-time bound of one snapshot: every planned read and every board status exchange."""
    bound = sum(read_wire_time(b, BAUD) for blocks in plan_reads(profile).values() for b in blocks)
    boards = {
        PointRef.parse(p).device
        for p in cabinet_points(profile).all()
        if isinstance(profile.devices[PointRef.parse(p).device], LockboardCU16)
    }
    status = exchange_wire_time(
        lp.FRAME_LENGTH[lp.Cmd.STATUS], lp.FRAME_LENGTH[lp.Cmd.STATUS_REPLY], BAUD
    )
    return bound + len(boards) * status


def naive_poll(driver: WireDriver) -> None:
    """One request per point, as a first driver would do it."""
    layout = cabinet_points(driver.profile)
    for point in layout.locks:
        device = driver.profile.devices[PointRef.parse(point).device]
        if isinstance(device, LockboardCU16):
            driver.lock_engaged(point)
        else:
            # Coil state only (the port's lock_engaged also reads the door switch): one request.
            info = driver._points[point]
            driver._owner[info.ref.device].read_output(info)
    for point in layout.inputs:
        driver.input_active(point)
    for point in layout.weights:
        driver.weight(point)
    for point in layout.temperatures:
        driver.temperature(point)
    for point in layout.lights:
        info = driver._points[point]
        driver._owner[info.ref.device].read_output(info)


def measure(profile: Profile, runs: int) -> dict[str, float]:
    cabinet = VirtualCabinet(profile, seed=1)
    lock = threading.RLock()
    emulators: list[Any] = []
    ports: dict[str, str] = {}
    try:
        for name, bus in profile.buses.items():
            cls = LockboardEmulator if isinstance(bus, LockboardBus) else ModbusRtuEmulator
            emulator = cls(cabinet, name, line_timing=True, lock=lock).start()
            emulators.append(emulator)
            ports[name] = emulator.port
        driver = open_profile_buses(profile, ports=ports, clock=lambda: cabinet.env.now)
        try:
            driver.snapshot()  # warm up: open ports, first frames
            before = _exchanges(driver)
            driver.snapshot()
            requests = _exchanges(driver) - before
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                snap = driver.snapshot()
                timings.append(time.perf_counter() - started)
            assert all(v is not None for v in snap.inputs.values()), "a device did not answer"
            before = _exchanges(driver)
            naive_poll(driver)
            naive_requests = _exchanges(driver) - before
            naive_times = []
            for _ in range(max(1, runs // 2)):
                started = time.perf_counter()
                naive_poll(driver)
                naive_times.append(time.perf_counter() - started)
        finally:
            driver.close()
    finally:
        for emulator in emulators:
            emulator.close()
    bound = snapshot_bound(profile)
    wall = statistics.median(timings)
    return {
        "requests": requests,
        "minimum": minimum(profile),
        "wall_ms": wall * 1000,
        "bound_ms": bound * 1000,
        "line_ms": line_time(profile) * 1000,
        "ratio": wall / bound,
        "naive_requests": naive_requests,
        "naive_ms": statistics.median(naive_times) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="snapshots timed per profile")
    args = parser.parse_args()
    print(f"snapshot over emulators on ptys, {BAUD} baud, line timing on; median of {args.runs}")
    header = (
        f"{'profile':<14}{'requests':>9}{'minimum':>9}{'wall ms':>10}{'bound ms':>10}{'8N1 ms':>8}"
        f"{'ratio':>7}{'naive req':>11}{'naive ms':>10}{'speed-up':>10}"
    )
    print(header)
    ok = True
    for path in sorted((ROOT / "hardware-profiles").glob("*.toml")):
        profile = load_profile(path)
        r = measure(profile, args.runs)
        ok &= r["requests"] == r["minimum"]
        print(
            f"{profile.name:<14}{r['requests']:>9.0f}{r['minimum']:>9.0f}{r['wall_ms']:>10.1f}"
            f"{r['bound_ms']:>10.1f}{r['line_ms']:>8.1f}{r['ratio']:>7.2f}{r['naive_requests']:>11.0f}"
            f"{r['naive_ms']:>10.1f}{r['naive_ms'] / r['wall_ms']:>9.1f}x"
        )
    print(
        "ratio = wall / bound (bound: 11-bit characters, as ../shared/protocols.md; target <= 1.25)"
    )
    print("8N1 ms: the line's own time at 10-bit characters, the floor under any driver")
    print("requests == minimum for every profile" if ok else "MISMATCH: requests != minimum")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
