"""The in-process backend: the driver port over a VirtualCabinet, URI `sim:PROFILE[?seed=N]`.

It talks to the cabinet's register-level view (`adc.sim.devices`) the way the wire drivers talk to
real devices — coil and input bits, float32 register pairs, status words, lock-board status bits
with their polarity — only without a wire. So it decodes what the hardware says rather than peeking
at the model's truth, and a fault looks the same here as on the wire: a device that does not answer
is a `DeviceOffline` after the bus's retries, an exception reply a `DeviceFault`, a busy solenoid a
`RearmRefused`, a corrupted frame (the `bus_noise` fault: the request never reaches the device) an
error that is retried and counted in health.

Time: the driver never sleeps and never runs the SimPy environment on its own. Whoever owns time
advances it: a scenario process yields SimPy timeouts; a CLI command or a test calls
`driver.advance(seconds)` where real code would wait (it runs `cabinet.env` that far, instantly
unless the environment is a `RealtimeEnvironment`). Reads answer for `cabinet.env.now`; health's
`last_seen` is in the same SimPy seconds.

Lock state: a lock-board lock has feedback (its status bit). A DIO coil has none, so, as the port
says, `lock_engaged` is inferred: released while the coil is on or while the door the lock holds
(the drawer, lid or door switch the layout pairs it with) reads open.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

from adc.drivers.base import (
    DeviceFault,
    DeviceHealth,
    DeviceOffline,
    DriverError,
    Quality,
    RearmRefused,
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
from adc.drivers.latched import LatchedOffWrites
from adc.drivers.modbus import _QUALITY, temperature_reading, weight_reading
from adc.drivers.unlock import (
    account_after_failed_write,
    coil_span,
    pulse_each,
    pulse_groups,
    unlock_groups,
)
from adc.errors import BadInput
from adc.profiles import load_profile, resolve_profile_path
from adc.profiles.models import (
    LockboardCU16,
    ModbusDIO,
    ModbusLoadcell,
    Polarity,
    Profile,
    RegisterBlock,
)
from adc.profiles.points import point_families
from adc.sim.cabinet import VirtualCabinet
from adc.sim.devices import VirtualDIO, VirtualLoadcell, VirtualLockboard, float32_packers
from adc.sim.errors import DeviceBusy, VirtualDeviceOffline, VirtualHardwareError

if TYPE_CHECKING:
    import simpy

T = TypeVar("T")


class SimDriver:
    """`CabinetDriver` over a VirtualCabinet's devices; see the module docstring."""

    def __init__(self, profile: Profile, cabinet: VirtualCabinet) -> None:
        self.profile = profile
        self.cabinet = cabinet
        self._points = classify_points(profile)
        self._layout = cabinet_points(profile)
        self._drawer_locks = self._layout.drawer_locks
        _check_served(profile, cabinet)
        self._health = {name: DeviceHealth(device=name) for name in profile.devices}
        self._closed = False
        # Decoded once, since the profile does not change while the driver is open: the
        # snapshot's point names per device and family, each device's counters, bus and attempts
        # per request, each device's snapshot read (its requests worked out), each snapshot lock
        # with how to read it, and every point a caller has named (by the spelling it used).
        self._names = {name: _point_names(name, model) for name, model in profile.devices.items()}
        self._routes = {
            name: (self._health[name], model.bus, profile.buses[model.bus].retries + 1)
            for name, model in profile.devices.items()
        }
        self._device_reads = [
            self._device_read(name, model) for name, model in profile.devices.items()
        ]
        self._snapshot_locks = [
            _SnapshotLock(
                text,
                isinstance(profile.devices[self._points[text].ref.device], LockboardCU16),
                self._points[text].door_switch,
            )
            for text in self._layout.locks
        ]
        self._lock_rows = [
            (lock.text, lock.has_feedback, lock.door_switch) for lock in self._snapshot_locks
        ]
        self._found: dict[str, PointInfo] = {}
        self._last_pulse: dict[str, float] = {}  # lock point → start of our last pulse (env.now)
        self._latched = LatchedOffWrites(
            lambda: self.cabinet.env.now,
            self._coil_off,
            self._coil_on,
            lambda device: self._health[device],
        )

    # ------------------------------------------------------------------------------------- time
    @property
    def now(self) -> float:
        """The backend clock: SimPy seconds."""
        return self.cabinet.env.now

    def advance(self, seconds: float) -> None:
        """Let SimPy time pass where real code would wait (the driver itself never waits)."""
        self.cabinet.run(seconds)

    # ------------------------------------------------------------------------------------ ports
    def pulse(self, point: str) -> None:
        info = self._point(point, Use.LOCK)
        self._check_rearm(info)  # the driver's own limit, whatever the device would accept
        device = self.cabinet.device(info.ref.device)
        latched = self._is_latched(info)
        if latched:
            self._latched.check(info)
        try:
            if isinstance(device, VirtualLockboard):
                self._call(info, lambda: device.unlock(info.ref.index))
            else:
                address = self._model(info, ModbusDIO).coils.start + info.ref.index
                self._call(info, lambda: device.write_coil(address, True))
        except _Busy as busy:
            raise RearmRefused(info.text, busy.retry_after_s * 1000) from None
        self._last_pulse[info.text] = self.now
        if latched:
            pulse_s = self._model(info, ModbusDIO).solenoid.pulse_ms / 1000
            self._latched.started(info, pulse_s)
            self.cabinet.env.process(self._switch_off_later(pulse_s))

    # -------------------------------------------------------------------- latched DIO coils
    def _is_latched(self, info: PointInfo) -> bool:
        model = self.profile.devices[info.ref.device]
        return isinstance(model, ModbusDIO) and model.coil_mode == "latched"

    def _switch_off_later(self, delay: float) -> Generator[simpy.Event, Any, None]:
        """The driver's timer on the cabinet's clock: the off-write is due `delay` from now."""
        yield self.cabinet.env.timeout(delay)
        self._latched.service()

    def _coil_address(self, info: PointInfo) -> int:
        return self._model(info, ModbusDIO).coils.start + info.ref.index

    def _coil_off(self, info: PointInfo) -> None:
        address = self._coil_address(info)
        self._call(info, lambda: self._dio(info).write_coil(address, False))

    def _coil_on(self, info: PointInfo) -> bool:
        address = self._coil_address(info)
        return bool(self._call(info, lambda: self._dio(info).read_bits("coils", address, 1))[0])

    def unlock_together(self, points: Sequence[str]) -> None:
        """See `Locks.unlock_together`: every check first, then the pulses, then the account."""
        groups = unlock_groups([self._point(p, Use.LOCK) for p in points], self._drawer_locks)
        for group in groups:
            for info in group:
                self._check_rearm(info)
        for group in groups:
            self._probe(group)
        pulse_groups(groups, self._pulse_group)

    def lock_engaged(self, point: str) -> bool:
        info = self._point(point, Use.LOCK)
        model = self.profile.devices[info.ref.device]
        if isinstance(model, LockboardCU16):
            locks, _ = self._lockboard_status(info)
            return bool(locks >> info.ref.index & 1) != (model.lock_polarity is Polarity.ACTIVE_LOW)
        address = self._model(info, ModbusDIO).coils.start + info.ref.index
        coil_on = self._call(info, lambda: self._dio(info).read_bits("coils", address, 1))[0]
        if coil_on:
            return False
        return self.input_active(info.door_switch) if info.door_switch else True

    def input_active(self, point: str) -> bool:
        info = self._point(point, Use.INPUT)
        model = self.profile.devices[info.ref.device]
        if isinstance(model, LockboardCU16):
            _, inputs = self._lockboard_status(info)
            bit = bool(inputs >> info.ref.index & 1)
        else:
            address = self._model(info, ModbusDIO).discrete_inputs.start + info.ref.index
            bit = self._call(
                info, lambda: self._dio(info).read_bits("discrete_inputs", address, 1)
            )[0]
        return bit != (model.input_polarity is Polarity.ACTIVE_LOW)

    def weight(self, point: str) -> WeightReading:
        info = self._point(point, Use.WEIGHT)
        model = self._model(info, ModbusLoadcell)
        device = self.cabinet.device(info.ref.device)
        assert isinstance(device, VirtualLoadcell)
        i = info.ref.index
        words = self._call(
            info, lambda: device.read_registers("input", model.weight_start + 2 * i, 2)
        )
        status = self._call(info, lambda: device.read_registers("input", model.status_start + i, 1))
        return weight_reading(words, status[0], model.word_order)

    def temperature(self, point: str) -> TemperatureReading:
        info = self._point(point, Use.ANALOG)
        model = self._model(info, ModbusDIO)
        assert model.analog_inputs is not None
        address = model.analog_inputs.start + info.ref.index
        raw = self._call(info, lambda: self._dio(info).read_registers("input", address, 1))[0]
        return temperature_reading(raw, model)

    def set_light(self, point: str, on: bool) -> None:
        info = self._point(point, Use.LIGHT, Use.OUTPUT)
        address = self._model(info, ModbusDIO).coils.start + info.ref.index
        self._call(info, lambda: self._dio(info).write_coil(address, on))

    def health(self) -> dict[str, DeviceHealth]:
        """A copy of each device's counters (the caller may keep it as a record)."""
        return {name: _copy_health(h) for name, h in self._health.items()}

    def snapshot(self) -> Snapshot:
        """Every point the layout uses, at `env.now`, read in blocks as large as each device
        answers (one request per table per device where it allows); a point of a device that
        does not answer (or answers garbage) maps to None."""
        self._check_open()
        self._latched.service()
        values: dict[str, object] = {}
        for read in self._device_reads:
            try:
                values.update(read())
            except (DeviceOffline, DeviceFault):
                continue
        layout = self._layout
        return Snapshot(
            time=self.now,
            locks_engaged=self._locks_engaged(values),
            inputs=_pick(values, layout.inputs),
            weights=_pick(values, layout.weights),
            temperatures=_pick(values, layout.temperatures),
            lights=_pick(values, layout.lights),
            health=self.health(),
        )

    def _locks_engaged(self, values: dict[str, object]) -> dict[str, bool | None]:
        """Each snapshot lock's state from the snapshot's values, as `_SnapshotLock.engaged`."""
        get = values.get
        engaged: dict[str, bool | None] = {}
        for text, has_feedback, door_switch in self._lock_rows:
            if has_feedback:
                engaged[text] = get(text)  # type: ignore[assignment]
                continue
            coil_on = get(text)
            switch = get(door_switch) if door_switch else True
            engaged[text] = (
                None if coil_on is None or switch is None else bool(switch) and not coil_on
            )
        return engaged

    def _device_read(
        self, name: str, model: LockboardCU16 | ModbusDIO | ModbusLoadcell
    ) -> Callable[[], dict[str, object]]:
        """The snapshot's read of one device: decoded values of all its points, keyed by point
        text. What the profile fixes (point names, polarity, the requests that cover each block
        within the device's read limit) is worked out here, once, not on every snapshot."""
        device = self.cabinet.device(name)
        names = self._names[name]
        if isinstance(model, LockboardCU16):
            assert isinstance(device, VirtualLockboard)
            return functools.partial(
                self._read_lockboard,
                name,
                device.status,
                names["lock"],
                names["input"],
                model.lock_polarity is Polarity.ACTIVE_LOW,
                model.input_polarity is Polarity.ACTIVE_LOW,
            )
        if isinstance(model, ModbusDIO):
            assert isinstance(device, VirtualDIO)
            bits, registers = model.max_read_bits, model.max_read_registers
            return functools.partial(
                self._read_dio,
                name,
                device,
                model,
                _BlockRead(names["coil"], _requests(model.coils, bits)),
                _BlockRead(names["di"], _requests(model.discrete_inputs, bits)),
                None
                if model.analog_inputs is None
                else _BlockRead(names["ai"], _requests(model.analog_inputs, registers)),
            )
        assert isinstance(device, VirtualLoadcell)
        limit = model.max_read_registers
        channels = len(names["ch"])
        return functools.partial(
            self._read_loadcell,
            name,
            device.read_registers,
            names["ch"],
            _requests(model.weight_block(), limit),
            _requests(model.status_block(), limit),
            float32_packers(channels, model.word_order)[channels],
        )

    def _read_lockboard(
        self,
        name: str,
        status: Callable[[], tuple[int, int]],
        locks: list[str],
        inputs: list[str],
        lock_low: bool,
        input_low: bool,
    ) -> dict[str, object]:
        lock_bits, input_bits = self._call(name, status)
        out: dict[str, object] = dict(
            zip(locks, _flags(lock_bits, len(locks), lock_low), strict=True)
        )
        out.update(zip(inputs, _flags(input_bits, len(inputs), input_low), strict=True))
        return out

    def _read_dio(
        self,
        name: str,
        device: VirtualDIO,
        model: ModbusDIO,
        coils: _BlockRead,
        inputs: _BlockRead,
        analogs: _BlockRead | None,
    ) -> dict[str, object]:
        """The device answers bools (its read_bits surface), so only the input polarity is
        applied here."""
        read = device.read_bits
        values = self._read_requests(name, coils.requests, read, "coils")
        out: dict[str, object] = dict(zip(coils.points, values, strict=True))
        values = self._read_requests(name, inputs.requests, read, "discrete_inputs")
        if model.input_polarity is Polarity.ACTIVE_LOW:
            values = [not v for v in values]
        out.update(zip(inputs.points, values, strict=True))
        if analogs is not None:
            regs = self._read_requests(name, analogs.requests, device.read_registers, "input")
            out.update(
                zip(analogs.points, [temperature_reading(v, model) for v in regs], strict=True)
            )
        return out

    def _read_loadcell(
        self,
        name: str,
        read: Callable[[str, int, int], list[int]],
        points: list[str],
        weight_requests: tuple[tuple[int, int], ...],
        status_requests: tuple[tuple[int, int], ...],
        decode: tuple[struct.Struct, struct.Struct],
    ) -> dict[str, object]:
        """Every channel's float32 decoded at once (`decode`: its packers in the word order):
        what `weight_reading` gives one by one."""
        words = self._read_requests(name, weight_requests, read, "input")
        status = self._read_requests(name, status_requests, read, "input")
        floats, packed = decode
        grams = floats.unpack(packed.pack(*words[: 2 * len(points)]))
        quality = _QUALITY.get
        return {
            point: _weight_reading(g, quality(s, Quality.FAULT))
            for point, g, s in zip(points, grams, status, strict=True)
        }

    def _read_requests(
        self,
        name: str,
        requests: tuple[tuple[int, int], ...],
        read: Callable[[str, int, int], list[T]],
        table: str,
    ) -> list[T]:
        """A whole block by its `(start, count)` requests: its values in address order (a list,
        not a dict by address: the callers index by offset)."""
        if len(requests) == 1:  # the usual case: the device's own list, uncopied
            start, count = requests[0]
            return self._call(name, read, table, start, count)
        out: list[T] = []
        for start, count in requests:
            out.extend(self._call(name, read, table, start, count))
        return out

    def close(self) -> None:
        """Nothing to release in-process; later calls are refused."""
        self._closed = True

    # ------------------------------------------------------------------------ unlock_together
    def _rearm_ms(self, info: PointInfo) -> float:
        model = self.profile.devices[info.ref.device]
        assert isinstance(model, LockboardCU16 | ModbusDIO)
        return max(model.solenoid.rearm_ms, model.solenoid.pulse_ms)

    def _check_rearm(self, info: PointInfo) -> None:
        """RearmRefused for a lock inside the re-arm window of our own last pulse (no I/O)."""
        last = self._last_pulse.get(info.text)
        if last is None:
            return
        left = self._rearm_ms(info) - (self.now - last) * 1000
        if left > 0:
            raise RearmRefused(info.text, left)

    def _lock_coils(self, group: Sequence[PointInfo]) -> tuple[int, list[int]]:
        """(first index, coil bits from it to the group's last lock), in as few reads as the
        device's read limit allows (one for any group a drawer and its pocket make)."""
        model = self._model(group[0], ModbusDIO)
        dio = self._dio(group[0])
        first = min(info.ref.index for info in group)
        count = max(info.ref.index for info in group) - first + 1
        bits: list[int] = []
        for offset in range(0, count, model.max_read_bits):
            n = min(model.max_read_bits, count - offset)
            start = model.coils.start + first + offset
            bits += self._call(group[0], lambda s=start, n=n: dio.read_bits("coils", s, n))
        return first, bits

    def _probe(self, group: Sequence[PointInfo]) -> None:
        """One read of the group's device: it must answer, and no lock coil of ours may be on
        (a pulse someone else started; the device would refuse ours)."""
        device = self.cabinet.device(group[0].ref.device)
        if isinstance(device, VirtualLockboard):
            self._call(group[0], device.status)
            return
        first, bits = self._lock_coils(group)
        for info in group:
            if bits[info.ref.index - first]:
                raise RearmRefused(info.text, self._rearm_ms(info))

    def _pulse_group(self, group: Sequence[PointInfo]) -> None:
        """A DIO group whose coils between are all locks: one write of the whole run (1 for ours,
        0 — ignored by a pulse output — for the others between); anything else back to back."""
        span = coil_span(group, self._points)
        one_by_one = isinstance(self.cabinet.device(group[0].ref.device), VirtualLockboard)
        if span is None or one_by_one or self._is_latched(group[0]):
            pulse_each(group, lambda info: self.pulse(info.text))
            return
        first, last = span
        dio = self._dio(group[0])
        start = self._model(group[0], ModbusDIO).coils.start
        ours = {info.ref.index for info in group}

        def write() -> None:  # one request: a write-multiple-coils of the run (all or nothing)
            dio.write_coils(start + first, [index in ours for index in range(first, last + 1)])

        try:
            self._call(group[0], write)
        except (_Busy, DeviceOffline, DeviceFault) as err:
            busy_ms = err.retry_after_s * 1000 if isinstance(err, _Busy) else None
            cause = (
                err if isinstance(err, DriverError) else RearmRefused(group[0].text, busy_ms or 0)
            )
            released, failed = account_after_failed_write(
                group, first, cause, lambda: self._lock_coils(group)[1], busy_ms
            )
            for info in released:
                self._last_pulse[info.text] = self.now
            if failed is not None:
                raise failed from None
            return
        for info in group:
            self._last_pulse[info.text] = self.now

    # ---------------------------------------------------------------------------------- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise DriverError(f"the sim backend of {self.profile.name} is closed")

    def _point(self, point: str, *uses: Use) -> PointInfo:
        self._check_open()
        self._latched.service()
        info = self._found.get(point)
        if info is None:
            info = self._found[point] = find_point(self.profile, self._points, point)
        if info.use not in uses:
            raise WrongPointRole(point, " or ".join(u.value for u in uses), info.use.value)
        return info

    def _model(self, info: PointInfo, kind: type[T]) -> T:
        model = self.profile.devices[info.ref.device]
        assert isinstance(model, kind)
        return model

    def _dio(self, info: PointInfo) -> VirtualDIO:
        device = self.cabinet.device(info.ref.device)
        assert isinstance(device, VirtualDIO)
        return device

    def _lockboard_status(self, info: PointInfo) -> tuple[int, int]:
        device = self.cabinet.device(info.ref.device)
        assert isinstance(device, VirtualLockboard)
        return self._call(info, device.status)

    def _call(self, info: PointInfo | str, action: Callable[..., T], *args: object) -> T:
        """One request, `action(*args)`, with the bus's retries, counted in the device's health.
        The bus's noise is looked up once: nothing the attempts do can change it."""
        if isinstance(info, str):
            device, point = info, None
        else:
            device, point = info.ref.device, info.text
        health, bus, attempts = self._routes[device]
        health.requests += 1
        timed_out = False
        noise = self.cabinet.bus_noise(bus)
        for attempt in range(attempts):
            if attempt:
                health.retries += 1
            if noise and self.cabinet.rng_for(bus).random() < noise:
                health.errors += 1
                health.last_error = "corrupted frame (bad checksum)"
                timed_out = False
                continue
            try:
                result = action(*args)
            except VirtualDeviceOffline as err:
                health.timeouts += 1
                health.last_error = f"timeout: {err.detail}"
                timed_out = True
                continue
            except DeviceBusy as err:
                self._answered(health)
                raise _Busy(err.retry_after_s) from None
            except VirtualHardwareError as err:
                self._answered(health)
                health.errors += 1
                health.last_error = f"exception {err.modbus_code}: {err.detail}"
                raise DeviceFault(device, health.last_error, point) from None
            health.online = True  # `_answered`, written out: every request of a snapshot
            health.last_seen = self.cabinet.env.now
            return result
        if timed_out:
            health.online = False
            raise DeviceOffline(device, f"no answer after {attempts} attempt(s)", point)
        raise DeviceFault(
            device, f"no valid reply in {attempts} attempt(s): corrupted frames", point
        )

    def _answered(self, health: DeviceHealth) -> None:
        health.online = True
        health.last_seen = self.cabinet.env.now


