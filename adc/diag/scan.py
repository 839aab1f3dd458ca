"""`adc diag scan`: probe the addresses of a line and compare what answers with what the profile says.

On a wire (a real bus, or an emulator of `adc sim serve`) every address in the range gets one short
request of its own, with no retries, through the same clients the drivers use: a Modbus read (one
input or discrete input the expected kind serves, else holding register 0: any answer, exception
replies included, shows a device is there) or a CU16 status request. Each address is then:
- expected and answering as its kind → pass;
- expected and silent → fail `missing`; expected but answering otherwise → fail `wrong-kind`;
- answering but not in the profile → fail `not-in-profile` (pass when no profile was given);
- answering with corrupted frames → fail `noisy`.
A port that cannot be opened is one failed check for that line; the other lines are still scanned.

The in-process backend has no wire: there each device of the profile is probed through the driver
port instead, and addresses outside the profile cannot be probed (the report says so).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from adc.diag.bench import Bench
from adc.diag.results import Check, Report, Verdict
from adc.drivers.base import DeviceFault, DeviceOffline, DriverError
from adc.drivers.modbus_client import ModbusExceptionReply, SerialEndpoint, TcpEndpoint
from adc.drivers.modbus_plan import Table
from adc.errors import BadInput
from adc.profiles.models import (
    LockboardBus,
    LockboardCU16,
    ModbusDIO,
    ModbusLoadcell,
    ModbusRtuBus,
    ModbusTcpBus,
    Profile,
)

TRANSPORTS = ("modbus-tcp", "modbus-rtu", "lockboard")
DEFAULT_RANGE = {"modbus-tcp": range(1, 248), "modbus-rtu": range(1, 248), "lockboard": range(16)}


@dataclass
class Line:
    """One physical line to probe and what is expected on it (address → (device, kind))."""

    label: str
    transport: str
    endpoint: TcpEndpoint | SerialEndpoint
    expected: dict[int, tuple[str, str]] = field(default_factory=dict)
    profiled: bool = False  # whether `expected` comes from a profile (else: discovery)
    profile: Profile | None = None  # the profile the line is judged by (a URI's ?profile=)


def parse_addresses(text: str) -> list[int]:
    """`1-10,20` → [1..10, 20]."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise BadInput(f"--addresses wants numbers and ranges like 1-10,20, not {text!r}")
        first, last = int(low), int(high) if sep else int(low)
        if first > last or last > 255:
            raise BadInput(f"--addresses: {part!r} is not a range within 0-255")
        out.update(range(first, last + 1))
    if not out:
        raise BadInput("--addresses names no address")
    return sorted(out)


def _expected(profile: Profile, buses: set[str]) -> dict[int, tuple[str, str]]:
    return {
        dev.address: (name, dev.kind) for name, dev in profile.devices.items() if dev.bus in buses
    }


def _modbus_buses(profile: Profile) -> set[str]:
    return {n for n, b in profile.buses.items() if isinstance(b, ModbusRtuBus | ModbusTcpBus)}


def lines_for_profile(
    profile: Profile, buses: list[str] | None = None, port: str | None = None
) -> list[Line]:
    """The profile's buses (or those named) where the profile puts them (`port` moves one bus)."""
    from adc.drivers.lockboard import lockboard_client
    from adc.drivers.modbus import modbus_client

    names = buses or list(profile.buses)
    unknown = [n for n in names if n not in profile.buses]
    if unknown:
        raise BadInput(
            f"profile {profile.name} has no bus {', '.join(unknown)}; "
            f"its buses: {', '.join(profile.buses)}"
        )
    if port and len(names) != 1:
        raise BadInput("--port moves one bus: name it with --bus")
    lines = []
    for name in names:
        bus = profile.buses[name]
        if isinstance(bus, LockboardBus):
            endpoint: Any = lockboard_client(name, bus, port).endpoint
        else:
            client = modbus_client(name, bus, port)
            endpoint = client.endpoint
            client.close()
        transport = (
            "modbus-tcp"
            if isinstance(endpoint, TcpEndpoint)
            else "lockboard"
            if isinstance(bus, LockboardBus)
            else "modbus-rtu"
        )
        lines.append(
            Line(f"bus {name}", transport, endpoint, _expected(profile, {name}), profiled=True)
        )
    return lines


