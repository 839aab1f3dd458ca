"""Serve a whole VirtualCabinet on the wire, in real time: what `adc sim serve` runs.

Every bus of the profile gets an emulator: a Modbus TCP bus a TCP server (at the address asked
for, else the profile's), a Modbus RTU or lock-board bus a pseudo-terminal (`pty=True`) or the
port the profile names (any pyserial URL). The cabinet runs in a `simpy.rt.RealtimeEnvironment`:
`run_realtime` steps it when each event is due and holds the emulators' lock only while it steps,
so a request is served between events and always sees a consistent cabinet. A small ticker process
keeps `env.now` moving between events, so time-based readings (settling, drift) follow the clock.

Faults (`adc.sim.faults`) are given as `FaultSpec`s: at start (`--fault`), or while it runs through
the control socket (`FaultControl`, a Unix socket with one line-based command per connection:
`inject SPEC`, `clear SPEC`, `list`; the answer is `ok: ...` or `error: ...` lines), which is what
`adc sim fault` talks to.
"""

from __future__ import annotations

import os
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simpy
import simpy.rt

from adc.profiles.models import LockboardBus, ModbusRtuBus, ModbusTcpBus, Profile
from adc.sim.cabinet import VirtualCabinet
from adc.sim.emulator_lockboard import LockboardEmulator
from adc.sim.emulator_modbus import ModbusRtuEmulator, ModbusTcpEmulator
from adc.sim.errors import SimInputError
from adc.sim.faults import FaultSpec, parse_fault_spec

TICK_S = 0.02  # simulated seconds between ticks that keep env.now moving


@dataclass(frozen=True)
class Served:
    """Where one bus is served."""

    bus: str
    transport: str  # modbus-tcp | modbus-rtu | lockboard
    where: str  # HOST:PORT, a pty path or a serial URL

    def hint(self, profile: Profile) -> str:
        """A command line a person can try against it."""
        if self.transport == "modbus-tcp":
            host, _, port = self.where.rpartition(":")
            unit = next((d.address for d in profile.devices.values() if d.bus == self.bus), 1)
            return f"mbpoll -m tcp -p {port} -a {unit} -t 1 -r 1 -c 8 -1 {host}"
        if self.transport == "modbus-rtu":
            unit = next((d.address for d in profile.devices.values() if d.bus == self.bus), 1)
            baud = getattr(profile.buses[self.bus], "baudrate", 19200)
            return f"mbpoll -m rtu -b {baud} -P none -a {unit} -t 1 -r 1 -c 8 -1 {self.where}"
        return f"driver URI lockboard://{self.where}?profile={profile.name}"


class CabinetServer:
    """The emulators of every bus of one cabinet, sharing one lock with the clock that runs it."""

    def __init__(
        self,
        cabinet: VirtualCabinet,
        *,
        tcp: tuple[str, int] | None = None,
        pty: bool = False,
        line_timing: bool = False,
    ) -> None:
        self.cabinet = cabinet
        self.lock = threading.RLock()
        self.tcp = tcp
        self.pty = pty
        self.line_timing = line_timing
        self.emulators: list[Any] = []
        self.served: list[Served] = []
        self.on_fault: Callable[[str], None] = lambda _text: None  # told of each change

    # ------------------------------------------------------------------------------------ faults
    def inject(self, spec: FaultSpec) -> str:
        """Inject a fault now or `spec.at_s` seconds (simulated) from now; SimInputError (nothing
        changes) if the cabinet has no such target. Returns what was done, in a line."""
        with self.lock:
            target = self.cabinet.sim_check_fault(spec.kind, spec.target)
            name = f"{spec.kind}" + (f" {target}" if target else "")
            if spec.at_s:
                self.cabinet.env.process(self._inject_later(spec, name))
                return f"{name} in {spec.at_s:g} s"
            self.cabinet.sim_inject_fault(spec.kind, spec.target, **dict(spec.params))
        self.on_fault(f"fault injected: {name}")
        return f"{name} injected"

    def _inject_later(self, spec: FaultSpec, name: str) -> Generator[simpy.Event, Any, None]:
        assert spec.at_s is not None
        yield self.cabinet.env.timeout(spec.at_s)
        self.cabinet.sim_inject_fault(spec.kind, spec.target, **dict(spec.params))  # under the lock
        self.on_fault(f"fault injected: {name} (at {self.cabinet.env.now:.1f} s)")

    def clear(self, spec: FaultSpec) -> str:
        """Repair a fault (one that is not active is no error)."""
        if spec.at_s is not None or spec.params:
            raise SimInputError(f"clear {spec}: takes KIND:TARGET only (no @TIME, no parameters)")
        with self.lock:
            target = self.cabinet.sim_check_fault(spec.kind, spec.target)
            name = f"{spec.kind}" + (f" {target}" if target else "")
            active = any(
                (f.kind, f.target) == (spec.kind, target) for f in self.cabinet.active_faults()
            )
            self.cabinet.sim_clear_fault(spec.kind, spec.target)
        if not active:
            return f"{name} was not active"
        self.on_fault(f"fault cleared: {name}")
        return f"{name} cleared"

    def fault_lines(self) -> list[str]:
        """The faults in force now, one line each."""
        with self.lock:
            active = self.cabinet.active_faults()
            now = self.cabinet.env.now
        lines = []
        for fault in active:
            params = "".join(f",{k}={v}" for k, v in fault.params)
            where = f":{fault.target}" if fault.target else ""
            lines.append(f"{fault.kind}{where}{params} (since {now - fault.since:.0f} s)")
        return lines or ["no faults"]

    def start(self) -> list[Served]:
        """Start every bus's emulator; on failure, stop the ones started and re-raise."""
        profile = self.cabinet.profile
        tcp_buses = [n for n, b in profile.buses.items() if isinstance(b, ModbusTcpBus)]
        try:
            for name, bus in profile.buses.items():
                if isinstance(bus, ModbusTcpBus):
                    host, port = self.tcp if self.tcp else (bus.host, bus.port)
                    if self.tcp and port and len(tcp_buses) > 1:
                        port += tcp_buses.index(name)  # several TCP buses: consecutive ports
                    tcp = ModbusTcpEmulator(self.cabinet, name, host, port, lock=self.lock)
                    self.emulators.append(tcp.start())
                    where = "{}:{}".format(*tcp.address)
                    self.served.append(Served(name, "modbus-tcp", where))
                    continue
                port_url = None if self.pty else bus.port
                serial: Any
                if isinstance(bus, ModbusRtuBus):
                    serial = ModbusRtuEmulator(
                        self.cabinet, name, port_url, line_timing=self.line_timing, lock=self.lock
                    )
                else:
                    assert isinstance(bus, LockboardBus)
                    serial = LockboardEmulator(
                        self.cabinet, name, port_url, line_timing=self.line_timing, lock=self.lock
                    )
                self.emulators.append(serial.start())
                self.served.append(Served(name, bus.transport, serial.port))
        except BaseException:
            self.close()
            raise
        return self.served

    def run_realtime(self, stop: threading.Event) -> None:
        """Run the cabinet's environment against the wall clock until `stop` is set."""
        env = self.cabinet.env
        if not isinstance(env, simpy.rt.RealtimeEnvironment):
            raise TypeError("run_realtime needs a VirtualCabinet on a RealtimeEnvironment")
        env.process(_ticker(env))
        env.sync()
        while not stop.is_set():
            with self.lock:
                due_at = env.peek()
            due = env.real_start + (due_at - env.env_start) * env.factor
            wait = due - time.monotonic()
            if wait > 0:
                stop.wait(min(wait, 0.1))
                continue
            with self.lock:
                env.step()

    def close(self) -> None:
        for emulator in reversed(self.emulators):
            emulator.close()
        self.emulators.clear()


