"""Locks: unlock → open → close → relock, relock when nobody pulls, and the re-arm window."""

from __future__ import annotations

import pytest

from adc.drivers.base import RearmRefused
from adc.profiles.models import LockboardCU16, ModbusDIO, Profile
from tests.contract.conftest import SEED
from tests.contract.helpers import (
    accept_every_pulse,
    doors,
    drawer_door,
    has_feedback,
    pulse_s,
    rearm_s,
    release_s,
    unlock_and_open,
)
from tests.contract.rigs import RIGS, Rig


def test_every_lock_starts_engaged_and_every_door_closed(rig: Rig) -> None:
    for door in doors(rig.profile):
        assert rig.driver.lock_engaged(door.lock), door.lock
        if door.switch:
            assert rig.driver.input_active(door.switch), door.switch


def test_unlock_open_close_relock(rig: Rig) -> None:
    door = drawer_door(rig.profile, rig.profile.layout.drawers[0])
    assert not rig.cabinet.sim_open(door.target), "a locked drawer opened"
    assert door.switch is not None and rig.driver.input_active(door.switch)

    unlock_and_open(rig, door)
    assert not rig.driver.input_active(door.switch)
    assert not rig.driver.lock_engaged(door.lock)
    rig.advance(pulse_s(rig.profile, door.lock))  # the pulse is over; the drawer is still out
    assert not rig.driver.input_active(door.switch)
    assert not rig.driver.lock_engaged(door.lock), "an open drawer was reported locked"

    rig.cabinet.sim_close(door.target)
    assert rig.driver.input_active(door.switch)
    assert rig.driver.lock_engaged(door.lock)
    assert not rig.cabinet.sim_open(door.target), "the drawer did not relock when closed"


def test_every_lock_relocks_after_its_pulse_when_nobody_pulls(rig: Rig) -> None:
    for door in doors(rig.profile):
        rig.driver.pulse(door.lock)
        rig.advance(release_s(rig.profile))
        assert not rig.driver.lock_engaged(door.lock), f"{door.lock} engaged during its pulse"
        rig.advance(pulse_s(rig.profile, door.lock))
        assert rig.driver.lock_engaged(door.lock), f"{door.lock} did not re-engage"
        assert not rig.cabinet.sim_open(door.target), f"{door.target} opened after the pulse"


def test_pulse_inside_rearm_window_is_refused_then_allowed(rig: Rig) -> None:
    door = drawer_door(rig.profile, rig.profile.layout.drawers[-1])
    rearm = rearm_s(rig.profile, door.lock)
    rig.driver.pulse(door.lock)
    rig.advance(pulse_s(rig.profile, door.lock) + 0.05)
    with pytest.raises(RearmRefused) as refused:
        rig.driver.pulse(door.lock)
    assert refused.value.point == door.lock
    assert refused.value.device == door.lock.partition(":")[0]
    assert 0 < refused.value.remaining_ms <= rearm * 1000
    assert rig.driver.lock_engaged(door.lock), "a refused pulse released the lock"

    rig.advance(refused.value.remaining_ms / 1000 + 0.01)
    rig.driver.pulse(door.lock)
    rig.advance(release_s(rig.profile))
    assert rig.cabinet.sim_open(door.target)


def test_feedback_hardware_reports_the_bolt_not_the_coil(rig: Rig) -> None:
    """On a lock board the status bit is the bolt: locked until the latch actually releases."""
    door = next((d for d in doors(rig.profile) if has_feedback(rig.profile, d.lock)), None)
    if door is None:
        pytest.skip("no lock with feedback in this profile")
    start = rig.cabinet.env.now
    rig.driver.pulse(door.lock)
    # A driver that confirms the unlock by the feedback lets the bolt's retract time pass first.
    retracted = rig.cabinet.env.now - start >= rig.profile.sim.actuation_ms / 1000
    assert rig.driver.lock_engaged(door.lock) is not retracted, "feedback is not the bolt"
    rig.advance(release_s(rig.profile))
    assert not rig.driver.lock_engaged(door.lock)


@pytest.mark.parametrize("how", ["pulse", "unlock_together"])
def test_rearm_is_refused_by_the_driver_whatever_the_device_accepts(rig: Rig, how: str) -> None:
    """A module or board that never refuses (no re-arm of its own) still gets no second pulse
    inside the lock's re-arm window: the driver refuses before anything goes on the wire."""
    for door in doors(rig.profile):
        solenoid = accept_every_pulse(rig, door.lock)
        before = solenoid.pulses  # type: ignore[attr-defined]
        rig.driver.pulse(door.lock)
        rig.advance(pulse_s(rig.profile, door.lock) + 0.05)
        with pytest.raises(RearmRefused) as refused:
            _pulse_again(rig, door.lock, how)
        assert refused.value.point == door.lock
        assert 0 < refused.value.remaining_ms <= rearm_s(rig.profile, door.lock) * 1000
        assert solenoid.pulses == before + 1, f"a second pulse of {door.lock} reached the device"  # type: ignore[attr-defined]
        rig.advance(rearm_s(rig.profile, door.lock))


def _pulse_again(rig: Rig, lock: str, how: str) -> None:
    if how == "pulse":
        rig.driver.pulse(lock)
    else:
        rig.driver.unlock_together([lock])


@pytest.mark.parametrize("backend", sorted(RIGS))
def test_a_lock_with_no_rearm_time_is_still_not_pulsed_during_its_pulse(
    backend: str, profile: Profile
) -> None:
    """`rearm_ms = 0` means "no cool-down beyond the pulse", not "no limit": a second pulse while
    the coil is still energised is refused by every driver before it reaches the device."""
    devices = {
        name: device.model_copy(
            update={"solenoid": device.solenoid.model_copy(update={"rearm_ms": 0})}
        )
        if isinstance(device, LockboardCU16 | ModbusDIO)
        else device
        for name, device in profile.devices.items()
    }
    with RIGS[backend](profile.model_copy(update={"devices": devices}), SEED) as rig:
        for door in doors(rig.profile):
            solenoid = accept_every_pulse(rig, door.lock)
            before = solenoid.pulses  # type: ignore[attr-defined]
            rig.driver.pulse(door.lock)
            rig.advance(release_s(rig.profile))
            with pytest.raises(RearmRefused) as refused:
                rig.driver.pulse(door.lock)
            assert 0 < refused.value.remaining_ms <= pulse_s(rig.profile, door.lock) * 1000
            assert solenoid.pulses == before + 1, f"{door.lock} pulsed twice at once"  # type: ignore[attr-defined]
            rig.advance(pulse_s(rig.profile, door.lock))
            rig.driver.pulse(door.lock)  # the pulse is over: with no re-arm time, allowed at once
            rig.advance(pulse_s(rig.profile, door.lock))