def line_for_uri(uri: str, profile: Profile | None) -> Line:
    """A line named by a wire URI: modbus-tcp://HOST:PORT, modbus-rtu://PORT, lockboard://PORT."""
    from adc.drivers.buses import parse_query
    from adc.drivers.registry import split_uri

    scheme, target = split_uri(uri)
    if scheme not in TRANSPORTS:
        raise BadInput(
            f"--uri wants one of {', '.join(s + '://' for s in TRANSPORTS)}, not {uri!r}"
        )
    base, params = target, {}
    head, sep, _ = target.rpartition("?")
    if sep:
        base, params = head, parse_query(target[len(head) :])[1]
    if "profile" in params:  # the URI names its profile, as the driver URIs accept
        from adc.profiles import load_profile, resolve_profile_path

        profile = load_profile(resolve_profile_path(params["profile"]))
    return _line(uri, scheme, base, params, profile)


def line_for_port(port: str, transport: str | None, profile: Profile | None) -> Line:
    """A bare port (`--port`): a serial port or pyserial URL, or HOST:PORT for Modbus TCP."""
    looks_tcp = ":" in port and port.rpartition(":")[2].isdigit() and "/" not in port
    chosen = transport or ("modbus-tcp" if looks_tcp else "modbus-rtu")
    if chosen not in TRANSPORTS:
        raise BadInput(f"--transport wants one of {', '.join(TRANSPORTS)}, not {chosen!r}")
    return _line(f"port {port}", chosen, port, {}, profile)


def _line(
    label: str, scheme: str, base: str, params: dict[str, str], profile: Profile | None
) -> Line:
    def number(key: str, default: int) -> int:
        text = params.get(key, str(default))
        if not text.isdigit():
            raise BadInput(f"{key} must be a number, not {text!r}")
        return int(text)

    endpoint: TcpEndpoint | SerialEndpoint
    if scheme == "modbus-tcp":
        host, sep, port = base.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadInput(f"modbus-tcp wants HOST:PORT, not {base!r}")
        endpoint = TcpEndpoint(host.strip("[]"), int(port))
    else:
        if not base:
            raise BadInput(f"{scheme} needs a port (a device path, a pty or a pyserial URL)")
        endpoint = SerialEndpoint(
            base,
            number("baudrate", 19200),
            number("bytesize", 8),
            params.get("parity", "N"),
            number("stopbits", 1),
        )
    expected: dict[int, tuple[str, str]] = {}
    if profile is not None:
        wanted = (
            {n for n, b in profile.buses.items() if isinstance(b, LockboardBus)}
            if scheme == "lockboard"
            else _modbus_buses(profile)
        )
        expected = _expected(profile, wanted)
    return Line(label, scheme, endpoint, expected, profiled=profile is not None, profile=profile)


# ------------------------------------------------------------------------------------ probing
def _can_open(line: Line, timeout_s: float) -> str | None:
    """Why the line's port cannot be opened, or None when it can."""
    endpoint = line.endpoint
    try:
        if isinstance(endpoint, TcpEndpoint):
            with socket.create_connection(
                (endpoint.host, endpoint.port), timeout=max(timeout_s, 0.5)
            ):
                return None
        import serial

        port = serial.serial_for_url(endpoint.url, baudrate=endpoint.baudrate, timeout=0)
        port.close()
    except (OSError, ValueError) as err:
        return str(err) or type(err).__name__
    except Exception as err:  # serial.SerialException and its URL-handler cousins
        return str(err) or type(err).__name__
    return None


