"""`unlock_together`: a drawer and its pocket's own lock released as one act, or refused with
nothing released; a failure after the first pulse went out says exactly what was released."""

from __future__ import annotations

import pytest

from adc.drivers.base import (
    DeviceOffline,
    LockNotReleased,
    PartialUnlock,
    RearmRefused,
    UnknownPoint,
    WrongPointRole,
)
from adc.profiles.models import ModbusDIO
from adc.profiles.points import PointRef
from tests.contract.helpers import (
    Door,
    first_or_skip,
    has_feedback,
    lock_pairs,
    pulse_behind_the_drivers_back,
    pulse_s,
    pulses,
    rearm_s,
    release_s,
    same_device,
)
from tests.contract.rigs import Rig


def _pair(rig: Rig, where: str) -> tuple[Door, Door]:
    pairs = lock_pairs(rig.profile)
    if where == "same-device":
        return first_or_skip(
            [p for p in pairs if same_device(p)], "drawer and pocket lock on one device"
        )
    if where == "two-devices":
        return first_or_skip(
            [p for p in pairs if not same_device(p)], "drawer and pocket lock on two devices"
        )
    return first_or_skip(pairs, "pocket with its own lock")


def _released(rig: Rig, lock: str) -> bool:
    """Read a moment after the call: a released latch is back for its whole pulse."""
    return not rig.driver.lock_engaged(lock)


def _nothing_released(rig: Rig, drawer: Door, pocket: Door) -> None:
    rig.advance(release_s(rig.profile))
    assert not _released(rig, drawer.lock), f"{drawer.lock} was released by a refused unlock"
    assert not _released(rig, pocket.lock), f"{pocket.lock} was released by a refused unlock"
    assert not rig.cabinet.sim_open(drawer.target), "the drawer opened after a refused unlock"


@pytest.mark.parametrize("where", ["same-device", "two-devices"])
def test_drawer_and_pocket_are_released_together(rig: Rig, where: str) -> None:
    drawer, pocket = _pair(rig, where)
    rig.driver.unlock_together([drawer.lock, pocket.lock])
    rig.advance(release_s(rig.profile))
    assert _released(rig, drawer.lock) and _released(rig, pocket.lock)
    assert rig.cabinet.sim_open(drawer.target)
    assert rig.cabinet.sim_open(pocket.target)
    rig.cabinet.sim_close(drawer.target)
    rig.advance(max(pulse_s(rig.profile, drawer.lock), pulse_s(rig.profile, pocket.lock)))
    assert rig.driver.lock_engaged(drawer.lock) and rig.driver.lock_engaged(pocket.lock)


def test_the_order_given_does_not_matter_and_repeats_are_one(rig: Rig) -> None:
    drawer, pocket = _pair(rig, "any")
    rig.driver.unlock_together([pocket.lock, drawer.lock, pocket.lock])
    rig.advance(release_s(rig.profile))
    assert rig.cabinet.sim_open(drawer.target) and rig.cabinet.sim_open(pocket.target)


@pytest.mark.parametrize("which", ["drawer", "pocket"])
def test_refused_with_nothing_released_while_one_is_rearming(rig: Rig, which: str) -> None:
    drawer, pocket = _pair(rig, "any")
    busy = drawer if which == "drawer" else pocket
    rig.driver.pulse(busy.lock)
    rig.advance(pulse_s(rig.profile, busy.lock) + 0.05)  # pulse over, still re-arming
    with pytest.raises(RearmRefused) as refused:
        rig.driver.unlock_together([drawer.lock, pocket.lock])
    assert refused.value.point == busy.lock
    assert refused.value.device == PointRef.parse(busy.lock).device
    assert 0 < refused.value.remaining_ms <= rearm_s(rig.profile, busy.lock) * 1000
    _nothing_released(rig, drawer, pocket)

    rig.advance(refused.value.remaining_ms / 1000 + 0.01)
    rig.driver.unlock_together([drawer.lock, pocket.lock])
    rig.advance(release_s(rig.profile))
    assert rig.cabinet.sim_open(drawer.target) and rig.cabinet.sim_open(pocket.target)


