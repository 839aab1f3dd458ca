"""The physical parts of the virtual cabinet: latches, doors, pockets of items, load cells, probes.

These know nothing of registers or buses; `adc.sim.devices` puts a device's face on them and
`adc.sim.cabinet` wires them together from a profile. Everything runs in SimPy time (`env.now`,
seconds). State that changes on its own (a solenoid pulse ending) is a SimPy process; state that
is a function of time (fridge drift, load-cell noise, settling) is computed at `env.now` when read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from math import floor, fsum  # bound once: every channel of every snapshot uses them
from typing import Any

import simpy

from adc.sim.noise import GaussianLanes, gaussian

LOADCELL_SAMPLE_HZ = 10.0  # conversions per second: reads inside one period see the same value


class PowerSupply:
    """The cabinet's supply: when it is off no device answers and every solenoid drops out."""

    def __init__(self) -> None:
        self.on = True
        self.outages = 0  # how many times it went off; lets a timed restore end only its outage


class Solenoid:
    """A fail-secure solenoid latch: a pulse retracts the bolt, a spring pushes it back out.

    The bolt retracts `actuation_s` after the pulse starts and springs back when the pulse ends. A
    bolt that is out holds its door once the door is shut (a spring latch: shutting pushes past it).
    The coil must cool down: a pulse is refused until `rearm_s` after the previous one started.
    Faults: `jammed` (the bolt does not retract), `no_reengage` (once retracted it stays retracted).
    """

    def __init__(
        self, env: simpy.Environment, point: str, pulse_s: float, rearm_s: float, actuation_s: float
    ) -> None:
        self.env = env
        self.point = point
        self.pulse_s = pulse_s
        self.rearm_s = max(rearm_s, pulse_s)
        self.actuation_s = min(actuation_s, pulse_s)
        self.door: Door | None = None
        self.energised = False
        self.retracted = False
        self.jammed = False
        self.no_reengage = False
        self.pulses = 0
        self._last_start: float | None = None
        self._generation = 0  # a power cut ends the running pulse process's say over the bolt

    def rearm_remaining(self) -> float:
        """Seconds until the next pulse is allowed (0.0 when it is allowed now)."""
        if self._last_start is None:
            return 0.0
        return max(0.0, self._last_start + self.rearm_s - self.env.now)

    def try_pulse(self) -> float:
        """Start a pulse and return 0.0, or refuse and return the seconds left to re-arm."""
        remaining = self.rearm_remaining()
        if remaining > 0:
            return remaining
        self._last_start = self.env.now
        self.pulses += 1
        self.energised = True
        self._generation += 1
        self.env.process(self._pulse(self._generation))
        return 0.0

    def _pulse(self, generation: int) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.actuation_s)
        if generation != self._generation:
            return
        if not self.jammed:
            self.retracted = True
        yield self.env.timeout(self.pulse_s - self.actuation_s)
        if generation != self._generation:
            return
        self._drop_out()

    def hold(self) -> None:
        """A plain (latched) output switched on: energised until `let_go`, however long, with no
        re-arm check (a plain module does what it is told; the driver keeps the limits). The
        bolt retracts `actuation_s` after it starts."""
        if self.energised:
            return
        self._last_start = self.env.now
        self.pulses += 1
        self.energised = True
        self._generation += 1
        self.env.process(self._hold(self._generation))

    def _hold(self, generation: int) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.actuation_s)
        if generation == self._generation and not self.jammed:
            self.retracted = True

    def let_go(self) -> None:
        """A latched output switched off: the coil drops out, the spring pushes the bolt out."""
        if self.energised:
            self._generation += 1
            self._drop_out()

    def _drop_out(self) -> None:
        self.energised = False
        if not self.no_reengage:
            self.retracted = False

    def cut_power(self) -> None:
        """Power lost: the coil drops out at once and the spring pushes the bolt back out."""
        self._generation += 1
        self._drop_out()

    def set_no_reengage(self, on: bool) -> None:
        self.no_reengage = on
        if not on and not self.energised:
            self.retracted = False

    @property
    def holding(self) -> bool:
        """The bolt is out and its door (if any) is shut: the door cannot be opened."""
        return not self.retracted and (self.door is None or not self.door.is_open)


