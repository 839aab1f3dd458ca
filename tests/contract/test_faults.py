"""Every fault surfaces: as a typed error, a health flag, a quality flag, or — where the hardware
cannot know (no lock feedback, a stuck switch) — as a condition the controller can detect. Never as
a plausible wrong value that nothing contradicts."""

from __future__ import annotations

import math

import pytest

from adc.drivers.base import DeviceFault, DeviceOffline, LockNotReleased, Quality
from adc.profiles.models import SensorKind
from adc.profiles.points import PointRef
from tests.contract.helpers import (
    canon,
    doors,
    drawer_door,
    first_or_skip,
    has_feedback,
    pulse_s,
    reach_into,
    release_s,
    sensed_pockets,
    settle,
    unlock_and_open,
    weight_tolerance,
)
from tests.contract.rigs import Rig


def _any_point_of(rig: Rig, device: str) -> tuple[str, str]:
    """(method name, point) that reads something of `device` through the port."""
    for door in doors(rig.profile):
        if PointRef.parse(door.lock).device == device:
            return "lock_engaged", door.lock
        if door.switch and PointRef.parse(door.switch).device == device:
            return "input_active", door.switch
    for _, pocket in sensed_pockets(rig.profile, SensorKind.WEIGHT):
        if PointRef.parse(pocket.sensor.point).device == device:  # type: ignore[arg-type]
            return "weight", canon(pocket.sensor.point)  # type: ignore[arg-type]
    pytest.fail(f"no readable layout point on {device}")


@pytest.mark.parametrize("which", ["first", "last"])
def test_offline_device_raises_and_health_says_so(rig: Rig, which: str) -> None:
    names = list(rig.profile.devices)
    device = names[0] if which == "first" else names[-1]
    method, point = _any_point_of(rig, device)
    rig.cabinet.sim_inject_fault("device_offline", device)
    with pytest.raises(DeviceOffline) as offline:
        getattr(rig.driver, method)(point)
    assert offline.value.device == device
    assert offline.value.point == point
    assert device in str(offline.value) and point in str(offline.value)
    health = rig.driver.health()[device]
    assert not health.online and health.timeouts >= 1

    snap = rig.driver.snapshot()
    everything = {**snap.locks_engaged, **snap.inputs, **snap.weights, **snap.temperatures}
    for p, value in everything.items():
        if PointRef.parse(p).device == device:
            assert value is None, f"{p} of an offline device has a value"
    assert any(v is not None for v in everything.values()) or len(rig.profile.devices) == 1

    rig.cabinet.sim_clear_fault("device_offline", device)
    getattr(rig.driver, method)(point)
    assert rig.driver.health()[device].online


def test_power_loss_engages_locks_and_silences_devices_for_a_while(rig: Rig) -> None:
    door = drawer_door(rig.profile, rig.profile.layout.drawers[0])
    rig.driver.pulse(door.lock)
    rig.advance(release_s(rig.profile))
    rig.cabinet.sim_inject_fault("power_loss", duration_s=5.0)
    assert not rig.cabinet.sim_open(door.target), "a drawer opened with the power off"
    for name in rig.profile.devices:
        method, point = _any_point_of(rig, name)
        with pytest.raises(DeviceOffline):
            getattr(rig.driver, method)(point)
    snap = rig.driver.snapshot()
    assert all(v is None for v in snap.locks_engaged.values())
    assert not any(h.online for h in rig.driver.health().values())

    rig.advance(5.5)
    assert rig.driver.lock_engaged(door.lock)
    assert not rig.cabinet.sim_open(door.target)
    snap = rig.driver.snapshot()
    assert all(v is not None for v in snap.locks_engaged.values())
    assert all(h.online for h in rig.driver.health().values())


@pytest.mark.parametrize(
    ("fault", "params", "quality"),
    [
        ("loadcell_stuck", {}, Quality.FAULT),
        ("loadcell_offline", {}, Quality.FAULT),
        ("loadcell_noisy", {"noise_g": 15.0}, Quality.UNSTABLE),
        ("loadcell_drift", {"rate_g_per_h": 30.0}, Quality.UNSTABLE),
    ],
)
def test_load_cell_faults_show_in_quality(
    rig: Rig, fault: str, params: dict[str, float], quality: Quality
) -> None:
    drawer, pocket = first_or_skip(sensed_pockets(rig.profile, SensorKind.WEIGHT), "load cell")
    point = canon(pocket.sensor.point)  # type: ignore[arg-type]
    assert rig.driver.weight(point).quality is Quality.OK
    rig.cabinet.sim_inject_fault(fault, point, **params)
    reading = rig.driver.weight(point)
    assert reading.quality is quality
    assert rig.driver.snapshot().weights[point].quality is quality  # type: ignore[union-attr]
    if fault == "loadcell_stuck":
        # The frozen value would be a lie after items move: the quality must still say FAULT.
        reach_into(rig, drawer, pocket)
        rig.cabinet.sim_take(pocket.id, 1)
        settle(rig)
        assert rig.driver.weight(point).quality is Quality.FAULT
    if fault == "loadcell_offline":
        assert math.isnan(reading.grams)
    rig.cabinet.sim_clear_fault(fault, point)
    settle(rig)
    assert rig.driver.weight(point).quality is Quality.OK


