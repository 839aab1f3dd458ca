"""Build the virtual cabinet's parts from a hardware profile: what each point is wired to.

Every point a device declares exists (an unwired input reads inactive, an unwired coil is a plain
output, an unwired load-cell channel reads an empty cell). The layout then wires them: a drawer's
lock point becomes the solenoid latching that drawer's door, its switch senses the door, a pocket's
weight point sits under the pocket's items, and so on. A lock-board output is always a solenoid,
whether the layout uses it or not; a DIO coil is a solenoid only when the layout names it as a lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from adc.profiles.models import LockboardCU16, ModbusDIO, PocketKind, Profile, SensorKind
from adc.profiles.points import PointRef
from adc.sim.devices import VirtualDIO, VirtualLoadcell, VirtualLockboard, VirtualModbusDevice
from adc.sim.mechanics import (
    Door,
    InputSlot,
    LoadCellChannel,
    PlainOutput,
    Pocket,
    PowerSupply,
    Solenoid,
    Thermometer,
)
from adc.sim.noise import stable_key

AnyVirtualDevice = VirtualModbusDevice | VirtualLockboard

_DOOR_KIND = {
    PocketKind.CUBIE: "cubie door",
    PocketKind.FRIDGE: "fridge door",
    PocketKind.RETURN_BIN: "return-bin flap",
}


def canonical(point: str) -> str:
    """`dio1:coil.03` → `dio1:coil.3`: the one spelling used as a key everywhere."""
    return str(PointRef.parse(point))


@dataclass
class Parts:
    """Everything physical in one cabinet, by point, door or pocket name."""

    env: simpy.Environment
    power: PowerSupply = field(default_factory=PowerSupply)
    solenoids: dict[str, Solenoid] = field(default_factory=dict)
    outputs: dict[str, PlainOutput] = field(default_factory=dict)
    inputs: dict[str, InputSlot] = field(default_factory=dict)
    channels: dict[str, LoadCellChannel] = field(default_factory=dict)
    thermometers: dict[str, Thermometer] = field(default_factory=dict)
    drawers: dict[str, Door] = field(default_factory=dict)
    pocket_doors: dict[str, Door] = field(default_factory=dict)
    pockets: dict[str, Pocket] = field(default_factory=dict)
    pocket_drawer: dict[str, Door] = field(default_factory=dict)
    devices: dict[str, AnyVirtualDevice] = field(default_factory=dict)
    bus_noise: dict[str, float] = field(default_factory=dict)
    # Called after anything a reading can show has changed (set by the VirtualCabinet): a watch
    # on simulated time polls after a change instead of at every tick.
    notify: Callable[[], None] = field(default=lambda: None, repr=False)


def _lock_points(profile: Profile) -> set[str]:
    points = set()
    for drawer in profile.layout.drawers:
        points.add(canonical(drawer.lock))
        for pocket in drawer.pockets:
            for text in (pocket.lock, pocket.lid_lock):
                if text:
                    points.add(canonical(text))
    return points


def _closed(door: Door) -> Callable[[], bool]:
    return lambda: not door.is_open


def _occupied(pocket: Pocket) -> Callable[[], bool]:
    return lambda: bool(pocket.units)


def build_parts(profile: Profile, env: simpy.Environment, seed: int) -> Parts:
    """All parts of the cabinet a profile describes, wired as its layout says."""
    parts = Parts(env=env, bus_noise={name: 0.0 for name in profile.buses})
    _build_points(profile, parts, seed)
    _wire_layout(profile, parts)
    _build_devices(profile, parts)
    return parts


def _build_points(profile: Profile, parts: Parts, seed: int) -> None:
    sim = profile.sim
    locks = _lock_points(profile)
    for name, dev in profile.devices.items():
        if isinstance(dev, LockboardCU16 | ModbusDIO):
            count = 16 if isinstance(dev, LockboardCU16) else dev.coils.count
            family = "lock" if isinstance(dev, LockboardCU16) else "coil"
            for i in range(count):
                point = f"{name}:{family}.{i}"
                if isinstance(dev, LockboardCU16) or point in locks:
                    parts.solenoids[point] = Solenoid(
                        parts.env,
                        point,
                        pulse_s=dev.solenoid.pulse_ms / 1000,
                        rearm_s=dev.solenoid.rearm_ms / 1000,
                        actuation_s=sim.actuation_ms / 1000,
                    )
                else:
                    parts.outputs[point] = PlainOutput(point)
            inputs = 16 if isinstance(dev, LockboardCU16) else dev.discrete_inputs.count
            family = "input" if isinstance(dev, LockboardCU16) else "di"
            for i in range(inputs):
                point = f"{name}:{family}.{i}"
                parts.inputs[point] = InputSlot(point)
        else:
            for i in range(dev.channels):
                point = f"{name}:ch.{i}"
                parts.channels[point] = LoadCellChannel(
                    env=parts.env,
                    point=point,
                    key=stable_key(seed, "loadcell", point),
                    pocket=None,
                    tare_g=sim.tare_g,
                    noise_g=sim.noise_g,
                    settle_s=sim.settle_ms / 1000,
                    capacity_g=dev.capacity_g,
                )


def _wire_layout(profile: Profile, parts: Parts) -> None:
    sim = profile.sim
    for d in profile.layout.drawers:
        drawer = Door(d.id, "drawer", None, parts.solenoids[canonical(d.lock)])
        parts.drawers[d.id] = drawer
        parts.inputs[canonical(d.switch)].sense = _closed(drawer)
        for p in d.pockets:
            pocket = Pocket(p.id, p.capacity)
            parts.pockets[p.id] = pocket
            parts.pocket_drawer[p.id] = drawer
            if p.sensor.kind is not SensorKind.NONE:
                pocket.units = [sim.unit_weight_g] * min(sim.initial_units, p.capacity)
            door = None
            if p.lock:
                # A return bin's flap is reached from outside: it does not sit in its drawer.
                parent = None if p.kind is PocketKind.RETURN_BIN else drawer
                door = Door(p.id, _DOOR_KIND[p.kind], parent, parts.solenoids[canonical(p.lock)])
            elif p.lid_lock:
                door = Door(p.id, "lid", drawer, parts.solenoids[canonical(p.lid_lock)])
            if door is not None:
                parts.pocket_doors[p.id] = door
                for switch in (p.switch, p.lid_switch):
                    if switch:
                        parts.inputs[canonical(switch)].sense = _closed(door)
            if p.sensor.point is not None:
                point = canonical(p.sensor.point)
                if p.sensor.kind is SensorKind.WEIGHT:
                    parts.channels[point].pocket = pocket
                else:
                    parts.inputs[point].sense = _occupied(pocket)
            if p.temperature:
                parts.thermometers[canonical(p.temperature)] = Thermometer(
                    parts.env, sim.fridge_temperature_c, sim.fridge_drift_c_per_h
                )


def _build_devices(profile: Profile, parts: Parts) -> None:
    for name, dev in profile.devices.items():
        if isinstance(dev, LockboardCU16):
            parts.devices[name] = VirtualLockboard(
                name,
                dev,
                parts.power,
                [parts.solenoids[f"{name}:lock.{i}"] for i in range(16)],
                [parts.inputs[f"{name}:input.{i}"] for i in range(16)],
            )
        elif isinstance(dev, ModbusDIO):
            coils = [
                parts.solenoids.get(f"{name}:coil.{i}") or parts.outputs[f"{name}:coil.{i}"]
                for i in range(dev.coils.count)
            ]
            ai_count = dev.analog_inputs.count if dev.analog_inputs else 0
            analogs = []
            for i in range(ai_count):
                probe = parts.thermometers.get(f"{name}:ai.{i}")
                analogs.append(probe.celsius if probe is not None else None)
            parts.devices[name] = VirtualDIO(
                name,
                dev,
                parts.power,
                coils,
                [parts.inputs[f"{name}:di.{i}"] for i in range(dev.discrete_inputs.count)],
                analogs,
            )
        else:
            channels = [parts.channels[f"{name}:ch.{i}"] for i in range(dev.channels)]
            parts.devices[name] = VirtualLoadcell(name, dev, parts.power, channels)