class Door:
    """What a person opens: a drawer, a lid, a cubie or fridge door, a return-bin flap.

    It opens only when pulled while its latch is retracted and its parent (the drawer it sits in)
    is open; it latches again when shut, as soon as its bolt is out.
    """

    def __init__(self, name: str, kind: str, parent: Door | None, latch: Solenoid | None) -> None:
        self.name = name
        self.kind = kind
        self.parent = parent
        self.latch = latch
        self.children: list[Door] = []
        self.is_open = False
        if parent is not None:
            parent.children.append(self)
        if latch is not None:
            latch.door = self

    def why_not_open(self) -> str | None:
        """Why a pull would not open it now, or None when it would."""
        if self.is_open:
            return None
        if self.parent is not None and not self.parent.is_open:
            return f"{self.parent.kind} {self.parent.name} is closed"
        if self.latch is not None and not self.latch.retracted:
            return f"it is locked ({self.latch.point})"
        return None


class Pocket:
    """The items in one pocket, each carrying its unit weight in grams."""

    def __init__(self, pocket_id: str, capacity: int) -> None:
        self.id = pocket_id
        self.capacity = capacity
        self.units: list[float] = []
        self.changed_at = -math.inf

    @property
    def load_g(self) -> float:
        return math.fsum(self.units)


@dataclass
class InputSlot:
    """One binary input point: what it senses (None = nothing wired) and an optional stuck value."""

    point: str
    sense: Callable[[], bool] | None = None
    stuck: bool | None = None

    def active(self) -> bool:
        """The stuck value, else what it senses (`VirtualDIO._read_inputs` writes this out)."""
        if self.stuck is not None:
            return self.stuck
        return self.sense() if self.sense is not None else False


@dataclass
class PlainOutput:
    """A coil that simply holds what was written (a guide light, or nothing wired)."""

    point: str
    value: bool = False


@dataclass
class Thermometer:
    """A fridge probe: the set temperature plus a linear drift over SimPy time; a failed fridge
    (`fail`) warms at `rate` °C/h from the moment it failed up to the room's `ceiling_c`."""

    env: simpy.Environment
    start_c: float
    drift_c_per_h: float
    failed_at: float | None = None
    fail_rate_c_per_h: float = 0.0
    ceiling_c: float = 22.0

    def celsius(self) -> float:
        base = self.start_c + self.drift_c_per_h * self.env.now / 3600.0
        if self.failed_at is None:
            return base
        warmed = self.fail_rate_c_per_h * (self.env.now - self.failed_at) / 3600.0
        return base + max(0.0, min(warmed, self.ceiling_c - base))

    def slope_c_per_s(self) -> float:
        """How fast the reading moves now (0.0 once a failed fridge has reached the room)."""
        slope = self.drift_c_per_h / 3600.0
        if self.failed_at is not None and self.celsius() < self.ceiling_c:
            slope += self.fail_rate_c_per_h / 3600.0
        return slope


# Status words of a weighing channel, as on the wire.
STATUS_OK, STATUS_UNSTABLE, STATUS_OVERLOAD, STATUS_FAULT = 0, 1, 2, 3