@dataclass(frozen=True)
class _SnapshotLock:
    """A lock a snapshot reports, and how its state is read from the snapshot's values: a
    lock-board lock from its feedback bit; a DIO lock (no feedback) is engaged while its coil
    is off and the door it holds (`door_switch`, if the layout pairs one) reads shut."""

    text: str
    has_feedback: bool
    door_switch: str | None

    def engaged(self, values: dict[str, object]) -> bool | None:
        if self.has_feedback:
            return values.get(self.text)  # type: ignore[return-value]
        coil_on = values.get(self.text)
        switch = values.get(self.door_switch) if self.door_switch else True
        if coil_on is None or switch is None:
            return None
        return bool(switch) and not coil_on


@dataclass(frozen=True)
class _BlockRead:
    """A register block as a snapshot reads it: its point texts, in address order, and the
    `(start, count)` requests that cover it within the device's read limit."""

    points: list[str]
    requests: tuple[tuple[int, int], ...]


def _requests(block: RegisterBlock, limit: int) -> tuple[tuple[int, int], ...]:
    """`block` in as few requests as the read limit allows, in address order."""
    return tuple(
        (start, min(limit, block.end - start)) for start in range(block.start, block.end, limit)
    )


def _pick(values: dict[str, object], keys: list[str]) -> dict[str, Any]:
    """The values of `keys`, None where `values` has none."""
    get = values.get
    return {key: get(key) for key in keys}


