"""Which points a whole-cabinet snapshot reports, read from the profile's layout.

One function so every wire driver (Modbus, lock board, the composite of both) reports the same
points and pairs each lock with the door switch it holds shut: a lock without feedback is inferred
engaged only while its pulse is off and its door reads closed (see `Locks.lock_engaged`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from adc.drivers.base import UnknownPoint
from adc.profiles.models import LockboardCU16, Profile, SensorKind
from adc.profiles.points import PointRef, PointRole, point_families


@dataclass
class CabinetPoints:
    """Points by what the layout uses them for, each list in layout order without repeats."""

    locks: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    temperatures: list[str] = field(default_factory=list)
    lights: list[str] = field(default_factory=list)
    door_of_lock: dict[str, str] = field(default_factory=dict)  # lock point → its door switch
    drawer_locks: set[str] = field(default_factory=set)  # the locks that hold a drawer shut

    def all(self) -> list[str]:
        return [*self.locks, *self.inputs, *self.weights, *self.temperatures, *self.lights]


def canonical(point: str) -> str:
    """`dio1:coil.03` → `dio1:coil.3`: snapshots and health use this one spelling."""
    return str(PointRef.parse(point))


def _add(seq: list[str], point: str | None) -> None:
    if point is not None and canonical(point) not in seq:
        seq.append(canonical(point))


def cabinet_points(profile: Profile) -> CabinetPoints:
    """The points of `profile` a snapshot reports, grouped by use."""
    pts = CabinetPoints()
    for drawer in profile.layout.drawers:
        _add(pts.locks, drawer.lock)
        pts.drawer_locks.add(canonical(drawer.lock))
        _add(pts.inputs, drawer.switch)
        pts.door_of_lock.setdefault(canonical(drawer.lock), canonical(drawer.switch))
        _add(pts.lights, drawer.light)
        for pocket in drawer.pockets:
            for lock, switch in (
                (pocket.lock, pocket.switch),
                (pocket.lid_lock, pocket.lid_switch),
            ):
                _add(pts.locks, lock)
                _add(pts.inputs, switch)
                if lock is not None and switch is not None:
                    pts.door_of_lock.setdefault(canonical(lock), canonical(switch))
            if pocket.sensor.kind is SensorKind.PRESENCE:
                _add(pts.inputs, pocket.sensor.point)
            elif pocket.sensor.kind is SensorKind.WEIGHT:
                _add(pts.weights, pocket.sensor.point)
            _add(pts.lights, pocket.light)
            _add(pts.temperatures, pocket.temperature)
    return pts


class Use(Enum):
    """What a point is used for (finer than its role on the device), as the error messages say."""

    LOCK = "a lock"
    LIGHT = "a light"
    OUTPUT = "an unassigned output"
    INPUT = "an input"
    WEIGHT = "a load-cell channel"
    ANALOG = "an analog input"


@dataclass(frozen=True)
class PointInfo:
    ref: PointRef
    use: Use
    door_switch: str | None = None  # for a lock: the switch of the door it holds

    @property
    def text(self) -> str:
        return str(self.ref)


_ROLE_USE = {PointRole.INPUT: Use.INPUT, PointRole.WEIGHT: Use.WEIGHT, PointRole.ANALOG: Use.ANALOG}


def classify_points(profile: Profile) -> dict[str, PointInfo]:
    """Every point of every device by canonical text. A lock-board output is always a solenoid
    (a lock); a DIO coil is a lock or a light where the layout says so, else a plain output."""
    layout = cabinet_points(profile)
    lights = set(layout.lights)
    points: dict[str, PointInfo] = {}
    for name, device in profile.devices.items():
        for family, (role, count) in point_families(device).items():
            for index in range(count):
                ref = PointRef(name, family, index)
                text = str(ref)
                if role is not PointRole.OUTPUT:
                    points[text] = PointInfo(ref, _ROLE_USE[role])
                elif text in layout.locks or isinstance(device, LockboardCU16):
                    points[text] = PointInfo(ref, Use.LOCK, layout.door_of_lock.get(text))
                else:
                    points[text] = PointInfo(ref, Use.LIGHT if text in lights else Use.OUTPUT)
    return points


def find_point(profile: Profile, points: dict[str, PointInfo], point: str) -> PointInfo:
    """A point of `classify_points(profile)` by any spelling; UnknownPoint, with the reason, if it
    does not parse or the profile has no such device or no such point on it."""
    try:
        text = canonical(point)
    except ValueError as err:
        raise UnknownPoint(point, str(err)) from None
    info = points.get(text)
    if info is None:
        device = text.partition(":")[0]
        if device not in profile.devices:
            reason = f"no device {device!r} in profile {profile.name}"
        else:
            reason = f"device {device} ({profile.devices[device].kind}) has no such point"
        raise UnknownPoint(point, reason, device=device)
    return info