@dataclass
class LoadCellChannel:
    """One weighing channel under a pocket: tare + the items' weights + noise, as the module sees it.

    The module has self-diagnostics, which is how its faults reach the status word: a channel whose
    converter froze (`stuck`) or whose cell is disconnected reports FAULT; one whose signal is too
    noisy to settle, or keeps creeping (`drift`), or whose pocket changed less than `settle_s` ago,
    reports UNSTABLE; a load beyond capacity reports OVERLOAD. Zero and tare are module settings
    that a power cycle reverts to the last saved ones.
    """

    env: simpy.Environment
    point: str
    key: int
    pocket: Pocket | None
    tare_g: float
    noise_g: float
    settle_s: float
    capacity_g: float
    zero_offset_g: float = 0.0
    tare_offset_g: float = 0.0
    saved: tuple[float, float] = (0.0, 0.0)
    disconnected: bool = False
    stuck_value: float | None = None
    noisy_sigma_g: float | None = None
    drift_g_per_h: float = 0.0
    drift_since: float = 0.0
    last_command: int = 0

    # The last conversion's noise: (sample number, standard normal draw). Reads inside one
    # conversion period then cost no new draw; the value is the same one `gaussian` would give.
    _conversion: tuple[int, float] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def gross_g(self) -> float:
        """What the cell carries, before the module's zero and tare: pan tare + items (+ drift)."""
        load = self.tare_g + self.pocket.load_g if self.pocket is not None else 0.0
        if self.drift_g_per_h:
            load += self.drift_g_per_h * (self.env.now - self.drift_since) / 3600.0
        return load

    def _noise(self) -> float:
        """The standard normal draw of the current conversion: a pure function of (key, sample)."""
        sample = math.floor(self.env.now * LOADCELL_SAMPLE_HZ)
        conversion = self._conversion
        if conversion is None or conversion[0] != sample:
            conversion = self._conversion = (sample, gaussian(self.key, sample))
        return conversion[1]

    def _measured_g(self, gross_g: float | None = None) -> float:
        """Gross weight plus this conversion's noise (`gross_g` when the caller already has it)."""
        sigma = self.noise_g if self.noisy_sigma_g is None else self.noisy_sigma_g
        gross = self.gross_g() if gross_g is None else gross_g
        return gross + sigma * self._noise()

    def reading(self) -> tuple[float, int]:
        """(grams the module reports, status word) at `env.now`."""
        return self.grams(), self.status()

    def grams(self, noise: float | None = None) -> float:
        """The grams the module reports at `env.now`, what its weight registers carry: a failed
        converter's nan or frozen value, else `gross_g` and `_measured_g` less zero and tare,
        written out in one pass (a snapshot weighs every channel). `noise`: this conversion's
        `_noise()`, where the caller has drawn it already (`ModuleConversions`)."""
        if self.disconnected:
            return math.nan
        if self.stuck_value is not None:
            return self.stuck_value
        pocket = self.pocket
        gross = self.tare_g + fsum(pocket.units) if pocket is not None else 0.0
        if self.drift_g_per_h:
            gross += self.drift_g_per_h * (self.env.now - self.drift_since) / 3600.0
        if noise is None:
            noise = self._noise()
        sigma = self.noise_g if self.noisy_sigma_g is None else self.noisy_sigma_g
        return gross + sigma * noise - self.zero_offset_g - self.tare_offset_g

    def status(self) -> int:
        """The status word alone, which no noise enters: what a status register read needs
        (`gross_g` written out: a snapshot reads every channel's status). Overload first; then
        a noisy, drifting or still settling (pocket changed < `settle_s` ago) signal."""
        if self.disconnected or self.stuck_value is not None:
            return STATUS_FAULT
        pocket = self.pocket
        gross = self.tare_g + fsum(pocket.units) if pocket is not None else 0.0
        if self.drift_g_per_h:
            gross += self.drift_g_per_h * (self.env.now - self.drift_since) / 3600.0
        if gross > self.capacity_g:
            return STATUS_OVERLOAD
        if (
            self.noisy_sigma_g is not None
            or self.drift_g_per_h
            or (pocket is not None and self.env.now - pocket.changed_at < self.settle_s)
        ):
            return STATUS_UNSTABLE
        return STATUS_OK

    def usable(self) -> bool:
        """Whether the module can carry out a zero or tare now."""
        return not self.disconnected and self.stuck_value is None

    def zero(self) -> None:
        self.zero_offset_g = self._measured_g()
        self.tare_offset_g = 0.0

    def tare(self) -> None:
        self.tare_offset_g = self._measured_g() - self.zero_offset_g

    def save(self) -> None:
        self.saved = (self.zero_offset_g, self.tare_offset_g)

    def power_cycled(self) -> None:
        self.zero_offset_g, self.tare_offset_g = self.saved


class ModuleConversions:
    """A weighing module's channels converting together: every channel's noise for one
    conversion is drawn at once (`GaussianLanes`: the same floats each channel's `_noise` would
    draw by itself, at about half the cost), for a read that weighs several channels. The
    channels share one clock, as a module's do."""

    def __init__(self, channels: Sequence[LoadCellChannel]) -> None:
        self._channels = list(channels)
        if any(channel.env is not self._channels[0].env for channel in self._channels):
            raise ValueError("the channels of one module convert on one clock")
        self._lanes = GaussianLanes([channel.key for channel in self._channels])

    def weigh(self, first: int, stop: int) -> list[float]:
        """`[channel.grams() for channel in channels[first:stop]]`, the same floats."""
        channels = self._channels[first:stop]
        if not channels:
            return []
        noise = self._lanes.draw(floor(channels[0].env.now * LOADCELL_SAMPLE_HZ))[first:stop]
        return [channel.grams(draw) for channel, draw in zip(channels, noise, strict=True)]
