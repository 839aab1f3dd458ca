"""DIO modules whose lock coils are plain latched outputs (`coil_mode = "latched"`): the driver
writes 1, switches the coil off itself after `pulse_ms` (without the caller waiting) and reads it
back; a coil still on after its pulse is an alarm. Over every tier, on the shipped profiles with
DIO locks, their DIO modules switched to latched mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adc.drivers.base import DeviceFault, RearmRefused
from adc.profiles import load_profile
from adc.profiles.models import ModbusDIO, Profile
from adc.profiles.points import PointRef
from tests.conftest import PROFILES
from tests.contract.helpers import doors, pulse_s, pulses, rearm_s, release_s
from tests.contract.rigs import RIGS, Rig

SEED = 7


def latched(name: str) -> Profile:
    profile = load_profile(PROFILES / f"{name}.toml")
    devices = {
        n: d.model_copy(update={"coil_mode": "latched"}) if isinstance(d, ModbusDIO) else d
        for n, d in profile.devices.items()
    }
    return profile.model_copy(update={"devices": devices})


@pytest.fixture(params=["tcp-6drawer", "cs-small"])
def latched_profile(request: pytest.FixtureRequest) -> Profile:
    return latched(request.param)


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest, latched_profile: Profile) -> Iterator[Rig]:
    with RIGS[request.param](latched_profile, SEED) as built:
        yield built


def _dio_lock(rig: Rig) -> str:
    for door in doors(rig.profile):
        if isinstance(rig.profile.devices[PointRef.parse(door.lock).device], ModbusDIO):
            return door.lock
    pytest.skip("no DIO lock")


def _energised(rig: Rig, lock: str) -> bool:
    return bool(rig.cabinet._parts.solenoids[lock].energised)


def test_the_driver_switches_a_latched_coil_off_after_its_pulse(rig: Rig) -> None:
    lock = _dio_lock(rig)
    door = next(d for d in doors(rig.profile) if d.lock == lock)
    assert rig.cabinet.device(lock.partition(":")[0]).latched  # type: ignore[union-attr]
    rig.driver.pulse(lock)
    rig.advance(release_s(rig.profile))
    assert not rig.driver.lock_engaged(lock) and _energised(rig, lock)
    rig.advance(pulse_s(rig.profile, lock))
    # The off-write is the driver's: due now, done by its timer or before its next answer.
    assert rig.driver.lock_engaged(lock)
    assert not _energised(rig, lock), "the latched coil stayed on after its pulse"
    assert not rig.cabinet.sim_open(door.target)
    health = rig.driver.health()[lock.partition(":")[0]]
    assert health.errors == 0 and health.online


def test_a_plain_module_accepts_every_pulse_but_the_driver_does_not(rig: Rig) -> None:
    lock = _dio_lock(rig)
    before = pulses(rig, lock)
    rig.driver.pulse(lock)
    rig.advance(pulse_s(rig.profile, lock) + 0.05)
    with pytest.raises(RearmRefused):
        rig.driver.pulse(lock)
    assert pulses(rig, lock) == before + 1
    rig.advance(rearm_s(rig.profile, lock))
    rig.driver.pulse(lock)
    assert pulses(rig, lock) == before + 2


def test_a_coil_still_on_after_its_pulse_is_an_alarm(rig: Rig) -> None:
    lock = _dio_lock(rig)
    device = lock.partition(":")[0]
    solenoid = rig.cabinet._parts.solenoids[lock]
    let_go = solenoid.let_go
    solenoid.let_go = lambda: None  # the module's output is stuck on
    rig.driver.pulse(lock)
    rig.advance(pulse_s(rig.profile, lock) + 0.05)
    assert not rig.driver.lock_engaged(lock), "a lock whose coil is on was reported engaged"
    health = rig.driver.health()[device]
    assert health.errors >= 1
    assert health.last_error is not None and lock in health.last_error
    assert "still on" in health.last_error
    rig.advance(rearm_s(rig.profile, lock))
    with pytest.raises(DeviceFault) as stuck:
        rig.driver.pulse(lock)
    assert stuck.value.point == lock and "still on" in str(stuck.value)
    solenoid.let_go = let_go  # repaired: the next call switches it off
    assert rig.driver.lock_engaged(lock)
    assert not _energised(rig, lock)
    rig.driver.pulse(lock)
