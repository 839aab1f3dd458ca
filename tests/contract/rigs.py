"""Backends the contract suite runs over, each as a "rig": a driver plus a hand on the cabinet.

A rig factory takes a profile and a seed and is a context manager yielding a `Rig`. To add a
backend (Modbus TCP against the emulator, RTU on a pty, lock boards on a pty), add one factory to
`RIGS`: the whole suite then runs over it too. The factory owns everything the backend needs
(servers, ptys, threads) and tears it down on exit.

Time: `rig.advance(seconds)` lets time pass in the VirtualCabinet behind the driver. For the
in-process backend it runs the SimPy environment; a wire rig whose emulator runs the environment
itself makes it run that far (or wait for it) and returns only once the cabinet's `env.now` moved.
Between `advance` calls the cabinet's time must stand still (no free-running realtime clock), so
that what a test reads is determined by what it did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from adc.drivers.base import CabinetDriver
from adc.profiles.models import Profile
from adc.sim.cabinet import VirtualCabinet


@dataclass
class Rig:
    """The driver under test and the VirtualCabinet behind it (the simulated person, faults)."""

    backend: str
    driver: CabinetDriver
    cabinet: VirtualCabinet
    advance: Callable[[float], None]

    @property
    def profile(self) -> Profile:
        return self.driver.profile


RigFactory = Callable[[Profile, int], AbstractContextManager[Rig]]


@contextmanager
def sim_rig(profile: Profile, seed: int) -> Iterator[Rig]:
    """Tier 1: the in-process driver, bound to the cabinet directly."""
    from adc.drivers.registry import open_backend

    cabinet = VirtualCabinet(profile, seed=seed)
    driver = open_backend("sim:", profile, cabinet=cabinet)
    try:
        yield Rig("sim", driver, cabinet, cabinet.run)
    finally:
        driver.close()


RIGS: dict[str, RigFactory] = {
    "sim": sim_rig,
}

# Tier 2: the wire drivers against the emulators (tests/contract/wire_backends.py).
from tests.contract.wire_backends import WIRE_RIGS  # noqa: E402

RIGS.update(WIRE_RIGS)