def default_control_path() -> Path:
    """Where `adc sim serve` listens for `adc sim fault` unless told otherwise: one per user."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"adc-sim-{os.getuid()}.sock"


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False  # a socket left behind by a serve that was killed
    except OSError:
        return True  # slow or busy: someone is there
    finally:
        probe.close()


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # never a traceback on the serve's terminal for one client's trouble


class FaultControl:
    """The control socket of a running `adc sim serve`: one command line per connection.

    `inject SPEC` / `clear SPEC` (SPEC as `adc.sim.faults.parse_fault_spec` reads it) and `list`;
    the answer is one or more lines, each starting `ok: ` or, for a refused command, `error: `."""

    def __init__(self, server: CabinetServer, path: Path) -> None:
        self.server = server
        self.path = path
        self._socket: socketserver.UnixStreamServer | None = None
        self._inode = -1

    def start(self) -> Path:
        """Listen at `path`; OSError if a live server already does (a stale socket is replaced)."""
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise OSError(f"control socket {self.path} is in use by another adc sim serve")
            self.path.unlink()
        control = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    line = self.rfile.readline(4096).decode("utf-8", "replace").strip()
                    answers = control.command(line)
                    self.wfile.write("".join(a + "\n" for a in answers).encode())
                except OSError:
                    pass  # the client went away before the answer: what it asked is done

        self._socket = _ControlServer(str(self.path), Handler)
        os.chmod(self.path, 0o600)
        self._inode = self.path.stat().st_ino
        threading.Thread(target=self._socket.serve_forever, daemon=True).start()
        return self.path

    def command(self, line: str) -> list[str]:
        verb, _, rest = line.partition(" ")
        try:
            if verb == "list" and not rest.strip():
                return [f"ok: {text}" for text in self.server.fault_lines()]
            if verb in ("inject", "clear") and rest.strip():
                spec = parse_fault_spec(rest)
                done = self.server.inject(spec) if verb == "inject" else self.server.clear(spec)
                return [f"ok: {done}"]
        except SimInputError as err:
            return [f"error: {err.message}"]
        except Exception as err:  # the client hears of it; the server goes on
            return [f"error: {type(err).__name__}: {err}"]
        return [f"error: {line[:80]!r}: wants inject KIND:TARGET[@TIME], clear KIND:TARGET or list"]

    def close(self) -> None:
        if self._socket is not None:
            done = threading.Thread(target=self._socket.shutdown, daemon=True)
            done.start()
            done.join(timeout=5)  # shutdown() waits for serve_forever without a bound
            self._socket.server_close()
            self._socket = None
            try:
                if self.path.stat().st_ino == self._inode:  # still ours: not another serve's
                    self.path.unlink()
            except OSError:
                pass


def send_fault_command(path: Path, line: str, timeout_s: float = 5.0) -> list[str]:
    """Send one command line to a serve's control socket; its answer lines. OSError if nobody
    listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        client.connect(str(path))
        client.sendall(line.encode() + b"\n")
        client.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := client.recv(4096):
            data += chunk
    return data.decode("utf-8", "replace").splitlines()


def _ticker(env: simpy.Environment) -> Generator[simpy.Event, None, None]:
    while True:
        yield env.timeout(TICK_S)


def realtime_cabinet(profile: Profile, factor: float = 1.0, seed: int = 0) -> VirtualCabinet:
    """A VirtualCabinet whose SimPy time follows the wall clock (`factor` real seconds per
    simulated second: 1 real time, 0.5 twice as fast)."""
    env = simpy.rt.RealtimeEnvironment(factor=factor, strict=False)
    return VirtualCabinet(profile, env=env, seed=seed)
