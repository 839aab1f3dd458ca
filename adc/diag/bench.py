"""The cabinet under test: its driver, and how to wait, whom to ask and how to reach service functions.

`open_bench` opens the backend a command names (`--backend URI`, else `--profile PATH` meaning the
profile's own buses, else the registered cabinet's profile) and chooses, once, the three
capabilities the procedures use (see adc/diag/__init__.py). Tests build a `Bench` around a rig's
driver with `bench_for`, passing the rig's own way to advance time and its cabinet's person.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from adc.diag.person import Ask, NoPerson, Person, PromptPerson, SimulatedPerson
from adc.diag.service import ServiceAccess, service_for
from adc.errors import BadInput
from adc.waiting import Waiter, waiter_for

if TYPE_CHECKING:
    from adc.controller.access import ServiceCycle
    from adc.drivers.base import CabinetDriver
    from adc.profiles.models import Profile


class Gate(Protocol):
    """Where a procedure's lock pulses go through the controller's access machine: one
    `ServiceCycle` per lock cycled, its access on record before the pulse (`Recorder.gate`)."""

    def cycle(
        self, driver: CabinetDriver, drawer: str, pocket: str | None, lock: str
    ) -> ServiceCycle: ...


class PersonMode(StrEnum):
    AUTO = "auto"  # the simulated person if the cabinet is in-process, else prompt on a terminal
    PROMPT = "prompt"
    NONE = "none"
    SIMULATED = "simulated"


@dataclass
class Bench:
    driver: CabinetDriver
    waiter: Waiter
    person: Person
    service: ServiceAccess
    target: str
    gate: Gate | None = None  # None: no database to record an access on, so no lock is pulsed

    @property
    def profile(self) -> Profile:
        return self.driver.profile

    def close(self) -> None:
        self.driver.close()


def _virtual_cabinet(driver: object) -> object | None:
    """The VirtualCabinet a driver holds in this process, if it holds one (its simulated person)."""
    cabinet = getattr(driver, "cabinet", None)
    return cabinet if hasattr(cabinet, "sim_open") else None


def person_for(driver: object, mode: PersonMode | str, ask: Ask | None) -> Person:
    mode = PersonMode(mode)
    cabinet = _virtual_cabinet(driver)
    if mode is PersonMode.SIMULATED or (mode is PersonMode.AUTO and cabinet is not None):
        if cabinet is None:
            raise BadInput(
                "--person simulated needs the in-process virtual cabinet (--backend sim:PROFILE); "
                "the emulators of `adc sim serve` run in another process and cannot be reached"
            )
        return SimulatedPerson(cabinet)
    if mode is PersonMode.PROMPT or (mode is PersonMode.AUTO and sys.stdin.isatty()):
        if ask is None:
            raise BadInput("--person prompt needs a terminal to ask on")
        return PromptPerson(ask)
    return NoPerson()


def bench_for(
    driver: CabinetDriver,
    *,
    target: str = "",
    waiter: Waiter | None = None,
    person: Person | None = None,
    gate: Gate | None = None,
) -> Bench:
    """A bench around an open driver; missing capabilities are chosen from the driver."""
    return Bench(
        driver=driver,
        waiter=waiter or waiter_for(driver),
        person=person or person_for(driver, PersonMode.AUTO, None),
        service=service_for(driver),
        target=target or driver.profile.name,
        gate=gate,
    )


def load(profile: str) -> Profile:
    from adc.profiles import load_profile, resolve_profile_path

    return load_profile(resolve_profile_path(profile))


def open_bench(
    *,
    backend: str | None,
    profile: str | None,
    cabinet_profile: str | None = None,
    timeout_ms: int | None = None,
    person: PersonMode | str = PersonMode.AUTO,
    ask: Ask | None = None,
) -> Bench:
    """Open what a command names: `backend` (a URI), else `profile`'s own buses, else those of
    the registered cabinet's profile (`cabinet_profile`, a path or shipped name)."""
    from adc.drivers.registry import open_backend

    options: dict[str, object] = {}
    if timeout_ms is not None:
        options["timeout_s"] = timeout_ms / 1000
    chosen = profile or cabinet_profile
    loaded = load(chosen) if chosen else None
    if backend:
        uri = backend
    elif loaded is not None:
        uri = "profile:"
    else:
        raise BadInput(
            "say which cabinet to test: --backend URI (sim:PROFILE, modbus-tcp://HOST:PORT, ...), "
            "--profile PATH (its own buses) or --cabinet ID (a registered cabinet)"
        )
    driver = open_backend(uri, loaded, **options)
    try:
        return Bench(
            driver=driver,
            waiter=waiter_for(driver),
            person=person_for(driver, person, ask),
            service=service_for(driver),
            target=uri if uri != "profile:" else f"profile:{chosen}",
        )
    except BaseException:
        driver.close()
        raise