def test_jammed_lock_keeps_its_door_shut(rig: Rig) -> None:
    door = drawer_door(rig.profile, rig.profile.layout.drawers[0])
    rig.cabinet.sim_inject_fault("lock_jammed", door.lock)
    not_released: LockNotReleased | None = None
    try:
        rig.driver.pulse(door.lock)  # the pulse itself is accepted: the coil is fine
    except LockNotReleased as err:
        not_released = err
    if not_released is not None:
        # A driver that confirms an unlock by the lock's feedback (a lock board, where it can
        # wait for the bolt) reports the jammed bolt at once, naming the lock.
        assert has_feedback(rig.profile, door.lock)
        assert not_released.point == door.lock
        assert not_released.device == door.lock.partition(":")[0]
    rig.advance(release_s(rig.profile))
    if has_feedback(rig.profile, door.lock):
        assert rig.driver.lock_engaged(door.lock), "feedback hid a jammed bolt"
    assert not rig.cabinet.sim_open(door.target)
    # Detectable: unlocked, pulled, yet the switch never reported the door open.
    assert door.switch is not None and rig.driver.input_active(door.switch)
    rig.advance(pulse_s(rig.profile, door.lock))
    assert rig.driver.lock_engaged(door.lock)


def test_lock_that_will_not_reengage_is_never_reported_holding_an_open_door(rig: Rig) -> None:
    door = drawer_door(rig.profile, rig.profile.layout.drawers[0])
    assert door.switch is not None
    rig.cabinet.sim_inject_fault("lock_no_reengage", door.lock)
    unlock_and_open(rig, door)
    rig.advance(pulse_s(rig.profile, door.lock))
    rig.cabinet.sim_close(door.target)
    if has_feedback(rig.profile, door.lock):
        assert not rig.driver.lock_engaged(door.lock), "feedback claimed a loose bolt holds"
    # Without a pulse, a person can open it again: the switch shows it, and the port never says
    # "engaged" while its door reads open.
    assert rig.cabinet.sim_open(door.target)
    assert not rig.driver.input_active(door.switch)
    assert not rig.driver.lock_engaged(door.lock)


def test_stuck_switch_is_contradicted_by_the_load_cells(rig: Rig) -> None:
    """A switch stuck at "closed" reads closed; the detectable condition is a weight change in a
    drawer that claims to be shut, so the driver must pass both on faithfully."""
    drawer, pocket = first_or_skip(
        [
            (d, p)
            for d, p in sensed_pockets(rig.profile, SensorKind.WEIGHT)
            if p.lid_lock is None and p.lock is None
        ],
        "weighed pocket without its own door",
    )
    switch = canon(drawer.switch)
    rig.cabinet.sim_inject_fault("switch_stuck", switch, active=True)
    before = rig.driver.weight(pocket.sensor.point)  # type: ignore[arg-type]
    reach_into(rig, drawer, pocket)
    rig.cabinet.sim_take(pocket.id, 2)
    settle(rig)
    assert rig.driver.input_active(switch), "stuck switch should read what it is stuck at"
    after = rig.driver.weight(pocket.sensor.point)  # type: ignore[arg-type]
    assert before.grams - after.grams == pytest.approx(
        2 * rig.profile.sim.unit_weight_g, abs=weight_tolerance(rig.profile)
    )
    rig.cabinet.sim_clear_fault("switch_stuck", switch)
    assert not rig.driver.input_active(switch)


def test_bus_noise_is_retried_counted_and_never_a_wrong_value(rig: Rig) -> None:
    door = doors(rig.profile)[0]
    assert door.switch is not None
    bus = rig.profile.devices[PointRef.parse(door.switch).device].bus
    device = PointRef.parse(door.switch).device
    rig.cabinet.sim_inject_fault("bus_noise", bus, probability=0.3)
    answers, failures = 0, 0
    for _ in range(40):
        try:
            assert rig.driver.input_active(door.switch) is True, "a corrupted frame read wrong"
            answers += 1
        except (DeviceFault, DeviceOffline):
            failures += 1
    health = rig.driver.health()[device]
    assert answers > 0
    assert health.errors + health.timeouts > 0 and health.retries > 0

    rig.cabinet.sim_inject_fault("bus_noise", bus, probability=1.0)
    with pytest.raises((DeviceFault, DeviceOffline)) as err:
        rig.driver.input_active(door.switch)
    assert err.value.device == device
    rig.cabinet.sim_clear_fault("bus_noise", bus)
    assert rig.driver.input_active(door.switch)
