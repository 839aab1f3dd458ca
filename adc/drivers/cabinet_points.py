"""Which points a whole-cabinet snapshot reports, read from the profile's layout.

One function so every wire driver (Modbus, lock board, the composite of both) reports the same
points and pairs each lock with the door switch it holds shut: a lock without feedback is inferred
engaged only while its pulse is off and its door reads closed (see `Locks.lock_engaged`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adc.profiles.models import Profile, SensorKind


@dataclass
class CabinetPoints:
    """Points by what the layout uses them for, each list in layout order without repeats."""

    locks: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    temperatures: list[str] = field(default_factory=list)
    lights: list[str] = field(default_factory=list)
    door_of_lock: dict[str, str] = field(default_factory=dict)  # lock point → its door switch

    def all(self) -> list[str]:
        return [*self.locks, *self.inputs, *self.weights, *self.temperatures, *self.lights]


def _add(seq: list[str], point: str | None) -> None:
    if point is not None and point not in seq:
        seq.append(point)


def cabinet_points(profile: Profile) -> CabinetPoints:
    """The points of `profile` a snapshot reports, grouped by use."""
    pts = CabinetPoints()
    for drawer in profile.layout.drawers:
        _add(pts.locks, drawer.lock)
        _add(pts.inputs, drawer.switch)
        pts.door_of_lock.setdefault(drawer.lock, drawer.switch)
        _add(pts.lights, drawer.light)
        for pocket in drawer.pockets:
            for lock, switch in (
                (pocket.lock, pocket.switch),
                (pocket.lid_lock, pocket.lid_switch),
            ):
                _add(pts.locks, lock)
                _add(pts.inputs, switch)
                if lock is not None and switch is not None:
                    pts.door_of_lock.setdefault(lock, switch)
            if pocket.sensor.kind is SensorKind.PRESENCE:
                _add(pts.inputs, pocket.sensor.point)
            elif pocket.sensor.kind is SensorKind.WEIGHT:
                _add(pts.weights, pocket.sensor.point)
            _add(pts.lights, pocket.light)
            _add(pts.temperatures, pocket.temperature)
    return pts
