"""What the contract tests need to know about a profile, and the simulated person's routines.

Everything here is derived from the profile, so the same test runs on every shipped cabinet and
skips only what that cabinet does not have (no lights, no fridge, no presence sensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import pytest

from adc.profiles.models import (
    Drawer,
    LockboardCU16,
    ModbusDIO,
    Pocket,
    PocketKind,
    Profile,
    SensorKind,
)
from adc.profiles.points import PointRef
from tests.contract.rigs import Rig

T = TypeVar("T")


def canon(point: str) -> str:
    return str(PointRef.parse(point))


@dataclass(frozen=True)
class Door:
    """Something lockable a person opens: a drawer, or a pocket's lid / cubie / fridge door."""

    target: str  # drawer id or pocket id, as the simulated person names it
    lock: str
    switch: str | None
    drawer: Drawer


def doors(profile: Profile) -> list[Door]:
    out = []
    for drawer in profile.layout.drawers:
        out.append(Door(drawer.id, canon(drawer.lock), canon(drawer.switch), drawer))
        for pocket in drawer.pockets:
            lock = pocket.lock or pocket.lid_lock
            switch = pocket.switch or pocket.lid_switch
            if lock:
                out.append(Door(pocket.id, canon(lock), canon(switch) if switch else None, drawer))
    return out


def drawer_door(profile: Profile, drawer: Drawer) -> Door:
    return next(d for d in doors(profile) if d.target == drawer.id)


def pocket_door(profile: Profile, pocket: Pocket) -> Door | None:
    return next((d for d in doors(profile) if d.target == pocket.id), None)


def pulse_s(profile: Profile, lock: str) -> float:
    device = profile.devices[PointRef.parse(lock).device]
    assert isinstance(device, LockboardCU16 | ModbusDIO)
    return device.solenoid.pulse_ms / 1000


def rearm_s(profile: Profile, lock: str) -> float:
    device = profile.devices[PointRef.parse(lock).device]
    assert isinstance(device, LockboardCU16 | ModbusDIO)
    return max(device.solenoid.rearm_ms, device.solenoid.pulse_ms) / 1000


def release_s(profile: Profile) -> float:
    """A moment after a pulse starts when the bolt is surely retracted."""
    return profile.sim.actuation_ms / 1000 + 0.02


def has_feedback(profile: Profile, lock: str) -> bool:
    """Lock boards report their locks; a DIO coil lock has no feedback (the port infers)."""
    return isinstance(profile.devices[PointRef.parse(lock).device], LockboardCU16)


def sensed_pockets(profile: Profile, kind: SensorKind) -> list[tuple[Drawer, Pocket]]:
    return [(d, p) for d, p in profile.pockets() if p.sensor.kind is kind]


def first_or_skip(items: list[T], what: str) -> T:
    if not items:
        pytest.skip(f"this profile has no {what}")
    return items[0]


def unlock_and_open(rig: Rig, door: Door) -> None:
    """Pulse the door's lock and pull while the bolt is back; the door must open."""
    rig.driver.pulse(door.lock)
    rig.advance(release_s(rig.profile))
    assert rig.cabinet.sim_open(door.target), f"{door.target} did not open after its unlock"


def reach_into(rig: Rig, drawer: Drawer, pocket: Pocket) -> None:
    """Open the drawer and, if the pocket has a door or lid of its own, that too."""
    unlock_and_open(rig, drawer_door(rig.profile, drawer))
    door = pocket_door(rig.profile, pocket)
    if door is not None and pocket.kind is not PocketKind.RETURN_BIN:
        unlock_and_open(rig, door)


def weight_tolerance(profile: Profile, readings: int = 2) -> float:
    """How far a difference of `readings` noisy readings may stray: 6 sigma, plus float32."""
    return 6 * profile.sim.noise_g * math.sqrt(readings) + 0.01


def settle(rig: Rig) -> None:
    """Wait out the load cells' settling after a change."""
    rig.advance(rig.profile.sim.settle_ms / 1000 + 0.1)


def lock_pairs(profile: Profile) -> list[tuple[Door, Door]]:
    """(drawer door, pocket door) of every pocket with a lock or lid of its own."""
    out = []
    for drawer in profile.layout.drawers:
        for pocket in drawer.pockets:
            door = pocket_door(profile, pocket)
            if door is not None:
                out.append((drawer_door(profile, drawer), door))
    return out


def same_device(pair: tuple[Door, Door]) -> bool:
    return PointRef.parse(pair[0].lock).device == PointRef.parse(pair[1].lock).device


def pulse_behind_the_drivers_back(rig: Rig, lock: str) -> None:
    """Another master (a service tool, a second controller) pulses `lock` on the device itself:
    the driver under test does not know the solenoid is now re-arming."""
    from adc.sim.devices import VirtualLockboard

    ref = PointRef.parse(lock)
    device = rig.cabinet.device(ref.device)
    if isinstance(device, VirtualLockboard):
        device.unlock(ref.index)
    else:
        model = rig.profile.devices[ref.device]
        assert isinstance(model, ModbusDIO)
        device.write_coil(model.coils.start + ref.index, True)  # type: ignore[union-attr]


def accept_every_pulse(rig: Rig, lock: str) -> object:
    """Make the device behind `lock` a foreign one that accepts every pulse (no re-arm window of
    its own), so that only the driver can refuse a pulse inside the re-arm window. Returns the
    virtual solenoid, whose `pulses` counts what reached the device."""
    solenoid = rig.cabinet._parts.solenoids[canon(lock)]
    solenoid.rearm_s = 0.0
    return solenoid


def pulses(rig: Rig, lock: str) -> int:
    """How many pulses the virtual solenoid behind `lock` has carried out (ground truth)."""
    return int(rig.cabinet._parts.solenoids[canon(lock)].pulses)