class _ModbusProber:
    def __init__(self, line: Line, timeout_s: float, profile: Profile | None) -> None:
        from adc.drivers.modbus_client import ModbusClient

        self.client = ModbusClient(line.label, line.endpoint, timeout_s=timeout_s, retries=0)
        self.profile = profile

    def probe(self, address: int, expected: tuple[str, str] | None) -> tuple[str, str]:
        """(outcome, detail): outcome is answered, wrong-kind, silent or garbled."""
        table, start = Table.HOLDING, 0
        model = self.profile.devices.get(expected[0]) if expected and self.profile else None
        if isinstance(model, ModbusDIO):
            table, start = Table.DISCRETE_INPUTS, model.discrete_inputs.start
        elif isinstance(model, ModbusLoadcell):
            table, start = Table.INPUT, model.status_start
        try:
            self.client.read(f"unit {address}", address, table, start, 1)
        except ModbusExceptionReply as err:
            if model is not None:
                return "wrong-kind", f"answers, but not like a {model.kind}: {err.message}"
            return "answered", f"answers (exception {err.code:02X} to a holding-register read)"
        except DeviceOffline:
            return "silent", "no answer"
        except DeviceFault as err:
            return "garbled", err.message
        return "answered", "answers"

    def close(self) -> None:
        self.client.close()


class _LockboardProber:
    def __init__(self, line: Line, timeout_s: float, profile: Profile | None) -> None:
        from adc.drivers.lockboard import LockboardClient

        assert isinstance(line.endpoint, SerialEndpoint)
        self.client = LockboardClient(line.label, line.endpoint, timeout_s=timeout_s, retries=0)

    def probe(self, address: int, expected: tuple[str, str] | None) -> tuple[str, str]:
        from adc.drivers import lockboard_protocol as lp

        try:
            self.client.exchange(f"board {address}", lp.status_request(address), address)
        except DeviceOffline:
            return "silent", "no answer"
        except DeviceFault as err:
            return "garbled", err.message
        return "answered", "answers"

    def close(self) -> None:
        self.client.close()


def _unit(transport: str) -> str:
    return "board" if transport == "lockboard" else "unit"


def _addresses(line: Line, addresses: list[int] | None) -> list[int]:
    """What to probe: the range asked for (or the transport's whole range) and every expected
    address; never Modbus unit 0 (broadcast: nobody answers) nor 248-255 (reserved)."""
    wanted = set(addresses or DEFAULT_RANGE[line.transport]) | set(line.expected)
    if line.transport != "lockboard":
        wanted = {a for a in wanted if 1 <= a <= 247}
    return sorted(wanted)


def scan_line(
    line: Line, addresses: list[int] | None, timeout_s: float, profile: Profile | None
) -> list[Check]:
    """Probe one line; a check per expected address and per unexpected one that answered."""
    why = _can_open(line, timeout_s)
    where = str(line.endpoint)
    if why is not None:
        return [
            Check(
                line.label,
                where,
                Verdict.FAIL,
                f"cannot open {where}: {why}; its devices were not probed",
                {"expected": sorted(line.expected)},
                ["port"],
            )
        ]
    wanted = _addresses(line, addresses)
    profile = line.profile or profile
    prober: Any = (
        _LockboardProber(line, timeout_s, profile)
        if line.transport == "lockboard"
        else _ModbusProber(line, timeout_s, profile)
    )
    unit = _unit(line.transport)
    checks: list[Check] = []
    try:
        for address in wanted:
            expected = line.expected.get(address)
            outcome, detail = prober.probe(address, expected)
            data = {"line": line.label, "address": address}
            if expected is not None:
                name, kind = expected
                subject = f"device {name} ({kind}, {unit} {address})"
                if outcome == "answered":
                    checks.append(
                        Check(subject, name, Verdict.PASS, f"{detail} on {line.label}", data)
                    )
                elif outcome == "silent":
                    checks.append(
                        Check(
                            subject,
                            name,
                            Verdict.FAIL,
                            f"expected on {line.label}: no answer",
                            data,
                            ["missing"],
                        )
                    )
                else:
                    flag = "noisy" if outcome == "garbled" else outcome
                    checks.append(Check(subject, name, Verdict.FAIL, detail, data, [flag]))
            elif outcome != "silent":
                subject = f"{unit} {address} on {line.label}"
                if outcome == "garbled":
                    checks.append(Check(subject, None, Verdict.FAIL, detail, data, ["noisy"]))
                elif line.profiled:
                    checks.append(
                        Check(
                            subject,
                            None,
                            Verdict.FAIL,
                            f"{detail}, but is not in the profile",
                            data,
                            ["not-in-profile"],
                        )
                    )
                else:
                    checks.append(Check(subject, None, Verdict.PASS, detail, data))
    finally:
        prober.close()
    return checks


