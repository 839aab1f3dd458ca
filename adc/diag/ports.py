"""`adc diag ports`: the serial ports this machine has, and where the profile expects its buses.

The list is pyserial's (`serial.tools.list_ports.comports`, symlinks such as /dev/serial/by-id
included), with the description and hardware id (USB VID:PID and serial number) that tell two
adapters apart. Given a profile, each serial bus is matched against it: a bus whose port is not
there is the first thing to fix, before any scan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from adc.diag.results import Check, Report, Verdict
from adc.profiles.models import LockboardBus, ModbusRtuBus, Profile


@dataclass(frozen=True)
class Port:
    device: str
    description: str
    hwid: str


def serial_ports() -> list[Port]:
    from serial.tools import list_ports

    found = list_ports.comports(include_links=True)
    return sorted(
        (Port(p.device, p.description or "n/a", p.hwid or "n/a") for p in found),
        key=lambda p: p.device,
    )


def _is_url(port: str) -> bool:
    return "://" in port


def ports_report(profile: Profile | None = None, found: list[Port] | None = None) -> Report:
    """A check per serial bus of the profile (its port present or not); `data.ports` the list."""
    ports = serial_ports() if found is None else found
    report = Report("ports", profile.name if profile else "this machine")
    report.data["ports"] = [p.__dict__ for p in ports]
    if not ports:
        report.notes.append("no serial ports found")
    if profile is None:
        return report
    listed = {p.device for p in ports}
    for name, bus in profile.buses.items():
        if not isinstance(bus, ModbusRtuBus | LockboardBus):
            continue
        subject = f"bus {name} ({bus.transport})"
        if _is_url(bus.port):
            report.add(
                Check(subject, bus.port, Verdict.NOT_EXERCISED, "a pyserial URL: not a local port")
            )
        elif bus.port in listed or os.path.exists(bus.port):
            report.add(Check(subject, bus.port, Verdict.PASS, f"{bus.port} is present"))
        else:
            report.add(
                Check(
                    subject,
                    bus.port,
                    Verdict.FAIL,
                    f"{bus.port} is not on this machine",
                    flags=["port"],
                )
            )
    return report
