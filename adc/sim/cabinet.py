"""The VirtualCabinet: a SimPy model of a physical cabinet, built from its hardware profile.

It stands in for the hardware on two tiers: the in-process driver (`adc.drivers.sim`) calls its
devices directly, the wire emulators serve the same devices on Modbus and the lock-board protocol.
Time is SimPy time: `cabinet.env.now` is seconds, and nothing moves unless someone runs the
environment (`cabinet.run(seconds)`, `env.run(...)`, or a `RealtimeEnvironment` for `sim serve`).

Register-level view (what the emulators use; details in `adc.sim.devices`):
    `cabinet.profile`, `cabinet.env`, `cabinet.seed`,
    `cabinet.devices: dict[str, VirtualModbusDevice | VirtualLockboard]`,
    `cabinet.device(name) -> VirtualModbusDevice | VirtualLockboard`,
    `cabinet.device_at(bus, address) -> ... | None` (by Modbus unit id or lock-board number),
    `cabinet.bus_noise(bus) -> float` (probability that a frame on that bus is corrupted) and
    `cabinet.rng_for(bus) -> random.Random` (seeded per bus, so corruption is reproducible).

The simulated person and the test engineer (`sim_*`, test-only inputs):
    `sim_open(target, close_after_s=None) -> bool`  pull a drawer, lid, cubie/fridge door or
        return-bin flap (drawer id or pocket id); it opens only if its latch is retracted now and
        the drawer it sits in is open. False: it stayed shut.
    `sim_close(target)`        shut it (a drawer's open lids and doors are shut first);
                               it latches again as soon as its bolt is out.
    `sim_leave_open(target) -> bool`  open it if it can be, and cancel any scheduled close.
    `sim_take(pocket, n=1) -> list[float]`  take n items (their unit weights are returned).
    `sim_add(pocket, n=1, unit_weight_g=None)`  put n items of that unit weight in.
    `sim_force_open(drawer) -> bool`  yank a drawer open though its latch holds (the latch gives
        way, unharmed; it holds again once the drawer is shut).
    `sim_take_unseen(pocket, n=1) -> list[float]`  take n items through a pried gap: no door
        moves, only the pocket's scale can tell.
    `sim_inject_fault(kind, target=None, **params)`, `sim_clear_fault(kind, target=None)`:
        the faults of `adc.sim.faults` (lock jammed / will not re-engage, switch stuck, load cell
        stuck / drifting / noisy / offline, device offline, bus noise, power loss, fridge failure).
For a watch on simulated time (the scenario's supervision):
    `on_change`   called after every change a reading can show (a door, a pocket's items, a fault,
                  power back); `next_change(now)` the next instant a reading changes by itself
                  (a scale settling, a fridge probe's next step), or None.
Ground truth for tests (what is, not what a sensor says): `is_open`, `units`, `lock_holding`,
`active_faults`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from typing import Any

import simpy

from adc.profiles.models import PocketKind, Profile
from adc.sim import faults
from adc.sim.errors import SimInputError
from adc.sim.faults import Fault, FaultKind
from adc.sim.mechanics import Door, Pocket
from adc.sim.noise import stable_key
from adc.sim.wiring import AnyVirtualDevice, build_parts, canonical


class VirtualCabinet:
    """One cabinet's devices, doors, pockets and faults, in one SimPy environment, seeded."""

    def __init__(
        self, profile: Profile, env: simpy.Environment | None = None, seed: int = 0
    ) -> None:
        self.profile = profile
        self.env = env if env is not None else simpy.Environment()
        self.seed = seed
        self._parts = build_parts(profile, self.env, seed)
        self.devices: dict[str, AnyVirtualDevice] = self._parts.devices
        self._rngs: dict[str, random.Random] = {}
        self._faults: dict[tuple[FaultKind, str | None], Fault] = {}
        self._close_tokens: dict[Door, int] = {}
        self._return_bins = {
            pocket.id for _, pocket in profile.pockets() if pocket.kind is PocketKind.RETURN_BIN
        }
        self.on_change: Any = None  # Callable[[], None] | None
        self._parts.notify = self._changed
        self._probe_steps = _probe_steps(profile)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def next_change(self, now: float) -> float | None:
        """The next SimPy instant after `now` at which a reading changes with nobody acting: a
        pocket's scale settles (UNSTABLE → OK), a fridge probe's reading moves by one step of
        its analog input. Load-cell noise is not a change (a
        settled reading only wobbles around the same weight)."""
        parts = self._parts
        out: float | None = None
        settle = parts.channels and max(c.settle_s for c in parts.channels.values())
        if settle:
            for pocket in parts.pockets.values():
                if now - pocket.changed_at < settle:  # the channel's own test: still settling
                    at = max(pocket.changed_at + settle, math.nextafter(now, math.inf))
                    if out is None or at < out:
                        out = at
        for point, probe in parts.thermometers.items():
            slope = probe.slope_c_per_s()
            step = self._probe_steps.get(point)
            if not slope or not step:
                continue
            celsius = probe.celsius()
            counts = round(celsius / step)
            edge = (counts + (0.5 if slope > 0 else -0.5)) * step
            at = now + max((edge - celsius) / slope, 1e-6)
            if probe.failed_at is not None and probe.fail_rate_c_per_h > 0:
                # it stops warming at the room's temperature: look again then
                left = probe.ceiling_c - celsius
                if left > 0:
                    at = min(at, now + left / (probe.fail_rate_c_per_h / 3600.0))
            if out is None or at < out:
                out = at
        return out  # a timed power restore calls `on_change` itself

    # ------------------------------------------------------------------------ register-level view
    def device(self, name: str) -> AnyVirtualDevice:
        try:
            return self.devices[name]
        except KeyError:
            known = ", ".join(self.devices)
            raise SimInputError(f"the virtual cabinet has no device {name!r} ({known})") from None

    def device_at(self, bus: str, address: int) -> AnyVirtualDevice | None:
        """The device a frame on `bus` addresses (Modbus unit id, lock-board number), if any."""
        for device in self.devices.values():
            number = getattr(device, "unit_id", getattr(device, "board", None))
            if device.bus == bus and number == address:
                return device
        return None

    def bus_noise(self, bus_name: str) -> float:
        """Probability that one frame on this bus is corrupted (0.0 unless `bus_noise` is injected)."""
        if bus_name not in self._parts.bus_noise:
            raise SimInputError(f"the virtual cabinet has no bus {bus_name!r}")
        return self._parts.bus_noise[bus_name]

    def rng_for(self, bus_name: str) -> random.Random:
        """The bus's own seeded random stream: corrupt frames with it, so runs repeat exactly."""
        self.bus_noise(bus_name)  # validates the name
        if bus_name not in self._rngs:
            self._rngs[bus_name] = random.Random(stable_key(self.seed, "bus", bus_name))
        return self._rngs[bus_name]

    # ------------------------------------------------------------------------------------- time
    @property
    def now(self) -> float:
        return self.env.now

    def run(self, seconds: float) -> None:
        """Let `seconds` of SimPy time pass (0: just settle what is due now)."""
        if seconds < 0:
            raise ValueError(f"time does not run backwards ({seconds} s)")
        if (
            self.env.now + seconds > self.env.now
        ):  # a step too small to move the float clock settles
            self.env.run(until=self.env.now + seconds)
            return
        while self.env.peek() <= self.env.now:
            self.env.step()

    # ---------------------------------------------------------------------- the simulated person
    def _door(self, target: str) -> Door:
        drawer = self._parts.drawers.get(target)
        pocket_door = self._parts.pocket_doors.get(target)
        if drawer is not None and pocket_door is not None:
            raise SimInputError(f"{target!r} names both a drawer and a pocket door")
        if drawer is not None or pocket_door is not None:
            return drawer or pocket_door  # type: ignore[return-value]
        if target in self._parts.pockets:
            drawer_id = self._parts.pocket_drawer[target].name
            raise SimInputError(f"pocket {target} has no door of its own: open drawer {drawer_id}")
        raise SimInputError(f"no drawer or pocket door {target!r} in {self.profile.name}")

    def _pocket(self, pocket_id: str) -> Pocket:
        try:
            return self._parts.pockets[pocket_id]
        except KeyError:
            raise SimInputError(f"no pocket {pocket_id!r} in {self.profile.name}") from None

    def sim_open(self, target: str, close_after_s: float | None = None) -> bool:
        """A person pulls; True if it is (now) open. With `close_after_s`, they shut it after that."""
        door = self._door(target)
        if door.why_not_open() is not None:
            return False
        door.is_open = True
        self._changed()
        if close_after_s is not None:
            token = self._close_tokens.get(door, 0) + 1
            self._close_tokens[door] = token
            self.env.process(self._close_later(door, close_after_s, token))
        return True

    def _close_later(
        self, door: Door, delay: float, token: int
    ) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        if self._close_tokens.get(door) == token:
            self._shut(door)

    def sim_close(self, target: str) -> None:
        """A person shuts it (and, for a drawer, the lids and doors left open inside it first)."""
        self._shut(self._door(target))

    def _shut(self, door: Door) -> None:
        for child in door.children:
            self._shut(child)
        self._close_tokens.pop(door, None)
        if door.is_open:
            door.is_open = False
            self._changed()

    def sim_leave_open(self, target: str) -> bool:
        """The person walks away: it stays open (opening it first if it can); True if open."""
        door = self._door(target)
        self._close_tokens.pop(door, None)
        return self.sim_open(target)

    def why_not_reachable(self, pocket_id: str) -> str | None:
        """Why a hand cannot reach into the pocket now, or None when it can."""
        pocket = self._pocket(pocket_id)
        drawer = self._parts.pocket_drawer[pocket.id]
        door = self._parts.pocket_doors.get(pocket.id)
        if door is not None and door.is_open:
            return None
        if pocket.id in self._return_bins and drawer.is_open:
            return None  # a return bin is emptied from its open drawer
        if door is not None:
            return f"{door.kind} {door.name} is closed"
        return None if drawer.is_open else f"drawer {drawer.name} is closed"

    def sim_stock(self, pocket_id: str, n: int, unit_weight_g: float | None = None) -> None:
        """Set up what a pocket holds before anyone acts (like `initial_units`, but per pocket):
        `n` items of `unit_weight_g` grams (default: the profile's), up to its capacity."""
        pocket = self._pocket(pocket_id)
        weight = self.profile.sim.unit_weight_g if unit_weight_g is None else unit_weight_g
        if weight <= 0 or n < 0:
            raise SimInputError(f"cannot stock pocket {pocket.id} with {n} items of {weight} g")
        pocket.units = [float(weight)] * min(n, pocket.capacity)  # settled: nobody moved it
        self._changed()

    def sim_take(self, pocket_id: str, n: int = 1) -> list[float]:
        """Take `n` items out of an open pocket; their unit weights, last put in first."""
        pocket = self._pocket(pocket_id)
        self._reachable(pocket)
        return self._take(pocket, n)

    def _take(self, pocket: Pocket, n: int) -> list[float]:
        if n < 1 or n > len(pocket.units):
            raise SimInputError(
                f"cannot take {n} from pocket {pocket.id}: it holds {len(pocket.units)}"
            )
        taken = pocket.units[-n:]
        del pocket.units[-n:]
        pocket.changed_at = self.env.now
        self._changed()
        return taken

    def sim_take_unseen(self, pocket_id: str, n: int = 1) -> list[float]:
        """Take `n` items through a pried gap: no door moves, no switch changes; only the
        pocket's scale can tell (a diversion the door sensing cannot see)."""
        return self._take(self._pocket(pocket_id), n)

    def sim_force_open(self, target: str) -> bool:
        """Yank a drawer (or door) open though its latch holds: the latch gives way unharmed and
        holds again once shut. False where its parent drawer is shut (a door cannot be reached)."""
        door = self._door(target)
        if door.parent is not None and not door.parent.is_open:
            return False
        if not door.is_open:
            door.is_open = True
            self._changed()
        return True

    def sim_add(self, pocket_id: str, n: int = 1, unit_weight_g: float | None = None) -> None:
        """Put `n` items of `unit_weight_g` grams (default: the profile's) into an open pocket."""
        pocket = self._pocket(pocket_id)
        self._reachable(pocket)
        weight = self.profile.sim.unit_weight_g if unit_weight_g is None else unit_weight_g
        if weight <= 0:
            raise SimInputError(f"an item weighs more than 0 g, not {weight}")
        if n < 1 or len(pocket.units) + n > pocket.capacity:
            raise SimInputError(
                f"cannot add {n} to pocket {pocket.id}: it holds {len(pocket.units)} "
                f"of {pocket.capacity}"
            )
        pocket.units.extend([float(weight)] * n)
        pocket.changed_at = self.env.now
        self._changed()

    def _reachable(self, pocket: Pocket) -> None:
        reason = self.why_not_reachable(pocket.id)
        if reason is not None:
            raise SimInputError(f"cannot reach into pocket {pocket.id}: {reason}")

    # ------------------------------------------------------------------------------------ faults
    def sim_inject_fault(
        self, kind: FaultKind | str, target: str | None = None, **params: Any
    ) -> Fault:
        """Break something (see `adc.sim.faults` for kinds, targets and params)."""
        fault_kind = faults.parse_kind(kind)
        where = faults.resolve_target(self._parts, fault_kind, target)
        faults.apply(self._parts, fault_kind, where, params)
        fault = Fault(fault_kind, where, tuple(sorted(params.items())), self.env.now)
        self._faults[(fault_kind, where)] = fault
        self._changed()
        return fault

    def sim_clear_fault(self, kind: FaultKind | str, target: str | None = None) -> None:
        """Repair it again (a fault that is not active is no error: repairs are idempotent)."""
        fault_kind = faults.parse_kind(kind)
        where = faults.resolve_target(self._parts, fault_kind, target)
        faults.remove(self._parts, fault_kind, where)
        self._faults.pop((fault_kind, where), None)
        self._changed()

    def sim_check_fault(self, kind: FaultKind | str, target: str | None = None) -> str | None:
        """The canonical target this cabinet would give the fault, or SimInputError (nothing
        changes: for checking a fault that is to be injected later)."""
        return faults.resolve_target(self._parts, faults.parse_kind(kind), target)

    def active_faults(self) -> list[Fault]:
        """The faults in force now (a timed power loss drops out once power is back)."""
        if self._parts.power.on:
            self._faults.pop((FaultKind.POWER_LOSS, None), None)
        return list(self._faults.values())

    # ------------------------------------------------------------------------------ ground truth
    def is_open(self, target: str) -> bool:
        return self._door(target).is_open

    def units(self, pocket_id: str) -> list[float]:
        return list(self._pocket(pocket_id).units)

    def lock_holding(self, point: str) -> bool:
        """Whether the latch at a lock point really holds its door shut."""
        solenoid = self._parts.solenoids.get(canonical(point))
        if solenoid is None:
            raise SimInputError(f"{point} is not a lock of {self.profile.name}")
        return solenoid.holding


def _probe_steps(profile: Profile) -> dict[str, float]:
    """°C per count of each temperature point's analog input (its reading moves in these steps)."""
    steps: dict[str, float] = {}
    for _drawer, pocket in profile.pockets():
        if pocket.temperature:
            point = canonical(pocket.temperature)
            device = profile.devices.get(point.partition(":")[0])
            scale = getattr(device, "analog_scale", None)
            if scale:
                steps[point] = float(scale)
    return steps
