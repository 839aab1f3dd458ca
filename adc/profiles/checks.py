"""Rules that look across a profile's sections; each problem comes back with its key path.

The pydantic models check each table on its own. Here: devices sit on buses that exist and speak
their protocol; addresses are unique and fit; every point a drawer or pocket names exists on a device
of the right kind; no output drives two things; a device's register blocks do not overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from adc.profiles.models import (
    LockboardCU16,
    ModbusDIO,
    ModbusLoadcell,
    Profile,
    RegisterBlock,
    SensorKind,
    Transport,
)
from adc.profiles.points import PointRef, PointRole, role_of

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

_TRANSPORTS_OF_KIND = {
    "lockboard-cu16": {Transport.LOCKBOARD},
    "modbus-dio": {Transport.MODBUS_RTU, Transport.MODBUS_TCP},
    "modbus-loadcell": {Transport.MODBUS_RTU, Transport.MODBUS_TCP},
}

# Which point roles each layout field accepts.
_FIELD_ROLES: dict[str, set[PointRole]] = {
    "lock": {PointRole.OUTPUT},
    "lid_lock": {PointRole.OUTPUT},
    "light": {PointRole.OUTPUT},
    "switch": {PointRole.INPUT},
    "lid_switch": {PointRole.INPUT},
    "temperature": {PointRole.ANALOG},
}
_SENSOR_ROLES = {SensorKind.WEIGHT: {PointRole.WEIGHT}, SensorKind.PRESENCE: {PointRole.INPUT}}


def format_path(path: Iterable[str | int]) -> str:
    """`('layout', 'drawers', 0, 'lock')` → `layout.drawers[0].lock`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def cross_check(profile: Profile) -> list[Problem]:
    """All cross-section problems of a structurally valid profile, in file order."""
    return [*_check_devices(profile), *_check_blocks(profile), *_check_layout(profile)]


def _check_devices(profile: Profile) -> Iterator[Problem]:
    seen: dict[tuple[str, int], str] = {}
    for name, device in profile.devices.items():
        bus = profile.buses.get(device.bus)
        if bus is None:
            known = ", ".join(sorted(profile.buses))
            yield ("devices", name, "bus"), f"bus {device.bus!r} is not declared (buses: {known})"
            continue
        if bus.transport not in _TRANSPORTS_OF_KIND[device.kind]:
            yield (
                ("devices", name, "kind"),
                f"a {device.kind} device cannot sit on {device.bus!r}, a {bus.transport} bus",
            )
        key = (device.bus, device.address)
        if key in seen:
            yield (
                ("devices", name, "address"),
                f"address {device.address} on bus {device.bus!r} is already used by {seen[key]!r}",
            )
        else:
            seen[key] = name


def _blocks(device: ModbusDIO | ModbusLoadcell) -> dict[str, list[tuple[str, RegisterBlock]]]:
    """A Modbus device's register blocks grouped by table."""
    if isinstance(device, ModbusDIO):
        tables = {
            "coils": [("coils", device.coils)],
            "discrete inputs": [("discrete_inputs", device.discrete_inputs)],
        }
        if device.analog_inputs:
            tables["input registers"] = [("analog_inputs", device.analog_inputs)]
        return tables
    return {
        "input registers": [
            ("weight_start", device.weight_block()),
            ("status_start", device.status_block()),
        ],
        "holding registers": [("command_start", device.command_block())],
    }


def _check_blocks(profile: Profile) -> Iterator[Problem]:
    for name, device in profile.devices.items():
        if isinstance(device, LockboardCU16):
            continue
        for table, blocks in _blocks(device).items():
            for key, block in blocks:
                if block.end > 65536:
                    yield ("devices", name, key), f"{table} block runs past address 65535"
            for i, (key_a, a) in enumerate(blocks):
                for key_b, b in blocks[i + 1 :]:
                    if a.start < b.end and b.start < a.end:
                        yield (
                            ("devices", name, key_b),
                            f"{table} {b.start}–{b.end - 1} ({key_b}) overlap "
                            f"{a.start}–{a.end - 1} ({key_a})",
                        )


def _check_layout(profile: Profile) -> Iterator[Problem]:
    drawer_ids: set[str] = set()
    pocket_ids: set[str] = set()
    outputs: dict[PointRef, Path] = {}

    def check_point(path: Path, text: str, allowed: set[PointRole]) -> Iterator[Problem]:
        try:
            ref = PointRef.parse(text)
            role = role_of(ref, profile.devices)
        except ValueError as err:
            yield path, str(err)
            return
        if role not in allowed:
            wanted = " or ".join(sorted(r.value for r in allowed))
            yield path, f"{path[-1]} needs a point of role {wanted}; {ref} is of role {role.value}"
            return
        if role is PointRole.OUTPUT:
            if ref in outputs:
                yield path, f"output {ref} is already used by {format_path(outputs[ref])}"
            else:
                outputs[ref] = path

    for d, drawer in enumerate(profile.layout.drawers):
        dpath: Path = ("layout", "drawers", d)
        if drawer.id in drawer_ids:
            yield (*dpath, "id"), f"drawer id {drawer.id!r} is used twice"
        drawer_ids.add(drawer.id)
        for field in ("lock", "switch", "light"):
            value = getattr(drawer, field)
            if value is not None:
                yield from check_point((*dpath, field), value, _FIELD_ROLES[field])
        for p, pocket in enumerate(drawer.pockets):
            ppath: Path = (*dpath, "pockets", p)
            if pocket.id in pocket_ids:
                yield (*ppath, "id"), f"pocket id {pocket.id!r} is used twice"
            pocket_ids.add(pocket.id)
            for field in ("lock", "switch", "lid_lock", "lid_switch", "light", "temperature"):
                value = getattr(pocket, field)
                if value is not None:
                    yield from check_point((*ppath, field), value, _FIELD_ROLES[field])
            if pocket.sensor.point is not None:
                yield from check_point(
                    (*ppath, "sensor", "point"),
                    pocket.sensor.point,
                    _SENSOR_ROLES[pocket.sensor.kind],
                )
