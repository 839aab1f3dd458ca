"""The wire drivers' common half: one CabinetDriver over any mix of buses (`profile:` URIs).

A profile can mix buses (rs485-2bus has a lock-board bus and a Modbus RTU bus), so the port is
implemented once here, over "bus parts" that each own the devices of some buses and the I/O to
them: `ModbusPart` (adc/drivers/modbus.py) and `LockboardPart` (adc/drivers/lockboard.py). This
class checks points (UnknownPoint, WrongPointRole), routes each point to the part that owns its
device, infers lock state where the hardware has no feedback (released while the coil is on or the
door it holds reads open — the door switch may sit on another bus), and merges snapshots.

`open_profile_buses` opens every bus the profile names; a bus's port can be overridden (`ports=
{"locks": "/dev/pts/3"}`), which is how tests point a profile at emulators on ptys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol
from urllib.parse import parse_qs

from adc.drivers.base import (
    DeviceHealth,
    DriverError,
    Snapshot,
    TemperatureReading,
    UnknownPoint,
    WeightReading,
    WrongPointRole,
)
from adc.drivers.cabinet_points import (
    PointInfo,
    Use,
    cabinet_points,
    classify_points,
    find_point,
)
from adc.drivers.unlock import pulse_groups, unlock_groups
from adc.errors import BadInput
from adc.profiles.models import LockboardBus, ModbusRtuBus, ModbusTcpBus, Profile

Clock = Callable[[], float]


class BusPart(Protocol):
    """The I/O half of a wire driver for the devices it owns (see the module docstring)."""

    devices: set[str]

    def health(self) -> dict[str, DeviceHealth]: ...

    def pulse(self, info: PointInfo) -> None: ...

    def check_rearm(self, info: PointInfo) -> None:
        """RearmRefused if the lock is inside the re-arm window of our own last pulse (no I/O)."""
        ...

    def probe(self, group: Sequence[PointInfo]) -> None:
        """One request to the device of `group` (locks of one device): DeviceOffline if it does
        not answer, RearmRefused if it shows a lock of the group already pulsing."""
        ...

    def pulse_group(self, group: Sequence[PointInfo]) -> None:
        """Pulse the locks of one device as close together as it allows; `GroupFailed`
        (adc/drivers/unlock.py) says what went out if not all of them did."""
        ...

    def lock_feedback(self, info: PointInfo) -> bool | None:
        """Engaged per the lock's own feedback; None where the hardware has none."""
        ...

    def read_output(self, info: PointInfo) -> bool: ...

    def write_output(self, info: PointInfo, on: bool) -> None: ...

    def read_input(self, info: PointInfo) -> bool: ...

    def read_weight(self, info: PointInfo) -> WeightReading: ...

    def read_temperature(self, info: PointInfo) -> TemperatureReading: ...

    def read_all(self, points: set[str]) -> dict[str, object]:
        """Decoded values of `points` it owns, read in as few requests as it can. A point of a
        device that did not answer is left out. Lock points map to their feedback where the
        hardware has it, else to the coil state."""
        ...

    def close(self) -> None: ...


