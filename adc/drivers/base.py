"""The driver port: what the controller may ask of cabinet hardware, split by capability.

Every backend (the in-process virtual cabinet, the Modbus and lock-board wire drivers, real hardware)
implements these Protocols, and one contract suite (tests/contract/) holds them all to the same
behaviour. Points are named as in the hardware profile (`DEVICE:FAMILY.INDEX`); the controller reads
which point locks, senses or lights a pocket from the profile and never learns which backend answers.

Rules every backend follows:
- No call sleeps or waits for a person: the caller (CLI session, scenario process) owns waiting.
- A value that cannot be trusted is never returned as if it could: a device that does not answer
  raises `DeviceOffline` (and its health says so); a doubtful weight comes back with a quality flag.
- Errors name the point and the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from adc.errors import AdcError, Refused

if TYPE_CHECKING:
    from adc.profiles.models import Profile


# ------------------------------------------------------------------------------------------ errors
class DriverError(AdcError):
    """Base of hardware errors; exit code 2 (a device problem is not a refused rule)."""

    exit_code = 2


def _device_of(point: str) -> str:
    """The device part of `DEVICE:FAMILY.INDEX` (the whole text when it has no colon)."""
    return point.partition(":")[0]


class UnknownPoint(DriverError):
    """A point that the profile or the backend does not have (or cannot serve)."""

    def __init__(self, point: str, reason: str = "", *, device: str | None = None) -> None:
        super().__init__(f"unknown point {point}" + (f": {reason}" if reason else ""))
        self.point = point
        self.device = device if device is not None else _device_of(point)


class WrongPointRole(DriverError):
    """A point used for what it is not (pulsing an input, weighing a switch)."""

    def __init__(self, point: str, expected: str, actual: str) -> None:
        super().__init__(f"point {point} is {actual}, not {expected}")
        self.point = point
        self.device = _device_of(point)


class DeviceOffline(DriverError):
    """The device did not answer (timeout, power loss, unplugged)."""

    def __init__(self, device: str, detail: str = "", point: str | None = None) -> None:
        where = f"device {device}" + (f" (point {point})" if point else "")
        super().__init__(f"{where} does not answer" + (f": {detail}" if detail else ""))
        self.device = device
        self.point = point


class DeviceFault(DriverError):
    """The device answered with an error (Modbus exception, lock-board fault, bad frame)."""

    def __init__(self, device: str, detail: str, point: str | None = None) -> None:
        where = f"device {device}" + (f" (point {point})" if point else "")
        super().__init__(f"{where}: {detail}")
        self.device = device
        self.point = point


class LockNotReleased(DeviceFault):
    """An unlock went out (once; it is never repeated) and the lock's own feedback never showed
    the bolt out before the end of its pulse: the lock is not released (jammed, or the board
    did not take the command). Raised by `pulse` on hardware with lock feedback (CU16 boards)."""

    def __init__(self, device: str, point: str, waited_ms: float) -> None:
        super().__init__(
            device,
            f"lock {point} not released: its feedback still showed the bolt in "
            f"{waited_ms:.0f} ms after the unlock (sent once, not repeated)",
            point,
        )


class RearmRefused(Refused):
    """A solenoid pulse inside its re-arm window: refused, as real boards do, to spare the coil."""

    def __init__(self, point: str, remaining_ms: float) -> None:
        super().__init__(f"lock {point} is re-arming: next pulse allowed in {remaining_ms:.0f} ms")
        self.point = point
        self.device = _device_of(point)
        self.remaining_ms = remaining_ms


class PartialUnlock(DriverError):
    """`unlock_together` released some of its locks and then failed: exactly which were released.

    `released`: the pulses the devices took (those latches are open for their pulse now);
    `not_released`: every other lock asked for — refused, never sent, or sent without a sound
    answer; `unconfirmed` is the part of `not_released` that was sent and not answered (it may
    have pulsed: treat it as possibly open). `cause` is the typed error of the lock that failed
    (`RearmRefused`, `DeviceOffline`, `DeviceFault`); `point` and `device` name that lock.
    Raised only when something was released: a failure before any pulse went out raises the
    typed error itself.
    """

    def __init__(
        self,
        released: Sequence[str],
        not_released: Sequence[str],
        cause: AdcError,
        unconfirmed: Sequence[str] = (),
    ) -> None:
        self.released = tuple(released)
        self.not_released = tuple(not_released)
        self.unconfirmed = tuple(p for p in not_released if p in set(unconfirmed))
        self.cause = cause
        self.point: str = getattr(cause, "point", None) or self.not_released[0]
        self.device: str = getattr(cause, "device", None) or _device_of(self.point)
        sure = [p for p in self.not_released if p not in self.unconfirmed]
        parts = [f"released {', '.join(self.released)}"]
        if sure:
            parts.append(f"not released {', '.join(sure)}")
        if self.unconfirmed:
            parts.append(f"sent but not confirmed {', '.join(self.unconfirmed)}")
        super().__init__(
            f"unlock incomplete: {'; '.join(parts)} ({cause.message})",
            details=[f"released: {p}" for p in self.released]
            + [f"not released: {p}" for p in sure]
            + [f"not confirmed (may have pulsed): {p}" for p in self.unconfirmed],
        )


class BackendUnavailable(DriverError):
    """A backend whose URI is known but which cannot be used here (missing dependency, bad URI)."""


# ---------------------------------------------------------------------------------------- readings
class Quality(StrEnum):
    """How far a sensor reading can be trusted."""

    OK = "ok"
    UNSTABLE = "unstable"  # still settling (drawer just moved, noise above the device's limit)
    OVERLOAD = "overload"  # beyond the cell's capacity
    FAULT = "fault"  # the device reports a fault for this channel


@dataclass(frozen=True)
class WeightReading:
    grams: float
    quality: Quality = Quality.OK


@dataclass(frozen=True)
class TemperatureReading:
    celsius: float
    quality: Quality = Quality.OK


@dataclass
class DeviceHealth:
    """Counters a service engineer reads; `online` is False once a device stops answering."""

    device: str
    online: bool = True
    requests: int = 0
    timeouts: int = 0
    errors: int = 0  # exception replies, bad checksums, malformed frames
    retries: int = 0
    last_seen: float | None = None  # backend clock, seconds
    last_error: str | None = None


@dataclass
class Snapshot:
    """The whole cabinet at one moment. A point of an offline device maps to None."""

    time: float
    locks_engaged: dict[str, bool | None] = field(default_factory=dict)  # output point → engaged
    inputs: dict[str, bool | None] = field(default_factory=dict)  # input point → active
    weights: dict[str, WeightReading | None] = field(default_factory=dict)
    temperatures: dict[str, TemperatureReading | None] = field(default_factory=dict)
    lights: dict[str, bool | None] = field(default_factory=dict)
    health: dict[str, DeviceHealth] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ capabilities
@runtime_checkable
class Locks(Protocol):
    def pulse(self, point: str) -> None:
        """Energise a lock's solenoid for its profile pulse length (releases the latch).

        Raises RearmRefused inside the re-arm window (the driver's own limit: nothing is sent,
        whatever the device would accept), DeviceOffline, UnknownPoint, WrongPointRole. Where
        the lock has feedback and the driver can let time pass (a lock board on a real-time
        clock, or a `wait` option), the unlock is sent once and confirmed by reading the lock's
        status until its bolt shows out: LockNotReleased if it never does within the pulse.
        """
        ...

    def unlock_together(self, points: Sequence[str]) -> None:
        """Release several locks as one act (a drawer and its pocket's own lock or lid), or none.

        Before any pulse, everything that can be known is checked, and the first problem is
        raised, naming its point, with nothing pulsed: every point exists and is a lock
        (UnknownPoint, WrongPointRole), no lock is inside a re-arm window this driver knows of or
        has its coil on now (RearmRefused), every device answers (DeviceOffline, DeviceFault:
        one read per device). Then the pulses go out as close together as the hardware allows:
        one write-multiple-coils per Modbus device where the coils between them are all locks,
        else back-to-back single pulses (a CU16 board has no multi-lock frame). Pockets' own locks
        go before drawer locks, so a failure part-way leaves at worst a pocket latch released
        inside a drawer that stays shut (and relocks at the end of its pulse).

        If a later pulse still fails after an earlier one went out (a device refuses or stops
        answering in between), PartialUnlock says which locks were released and which were not.
        """
        ...

    def lock_engaged(self, point: str) -> bool:
        """True when the latch holds its door shut.

        Where the hardware has lock feedback (CU16 lock boards) this is the feedback bit. Where it
        has none (a Modbus DIO coil) it is inferred, the same way on every backend: released while
        the pulse is on or while the door the lock holds (its drawer, lid or door switch in the
        layout) reads open, engaged otherwise. So an open door is never reported locked; a lock
        that will not re-engage shows on such hardware only as a door that opens without a pulse.
        """
        ...


@runtime_checkable
class Switches(Protocol):
    def input_active(self, point: str) -> bool:
        """A binary input after polarity: True = closed / present / active."""
        ...


@runtime_checkable
class BinSensors(Protocol):
    def weight(self, point: str) -> WeightReading:
        """A load-cell channel in grams, with the device's own quality flag.

        The channel status word maps 0 → OK, 1 → UNSTABLE, 2 → OVERLOAD, 3 → FAULT. A FAULT
        reading may carry `nan` grams: use the quality, never the number, to decide.
        """
        ...

    def temperature(self, point: str) -> TemperatureReading: ...


@runtime_checkable
class Indicators(Protocol):
    def set_light(self, point: str, on: bool) -> None: ...


@runtime_checkable
class Health(Protocol):
    def health(self) -> dict[str, DeviceHealth]: ...


@runtime_checkable
class CabinetDriver(Locks, Switches, BinSensors, Indicators, Health, Protocol):
    """A whole cabinet behind one object; `profile` says what its points are."""

    profile: Profile

    def snapshot(self) -> Snapshot: ...

    def close(self) -> None: ...
