"""Tier 2 of the contract: the real wire drivers against the emulators serving the same cabinet.

Two rigs, each opening the profile's buses through the `profile:` backend with the ports moved to
emulators: `wire-tcp` serves every Modbus bus on a Modbus TCP emulator (a gateway on loopback) and
`wire-rtu` every Modbus bus as RTU on a pseudo-terminal; both serve lock-board buses on a
pseudo-terminal. Real frames cross real sockets and ptys.

Time: the emulators and `advance` share one lock, so the cabinet's time stands still while a
request is served and moves only inside `advance`; the drivers' clock is the cabinet's `env.now`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from adc.profiles.models import LockboardBus, Profile
from adc.sim.cabinet import VirtualCabinet
from tests.contract.rigs import Rig, RigFactory

TIMEOUT_S = 0.1  # loopback and ptys answer in well under a millisecond; keeps fault tests short


@contextmanager
def _wire_rig(profile: Profile, seed: int, modbus_over: str) -> Iterator[Rig]:
    from adc.drivers.registry import open_backend
    from adc.sim.emulator_lockboard import LockboardEmulator
    from adc.sim.emulator_modbus import ModbusRtuEmulator, ModbusTcpEmulator

    cabinet = VirtualCabinet(profile, seed=seed)
    lock = threading.RLock()
    ports: dict[str, str] = {}
    with ExitStack() as stack:
        for name, bus in profile.buses.items():
            emulator: Any
            if isinstance(bus, LockboardBus):
                emulator = stack.enter_context(LockboardEmulator(cabinet, name, lock=lock))
                ports[name] = emulator.port
            elif modbus_over == "tcp":
                emulator = stack.enter_context(ModbusTcpEmulator(cabinet, name, lock=lock))
                host, port = emulator.address
                ports[name] = f"tcp://{host}:{port}"
            else:
                emulator = stack.enter_context(ModbusRtuEmulator(cabinet, name, lock=lock))
                ports[name] = emulator.port

        def advance(seconds: float) -> None:
            with lock:
                cabinet.run(seconds)

        # The driver's waits (a lock board's bolt confirmation) let the cabinet's time pass.
        driver = open_backend(
            "profile:",
            profile,
            ports=ports,
            clock=lambda: cabinet.env.now,
            timeout_s=TIMEOUT_S,
            wait=advance,
        )
        stack.callback(driver.close)

        yield Rig(f"wire-{modbus_over}", driver, cabinet, advance)


@contextmanager
def tcp_rig(profile: Profile, seed: int) -> Iterator[Rig]:
    with _wire_rig(profile, seed, "tcp") as rig:
        yield rig


@contextmanager
def rtu_rig(profile: Profile, seed: int) -> Iterator[Rig]:
    with _wire_rig(profile, seed, "rtu") as rig:
        yield rig


WIRE_RIGS: dict[str, RigFactory] = {"wire-tcp": tcp_rig, "wire-rtu": rtu_rig}