def _flags(bits: int, n: int, active_low: bool) -> list[bool]:
    """`[bool(bits >> i & 1) != active_low for i in range(n)]`, read off the binary digits
    (bit i is the i-th digit from the right of the n lowest bits' text)."""
    active = "0" if active_low else "1"
    digits = f"{bits & ((1 << n) - 1):0{n}b}"[::-1][:n]  # [:n]: n = 0 still writes a "0"
    return [digit == active for digit in digits]


def _weight_reading(grams: float, quality: Quality) -> WeightReading:
    """`WeightReading(grams, quality)` at a fraction of the cost (a snapshot makes one per
    channel): the same fields set in the same order, without the frozen dataclass's
    `object.__setattr__` calls."""
    reading = object.__new__(WeightReading)
    fields = reading.__dict__
    fields["grams"] = grams
    fields["quality"] = quality
    return reading


def _copy_health(health: DeviceHealth) -> DeviceHealth:
    """`dataclasses.replace(health)` at a fraction of the cost (a snapshot copies every
    device's counters)."""
    new = object.__new__(DeviceHealth)
    new.__dict__.update(health.__dict__)
    return new


def _point_names(
    name: str, model: LockboardCU16 | ModbusDIO | ModbusLoadcell
) -> dict[str, list[str]]:
    """A device's point texts by family, in index order (`{"coil": ["dio1:coil.0", ...], ...}`)."""
    return {
        family: [f"{name}:{family}.{i}" for i in range(count)]
        for family, (_, count) in point_families(model).items()
    }