def scan_lines(
    lines: list[Line],
    *,
    addresses: list[int] | None = None,
    timeout_s: float = 0.05,
    profile: Profile | None = None,
    target: str = "",
) -> Report:
    report = Report("scan", target or ", ".join(line.label for line in lines))
    for line in lines:
        count = len(_addresses(line, addresses))
        report.notes.append(
            f"{line.label} ({line.transport} {line.endpoint}): {count} addresses, "
            f"{timeout_s * 1000:.0f} ms timeout each"
        )
        report.checks += scan_line(line, addresses, timeout_s, profile)
    return report


# ----------------------------------------------------------------------- through the driver port
def _probe_point(profile: Profile, device: str) -> tuple[str, str]:
    model = profile.devices[device]
    if isinstance(model, LockboardCU16):
        return "lock", f"{device}:lock.0"
    if isinstance(model, ModbusDIO):
        return "input", f"{device}:di.0"
    return "weight", f"{device}:ch.0"


def scan_driver(bench: Bench) -> Report:
    """Probe each device of the profile through the driver port (backends without a wire)."""
    report = Report("scan", bench.target)
    report.notes.append(
        "no wire to probe on this backend: each device of the profile was read through the "
        "driver; addresses outside the profile cannot be probed here"
    )
    profile, driver = bench.profile, bench.driver
    for name, model in profile.devices.items():
        kind, point = _probe_point(profile, name)
        unit = _unit(profile.buses[model.bus].transport)
        subject = f"device {name} ({model.kind}, {unit} {model.address})"
        data = {"line": f"bus {model.bus}", "address": model.address}
        try:
            if kind == "lock":
                driver.lock_engaged(point)
            elif kind == "input":
                driver.input_active(point)
            else:
                driver.weight(point)
        except DeviceOffline as err:
            report.add(Check(subject, name, Verdict.FAIL, err.message, data, ["missing"]))
            continue
        except DriverError as err:
            report.add(Check(subject, name, Verdict.FAIL, err.message, data, ["noisy"]))
            continue
        report.add(Check(subject, name, Verdict.PASS, f"answers on bus {model.bus}", data))
    return report


def lines_from_driver(driver: object) -> list[Line] | None:
    """The lines an open wire driver talks on (one per client: a gateway may carry several
    buses), with the profile's devices expected on each; None for a backend without a wire."""
    from adc.drivers.lockboard import LockboardClient

    parts = getattr(driver, "parts", None)
    if parts is None:
        return None
    profile: Profile = driver.profile  # type: ignore[attr-defined]
    clients: dict[int, tuple[Any, set[str]]] = {}
    for part in parts:
        for bus, client in getattr(part, "clients", {}).items():
            clients.setdefault(id(client), (client, set()))[1].add(bus)
    lines = []
    for client, buses in clients.values():
        endpoint = client.endpoint
        transport = (
            "lockboard"
            if isinstance(client, LockboardClient)
            else "modbus-tcp"
            if isinstance(endpoint, TcpEndpoint)
            else "modbus-rtu"
        )
        label = ("bus " if len(buses) == 1 else "buses ") + ", ".join(sorted(buses))
        lines.append(Line(label, transport, endpoint, _expected(profile, buses), profiled=True))
    return lines
