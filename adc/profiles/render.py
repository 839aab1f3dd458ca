"""A rich tree of a profile, for people: buses and their devices, then drawers and pockets."""

from __future__ import annotations

from rich.tree import Tree

from adc.profiles.models import ModbusTcpBus, Pocket, Profile
from adc.profiles.points import point_families


def _bus_label(name: str, bus: object) -> str:
    if isinstance(bus, ModbusTcpBus):
        where = f"{bus.host}:{bus.port}"
    else:
        where = f"{bus.port} {bus.baudrate} {bus.bytesize}{bus.parity}{bus.stopbits}"  # type: ignore[attr-defined]
    return f"[bold]{name}[/] {bus.transport} {where}"  # type: ignore[attr-defined]


def _pocket_label(pocket: Pocket) -> str:
    parts = [f"[bold]{pocket.id}[/] {pocket.kind}"]
    if pocket.sensor.point:
        parts.append(f"sensor {pocket.sensor.kind} {pocket.sensor.point}")
    for field in ("lock", "switch", "lid_lock", "lid_switch", "light", "temperature"):
        value = getattr(pocket, field)
        if value:
            parts.append(f"{field.replace('_', ' ')} {value}")
    return " · ".join(parts)


def profile_tree(profile: Profile) -> Tree:
    root = Tree(f"[bold cyan]{profile.name}[/] (spec {profile.spec}) {profile.description}")
    buses = root.add("[bold]buses[/]")
    for bus_name, bus in profile.buses.items():
        node = buses.add(_bus_label(bus_name, bus))
        for dev_name, dev in profile.devices_on(bus_name).items():
            points = ", ".join(
                f"{fam}.0–{count - 1} ({role.value})"
                for fam, (role, count) in point_families(dev).items()
            )
            node.add(f"[bold]{dev_name}[/] {dev.kind} @ {dev.address}: {points}")
    layout = root.add("[bold]layout[/]")
    for drawer in profile.layout.drawers:
        extra = f" · light {drawer.light}" if drawer.light else ""
        node = layout.add(
            f"[bold]drawer {drawer.id}[/] lock {drawer.lock} · switch {drawer.switch}{extra}"
        )
        for pocket in drawer.pockets:
            node.add(_pocket_label(pocket))
    return root
