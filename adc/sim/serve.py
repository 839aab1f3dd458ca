"""Serve a whole VirtualCabinet on the wire, in real time: what `adc sim serve` runs.

Every bus of the profile gets an emulator: a Modbus TCP bus a TCP server (at the address asked
for, else the profile's), a Modbus RTU or lock-board bus a pseudo-terminal (`pty=True`) or the
port the profile names (any pyserial URL). The cabinet runs in a `simpy.rt.RealtimeEnvironment`:
`run_realtime` steps it when each event is due and holds the emulators' lock only while it steps,
so a request is served between events and always sees a consistent cabinet. A small ticker process
keeps `env.now` moving between events, so time-based readings (settling, drift) follow the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy
import simpy.rt

from adc.profiles.models import LockboardBus, ModbusRtuBus, ModbusTcpBus, Profile
from adc.sim.cabinet import VirtualCabinet
from adc.sim.emulator_lockboard import LockboardEmulator
from adc.sim.emulator_modbus import ModbusRtuEmulator, ModbusTcpEmulator

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


def _ticker(env: simpy.Environment) -> Generator[simpy.Event, None, None]:
    while True:
        yield env.timeout(TICK_S)


def realtime_cabinet(profile: Profile, factor: float = 1.0, seed: int = 0) -> VirtualCabinet:
    """A VirtualCabinet whose SimPy time follows the wall clock (`factor` real seconds per
    simulated second: 1 real time, 0.5 twice as fast)."""
    env = simpy.rt.RealtimeEnvironment(factor=factor, strict=False)
    return VirtualCabinet(profile, env=env, seed=seed)