@pytest.mark.parametrize("which", ["drawer", "pocket"])
def test_refused_with_nothing_released_while_a_pulse_is_on(rig: Rig, which: str) -> None:
    """Another master's pulse still on: a coil reads on, a lock board answers busy; either way
    the unlock is refused before the driver's own pulses, or reported exactly."""
    drawer, pocket = _pair(rig, "same-device")
    busy = drawer if which == "drawer" else pocket
    pulse_behind_the_drivers_back(rig, busy.lock)
    failed: Exception | None = None
    try:
        rig.driver.unlock_together([drawer.lock, pocket.lock])
    except (RearmRefused, PartialUnlock) as err:
        failed = err
    if failed is None:
        # A lock board answers no unlock and refuses none out loud; the driver confirms by the
        # bolt, which the other master's pulse holds out: the locks are released, truly.
        assert has_feedback(rig.profile, busy.lock)
        assert _released(rig, drawer.lock) and _released(rig, pocket.lock)
        return
    assert failed.point == busy.lock  # type: ignore[attr-defined]
    if isinstance(failed, PartialUnlock):
        assert failed.not_released == (busy.lock,)


@pytest.mark.parametrize("which", ["drawer", "pocket"])
def test_refused_with_nothing_released_while_a_device_is_offline(rig: Rig, which: str) -> None:
    drawer, pocket = _pair(rig, "two-devices" if which == "pocket" else "any")
    device = PointRef.parse((drawer if which == "drawer" else pocket).lock).device
    rig.cabinet.sim_inject_fault("device_offline", device)
    with pytest.raises(DeviceOffline) as offline:
        rig.driver.unlock_together([drawer.lock, pocket.lock])
    assert offline.value.device == device
    assert offline.value.point in (drawer.lock, pocket.lock)
    rig.cabinet.sim_clear_fault("device_offline", device)
    _nothing_released(rig, drawer, pocket)


def test_bad_points_are_refused_before_any_pulse(rig: Rig) -> None:
    drawer, pocket = _pair(rig, "any")
    with pytest.raises(UnknownPoint) as unknown:
        rig.driver.unlock_together([drawer.lock, "ghost:lock.0"])
    assert unknown.value.point == "ghost:lock.0"
    assert pocket.switch is not None
    with pytest.raises(WrongPointRole) as wrong:
        rig.driver.unlock_together([drawer.lock, pocket.switch])
    assert wrong.value.point == pocket.switch
    _nothing_released(rig, drawer, pocket)


def test_a_later_refusal_says_exactly_what_was_released(rig: Rig) -> None:
    """Another master leaves one lock re-arming where this driver cannot see it (its coil is off
    again). Whichever lock that is, the error accounts for each lock as the cabinet shows it;
    where the refused lock came after one that went out, that is a PartialUnlock."""
    drawer, pocket = _pair(rig, "any")
    pair = (drawer.lock, pocket.lock)
    device = PointRef.parse(drawer.lock).device
    # one write-multiple-coils pulses both: the module refuses it whole (all or nothing), and its
    # exception 06 names no coil, so the driver cannot tell which of the pair was re-arming
    one_write = same_device((drawer, pocket)) and isinstance(rig.profile.devices[device], ModbusDIO)
    partials = 0
    for busy in pair:
        pulse_behind_the_drivers_back(rig, busy)
        rig.advance(pulse_s(rig.profile, busy) + 0.05)
        pulses_before = {lock: pulses(rig, lock) for lock in pair}
        # a lock board does not refuse out loud: the driver finds the bolt never came out
        with pytest.raises((RearmRefused, PartialUnlock, LockNotReleased)) as failed:
            rig.driver.unlock_together(list(pair))
        err = failed.value
        if one_write:
            assert isinstance(err, RearmRefused) and err.point in pair
        else:
            assert err.point == busy
        rig.advance(release_s(rig.profile))
        if isinstance(err, PartialUnlock):
            partials += 1
            assert isinstance(err.cause, RearmRefused | LockNotReleased)
            assert err.cause.point == busy
            assert set(err.released) | set(err.not_released) == set(pair)
            assert not set(err.released) & set(err.not_released)
            assert err.unconfirmed == ()
            assert busy in err.not_released
            # A driver that waited through a lock's whole pulse to find its bolt never came out
            # (LockNotReleased) may see the others' pulses over by now: count pulses instead.
            waited = isinstance(err.cause, LockNotReleased)
            for lock in err.released:
                if waited:
                    assert pulses(rig, lock) > pulses_before[lock], f"{lock} was never pulsed"
                else:
                    assert _released(rig, lock), f"{lock} reported released but is engaged"
                assert lock in str(err)
            for lock in err.not_released:
                assert not _released(rig, lock), f"{lock} reported not released but is open"
            if not waited:
                assert rig.cabinet.sim_open(drawer.target) == (drawer.lock in err.released)
        else:
            _nothing_released(rig, drawer, pocket)
        rig.cabinet.sim_close(drawer.target)
        rig.advance(max(rearm_s(rig.profile, lock) for lock in pair) + 0.1)
    if not one_write:
        assert partials >= 1, "separate pulses: a later refusal is partial"