class WireDriver:
    """A CabinetDriver over bus parts; every call is routed to the part owning the point's device."""

    def __init__(self, profile: Profile, parts: list[BusPart], clock: Clock = time.monotonic):
        self.profile = profile
        self.parts = parts
        self.clock = clock
        self._points = classify_points(profile)
        self._layout = cabinet_points(profile)
        self._owner: dict[str, BusPart] = {}
        for part in parts:
            for device in part.devices:
                self._owner[device] = part
        self._closed = False

    # ------------------------------------------------------------------------------------ ports
    def pulse(self, point: str) -> None:
        info, part = self._point(point, Use.LOCK)
        part.pulse(info)

    def unlock_together(self, points: Sequence[str]) -> None:
        """See `Locks.unlock_together`: every check first, then the pulses, then the account."""
        resolved = [self._point(p, Use.LOCK)[0] for p in points]
        groups = unlock_groups(resolved, self._layout.drawer_locks)
        for group in groups:
            for info in group:
                self._owner[info.ref.device].check_rearm(info)
        for group in groups:
            self._owner[group[0].ref.device].probe(group)
        pulse_groups(groups, lambda group: self._owner[group[0].ref.device].pulse_group(group))

    def lock_engaged(self, point: str) -> bool:
        info, part = self._point(point, Use.LOCK)
        feedback = part.lock_feedback(info)
        if feedback is not None:
            return feedback
        if part.read_output(info):
            return False
        return self.input_active(info.door_switch) if info.door_switch else True

    def input_active(self, point: str) -> bool:
        info, part = self._point(point, Use.INPUT)
        return part.read_input(info)

    def weight(self, point: str) -> WeightReading:
        info, part = self._point(point, Use.WEIGHT)
        return part.read_weight(info)

    def temperature(self, point: str) -> TemperatureReading:
        info, part = self._point(point, Use.ANALOG)
        return part.read_temperature(info)

    def set_light(self, point: str, on: bool) -> None:
        info, part = self._point(point, Use.LIGHT, Use.OUTPUT)
        part.write_output(info, on)

    def health(self) -> dict[str, DeviceHealth]:
        """A copy of each device's counters, every device of the profile included."""
        merged: dict[str, DeviceHealth] = {
            name: DeviceHealth(name) for name in self.profile.devices
        }
        for part in self.parts:
            merged.update({name: replace(h) for name, h in part.health().items()})
        return merged

    def snapshot(self) -> Snapshot:
        """Every point the layout uses, each bus read with the fewest requests its plan allows;
        a point of a device that does not answer maps to None."""
        self._check_open()
        self._service()
        layout = self._layout
        wanted = set(layout.all())
        values: dict[str, object] = {}
        for part in self.parts:
            values.update(part.read_all(wanted & self._points_of(part)))
        snap = Snapshot(time=self.clock())
        for lock in layout.locks:
            snap.locks_engaged[lock] = self._engaged_from(self._points[lock], values)
        snap.inputs = {p: values.get(p) for p in layout.inputs}  # type: ignore[misc]
        snap.weights = {p: values.get(p) for p in layout.weights}  # type: ignore[misc]
        snap.temperatures = {p: values.get(p) for p in layout.temperatures}  # type: ignore[misc]
        snap.lights = {p: values.get(p) for p in layout.lights}  # type: ignore[misc]
        snap.health = self.health()
        return snap

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for part in self.parts:
            part.close()

    def __enter__(self) -> WireDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- helpers
    def _engaged_from(self, info: PointInfo, values: dict[str, object]) -> bool | None:
        part = self._owner[info.ref.device]
        value = values.get(info.text)
        if value is None:
            return None
        if getattr(part, "has_feedback", False):
            return bool(value)
        if value:  # the coil is on: the pulse is releasing the latch
            return False
        if info.door_switch is None:
            return True
        door = values.get(info.door_switch)
        return None if door is None else bool(door)

    def _points_of(self, part: BusPart) -> set[str]:
        return {text for text, info in self._points.items() if info.ref.device in part.devices}

    def _check_open(self) -> None:
        if self._closed:
            raise DriverError(f"the wire driver of {self.profile.name} is closed")

    def _service(self) -> None:
        """Deferred work a part owns that is due now (a latched coil to switch off)."""
        for part in self.parts:
            service = getattr(part, "service", None)
            if service is not None:
                service()

    def _point(self, point: str, *uses: Use) -> tuple[PointInfo, BusPart]:
        self._check_open()
        self._service()
        info = find_point(self.profile, self._points, point)
        device = info.ref.device
        part = self._owner.get(device)
        if part is None:
            bus = self.profile.devices[device].bus
            raise UnknownPoint(
                point, f"bus {bus} of device {device} is not opened by this backend", device=device
            )
        if info.use not in uses:
            raise WrongPointRole(point, " or ".join(u.value for u in uses), info.use.value)
        return info, part


# --------------------------------------------------------------------------------- opening
def parse_query(target: str) -> tuple[str, dict[str, str]]:
    """`HOST:PORT?a=1&b=2` → ('HOST:PORT', {'a': '1', 'b': '2'})."""
    base, _, query = target.partition("?")
    return base, {key: values[-1] for key, values in parse_qs(query).items()}


