"""`--wire`: drive a scenario's cabinets through the real Modbus and lock-board drivers.

Each bus of the virtual cabinet is served by its emulator (Modbus TCP on loopback; lock boards on a
pseudo-terminal), and the controller gets the `profile:` backend with its ports moved there: real
frames over real sockets and ptys, for soak-testing the drivers with days of ward traffic. Time
stays SimPy time: a driver call blocks the simulation (it runs inside a SimPy step) until the
emulator's thread has answered, so the cabinet cannot move while a request is on the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from adc.drivers.base import CabinetDriver
from adc.profiles.models import LockboardBus, Profile
from adc.sim.cabinet import VirtualCabinet

TIMEOUT_S = 0.2  # loopback and ptys answer in well under a millisecond


def open_wire_driver(
    cabinet: VirtualCabinet, profile: Profile
) -> tuple[CabinetDriver, Callable[[], None]]:
    """The wire driver for this cabinet, and the function that stops its emulators."""
    from adc.drivers.registry import open_backend
    from adc.sim.emulator_lockboard import LockboardEmulator
    from adc.sim.emulator_modbus import ModbusTcpEmulator

    lock = threading.RLock()
    ports: dict[str, str] = {}
    stack = ExitStack()
    try:
        for name, bus in profile.buses.items():
            emulator: Any
            if isinstance(bus, LockboardBus):
                emulator = stack.enter_context(LockboardEmulator(cabinet, name, lock=lock))
                ports[name] = emulator.port
            else:
                emulator = stack.enter_context(ModbusTcpEmulator(cabinet, name, lock=lock))
                host, port = emulator.address
                ports[name] = f"tcp://{host}:{port}"
        driver = open_backend(
            "profile:", profile, ports=ports, clock=lambda: cabinet.env.now, timeout_s=TIMEOUT_S
        )
    except BaseException:
        stack.close()
        raise
    stack.callback(driver.close)
    return driver, stack.close
