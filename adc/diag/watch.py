"""`adc diag watch`: the whole cabinet at a glance, refreshed: drawers, locks, switches, sensors, buses.

`rows(profile, snapshot)` turns one snapshot into plain rows (a drawer, then its pockets) and
`device_rows` the health counters, so the rendering (rich, in adc/diag/render.py) and the tests
read the same values. `run` takes snapshots at a fixed interval on the bench's clock and hands
each to `show`; it stops after `iterations` (None: until interrupted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adc.diag.bench import Bench
from adc.drivers.base import DeviceHealth, Snapshot, WeightReading
from adc.drivers.cabinet_points import canonical
from adc.profiles.models import Profile, SensorKind

UNKNOWN = "?"  # the device did not answer


@dataclass(frozen=True)
class Row:
    where: str  # "D1" for a drawer, "  D1-P1" for a pocket
    lock: str
    switch: str
    sensor: str
    light: str


def _state(values: Mapping[str, object], point: str | None, yes: str, no: str) -> str:
    """A point's value in words; UNKNOWN where it did not answer, "" where there is no point."""
    if point is None:
        return ""
    value = values.get(canonical(point))
    return UNKNOWN if value is None else yes if value else no


def _lock(snap: Snapshot, point: str | None) -> str:
    return _state(snap.locks_engaged, point, "locked", "released")


def _switch(snap: Snapshot, point: str | None) -> str:
    return _state(snap.inputs, point, "closed", "open")


def _light(snap: Snapshot, point: str | None) -> str:
    return _state(snap.lights, point, "on", "off")


def _sensor(snap: Snapshot, kind: SensorKind, point: str | None) -> str:
    if point is None or kind is SensorKind.NONE:
        return ""
    if kind is SensorKind.PRESENCE:
        return _state(snap.inputs, point, "present", "empty")
    reading = snap.weights.get(canonical(point))
    if not isinstance(reading, WeightReading):
        return UNKNOWN
    return f"{reading.grams:.1f} g {reading.quality.value}"


def rows(profile: Profile, snap: Snapshot) -> list[Row]:
    out: list[Row] = []
    for drawer in profile.layout.drawers:
        out.append(
            Row(
                drawer.id,
                _lock(snap, drawer.lock),
                _switch(snap, drawer.switch),
                "",
                _light(snap, drawer.light),
            )
        )
        for pocket in drawer.pockets:
            temperature = ""
            if pocket.temperature:
                t = snap.temperatures.get(canonical(pocket.temperature))
                temperature = UNKNOWN if t is None else f" {t.celsius:.1f} °C"
            sensor = _sensor(snap, pocket.sensor.kind, pocket.sensor.point) + temperature
            out.append(
                Row(
                    f"  {pocket.id}",
                    _lock(snap, pocket.lid_lock or pocket.lock),
                    _switch(snap, pocket.lid_switch or pocket.switch),
                    sensor.strip(),
                    _light(snap, pocket.light),
                )
            )
    return out


@dataclass(frozen=True)
class DeviceRow:
    device: str
    bus: str
    address: int
    online: str
    requests: int
    timeouts: int
    errors: int
    retries: int
    last_seen: str
    last_error: str


def device_rows(profile: Profile, health: dict[str, DeviceHealth], now: float) -> list[DeviceRow]:
    out = []
    for name, model in profile.devices.items():
        h = health.get(name, DeviceHealth(name))
        seen = "never" if h.last_seen is None else f"{max(now - h.last_seen, 0.0):.1f} s ago"
        out.append(
            DeviceRow(
                name,
                model.bus,
                model.address,
                "yes" if h.online and h.last_seen is not None else "no" if h.requests else "-",
                h.requests,
                h.timeouts,
                h.errors,
                h.retries,
                seen,
                h.last_error or "",
            )
        )
    return out


def no_answer(health: Mapping[str, DeviceHealth]) -> str | None:
    """What to say when no device of the cabinet answered at all (None: some did)."""
    asked = [h for h in health.values() if h.requests]
    if not asked or any(h.last_seen is not None for h in asked):
        return None
    errors = sorted({h.last_error for h in asked if h.last_error})
    why = f" (last error: {errors[0]})" if errors else ""
    return (
        f"no device answered in {sum(h.requests for h in asked)} requests: the cabinet is "
        f"offline or not connected{why}"
    )


def run(
    bench: Bench,
    show: Callable[[Snapshot, float], None],
    *,
    interval_s: float,
    iterations: int | None,
) -> int:
    """Snapshot, show, wait; `iterations` times (None: forever). Returns how many were shown."""
    shown = 0
    while iterations is None or shown < iterations:
        if shown:
            bench.waiter.sleep(interval_s)
        snap = bench.driver.snapshot()
        show(snap, bench.waiter.now())
        shown += 1
    return shown