def clock_option(options: dict[str, object]) -> Clock:
    clock = options.pop("clock", None) or time.monotonic
    if not callable(clock):
        raise BadInput("the clock option must be a callable returning seconds")
    return clock  # type: ignore[return-value]


Wait = Callable[[float], None]


def wait_option(options: dict[str, object], clock: Clock) -> Wait | None:
    """How a driver lets time pass while it waits on the hardware (a bolt's retract time): the
    `wait` option (a callable taking seconds; a test passes the function that advances its
    simulated cabinet), else real sleeping when the clock is the real one, else None (a caller-
    owned clock that stands still during the call: the driver does not wait)."""
    wait = options.pop("wait", None)
    if wait is None:
        return time.sleep if clock is time.monotonic else None
    if not callable(wait):
        raise BadInput("the wait option must be a callable taking seconds")
    return wait  # type: ignore[return-value]


def open_profile_buses(
    profile: Profile,
    *,
    ports: dict[str, str] | None = None,
    clock: Clock = time.monotonic,
    timeout_s: float | None = None,
    only: set[str] | None = None,
    wait: Wait | None = None,
) -> WireDriver:
    """A WireDriver with a part for every bus of the profile (or the buses in `only`).

    `ports` overrides where a bus is: a serial port / pyserial URL / pty path for serial buses,
    `HOST:PORT` for TCP buses. `timeout_s` overrides every bus's reply timeout.
    """
    from adc.drivers.lockboard import LockboardPart, lockboard_client
    from adc.drivers.modbus import ModbusPart, modbus_client

    if wait is None and clock is time.monotonic:
        wait = time.sleep  # real time: the driver waits on the hardware itself

    ports = dict(ports or {})
    unknown = set(ports) - set(profile.buses)
    if unknown:
        raise BadInput(
            f"profile {profile.name} has no bus {', '.join(sorted(unknown))}; "
            f"its buses: {', '.join(profile.buses)}"
        )
    parts: list[BusPart] = []
    try:
        for name, bus in profile.buses.items():
            if only is not None and name not in only:
                continue
            devices = set(profile.devices_on(name))
            if isinstance(bus, LockboardBus):
                client = lockboard_client(name, bus, ports.get(name), timeout_s, clock)
                parts.append(LockboardPart(profile, {name: client}, devices, clock, wait))
            else:
                assert isinstance(bus, ModbusRtuBus | ModbusTcpBus)
                client = modbus_client(name, bus, ports.get(name), timeout_s, clock)
                parts.append(ModbusPart(profile, {name: client}, devices, clock))
    except BaseException:
        for part in parts:
            part.close()
        raise
    return WireDriver(profile, parts, clock)


def _load(target: str, profile: Profile | None) -> Profile:
    if target:
        from adc.profiles import load_profile, resolve_profile_path

        return load_profile(resolve_profile_path(target))
    if profile is None:
        raise BadInput("profile: needs a profile: profile:NAME-OR-PATH, or a profile passed in")
    return profile


def open_backend(target: str, profile: Profile | None = None, **options: object) -> WireDriver:
    """Registry factory for `profile:[NAME-OR-PATH][?BUS=PORT...]`: open every bus the profile
    names, at the profile's ports unless a query parameter or the `ports` option moves one.
    Options: `ports` (dict bus → port), `clock` (callable, seconds), `timeout_s` (float),
    `wait` (callable taking seconds: how the driver lets time pass; see `wait_option`)."""
    base, query = parse_query(target)
    opts = dict(options)
    clock = clock_option(opts)
    wait = wait_option(opts, clock)
    ports = dict(opts.pop("ports", None) or {})  # type: ignore[call-overload]
    timeout = opts.pop("timeout_s", None)
    if opts:
        raise BadInput(f"the profile backend has no option {', '.join(sorted(opts))}")
    ports.update(query)
    return open_profile_buses(
        _load(base, profile),
        ports=ports,
        clock=clock,
        timeout_s=float(timeout) if timeout is not None else None,  # type: ignore[arg-type]
        wait=wait,
    )