class _Busy(Exception):
    """Internal: a DeviceBusy reply, turned into RearmRefused by `pulse` (which knows the point)."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


def _check_served(profile: Profile, cabinet: VirtualCabinet) -> None:
    """Every point the profile's devices declare must exist, alike, on the cabinet's devices."""
    for name, device in profile.devices.items():
        served = cabinet.profile.devices.get(name)
        if served is None or served.kind != device.kind:
            what = "has no device" if served is None else f"has a {served.kind} as"
            first = next(iter(point_families(device)))
            raise UnknownPoint(
                f"{name}:{first}.0",
                f"the virtual cabinet ({cabinet.profile.name}) {what} {name}, "
                f"the profile a {device.kind}: the backend cannot serve it",
                device=name,
            )
        theirs = point_families(served)
        for family, (role, count) in point_families(device).items():
            served_role, served_count = theirs.get(family, (role, 0))
            if served_count < count or served_role != role:
                raise UnknownPoint(
                    f"{name}:{family}.{served_count}",
                    f"the virtual cabinet ({cabinet.profile.name}) has {family}.0 to "
                    f"{family}.{served_count - 1} on {name}: the backend cannot serve it",
                    device=name,
                )


def open_backend(target: str, profile: Profile | None = None, **options: object) -> SimDriver:
    """Registry factory for `sim:PROFILE[?seed=N]`.

    The profile is the URI's (a shipped name or a path), else `profile`, else that of the
    `cabinet` option. Options: `seed` (int, default 0), `cabinet` (an existing VirtualCabinet to
    drive, e.g. one the wire emulators also serve), `env` (a SimPy environment for a new cabinet).
    """
    name, _, query = target.partition("?")
    params = {key: values[-1] for key, values in parse_qs(query).items()}
    unknown = (set(options) | set(params)) - {"seed", "cabinet", "env"}
    if unknown:
        raise BadInput(f"the sim backend has no option {', '.join(sorted(unknown))}")
    seed_text = options.get("seed", params.get("seed", 0))
    try:
        seed = int(seed_text)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise BadInput(f"sim backend seed must be an integer, not {seed_text!r}") from None
    cabinet = options.get("cabinet")
    if cabinet is not None and not isinstance(cabinet, VirtualCabinet):
        raise BadInput("the sim backend's cabinet option must be a VirtualCabinet")
    if name:
        profile = load_profile(resolve_profile_path(name))
    elif profile is None:
        if cabinet is None:
            raise BadInput("sim: needs a profile: sim:PROFILE (a shipped name or a .toml path)")
        profile = cabinet.profile
    if cabinet is None:
        cabinet = VirtualCabinet(profile, env=options.get("env"), seed=seed)  # type: ignore[arg-type]
    return SimDriver(profile, cabinet)
