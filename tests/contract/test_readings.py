"""Readings follow the cabinet: weights and presence follow items, temperature drifts, lights
light, and a snapshot says what single reads say."""

from __future__ import annotations

import math

import pytest

from adc.drivers.base import Quality, WrongPointRole
from adc.profiles.models import SensorKind
from tests.contract.helpers import (
    canon,
    first_or_skip,
    reach_into,
    sensed_pockets,
    settle,
    weight_tolerance,
)
from tests.contract.rigs import Rig


def test_weights_start_at_tare_plus_initial_units(rig: Rig) -> None:
    sim = rig.profile.sim
    for _, pocket in sensed_pockets(rig.profile, SensorKind.WEIGHT):
        units = min(sim.initial_units, pocket.capacity)
        reading = rig.driver.weight(pocket.sensor.point)  # type: ignore[arg-type]
        assert reading.quality is Quality.OK
        expected = sim.tare_g + units * sim.unit_weight_g
        assert reading.grams == pytest.approx(expected, abs=weight_tolerance(rig.profile, 1))


def test_weight_follows_items_taken_and_added(rig: Rig) -> None:
    drawer, pocket = first_or_skip(
        [(d, p) for d, p in sensed_pockets(rig.profile, SensorKind.WEIGHT)],
        "weighed pocket",
    )
    point = pocket.sensor.point
    assert point is not None
    before = rig.driver.weight(point)
    reach_into(rig, drawer, pocket)
    taken = rig.cabinet.sim_take(pocket.id, 1)
    settle(rig)
    after_take = rig.driver.weight(point)
    assert after_take.quality is Quality.OK
    assert before.grams - after_take.grams == pytest.approx(
        sum(taken), abs=weight_tolerance(rig.profile)
    )

    rig.cabinet.sim_add(pocket.id, 1, unit_weight_g=12.5)
    settle(rig)
    after_add = rig.driver.weight(point)
    assert after_add.grams - after_take.grams == pytest.approx(
        12.5, abs=weight_tolerance(rig.profile)
    )


def test_weight_is_unstable_while_settling(rig: Rig) -> None:
    if rig.profile.sim.settle_ms == 0:
        pytest.skip("no settling time in this profile")
    drawer, pocket = first_or_skip(sensed_pockets(rig.profile, SensorKind.WEIGHT), "weighed pocket")
    reach_into(rig, drawer, pocket)
    rig.cabinet.sim_add(pocket.id, 1)
    assert rig.driver.weight(pocket.sensor.point).quality is Quality.UNSTABLE  # type: ignore[arg-type]
    settle(rig)
    assert rig.driver.weight(pocket.sensor.point).quality is Quality.OK  # type: ignore[arg-type]


def test_presence_follows_items(rig: Rig) -> None:
    drawer, pocket = first_or_skip(
        sensed_pockets(rig.profile, SensorKind.PRESENCE), "presence-sensed pocket"
    )
    point = pocket.sensor.point
    assert point is not None
    held = len(rig.cabinet.units(pocket.id))
    assert rig.driver.input_active(point) is (held > 0)
    reach_into(rig, drawer, pocket)
    if held:
        rig.cabinet.sim_take(pocket.id, held)
    assert not rig.driver.input_active(point)
    rig.cabinet.sim_add(pocket.id, 1)
    assert rig.driver.input_active(point)


def test_fridge_temperature_drifts_as_configured(rig: Rig) -> None:
    _, pocket = first_or_skip([(d, p) for d, p in rig.profile.pockets() if p.temperature], "fridge")
    point = pocket.temperature
    assert point is not None
    sim = rig.profile.sim
    step = rig.profile.devices[point.partition(":")[0]].analog_scale  # type: ignore[union-attr]
    start = rig.driver.temperature(point)
    assert start.quality is Quality.OK
    assert start.celsius == pytest.approx(sim.fridge_temperature_c, abs=step / 2 + 1e-9)
    rig.advance(3 * 3600)
    later = rig.driver.temperature(point).celsius
    expected = sim.fridge_temperature_c + 3 * sim.fridge_drift_c_per_h
    assert later == pytest.approx(expected, abs=step / 2 + 1e-9)


def test_lights_switch_on_and_off(rig: Rig) -> None:
    lights = [canon(d.light) for d in rig.profile.layout.drawers if d.light]
    lights += [canon(p.light) for _, p in rig.profile.pockets() if p.light]
    first_or_skip(lights, "guide light")
    for light in lights:
        assert rig.driver.snapshot().lights[light] is False
        rig.driver.set_light(light, True)
        assert rig.driver.snapshot().lights[light] is True
    for light in lights:
        rig.driver.set_light(light, False)
    assert not any(rig.driver.snapshot().lights.values())
    with pytest.raises(WrongPointRole) as wrong:
        rig.driver.set_light(canon(rig.profile.layout.drawers[0].lock), True)
    assert wrong.value.point == canon(rig.profile.layout.drawers[0].lock)


def _layout_points(rig: Rig) -> dict[str, set[str]]:
    p = rig.profile
    locks, inputs, weights, temps, lights = set(), set(), set(), set(), set()
    for drawer in p.layout.drawers:
        locks.add(canon(drawer.lock))
        inputs.add(canon(drawer.switch))
        if drawer.light:
            lights.add(canon(drawer.light))
    for _, pocket in p.pockets():
        for lock in (pocket.lock, pocket.lid_lock):
            if lock:
                locks.add(canon(lock))
        for switch in (pocket.switch, pocket.lid_switch):
            if switch:
                inputs.add(canon(switch))
        if pocket.sensor.kind is SensorKind.PRESENCE:
            inputs.add(canon(pocket.sensor.point))  # type: ignore[arg-type]
        if pocket.sensor.kind is SensorKind.WEIGHT:
            weights.add(canon(pocket.sensor.point))  # type: ignore[arg-type]
        if pocket.temperature:
            temps.add(canon(pocket.temperature))
        if pocket.light:
            lights.add(canon(pocket.light))
    return {"locks": locks, "inputs": inputs, "weights": weights, "temps": temps, "lights": lights}


def test_snapshot_holds_every_layout_point_and_agrees_with_single_reads(rig: Rig) -> None:
    # Stir things first, so agreement is not just "everything at rest".
    drawer = rig.profile.layout.drawers[0]
    rig.driver.pulse(canon(drawer.lock))
    rig.advance(0.1)
    rig.cabinet.sim_open(drawer.id)
    if drawer.light:
        rig.driver.set_light(canon(drawer.light), True)

    snap = rig.driver.snapshot()
    expected = _layout_points(rig)
    assert set(snap.locks_engaged) == expected["locks"]
    assert set(snap.inputs) == expected["inputs"]
    assert set(snap.weights) == expected["weights"]
    assert set(snap.temperatures) == expected["temps"]
    assert set(snap.lights) == expected["lights"]
    assert set(snap.health) == set(rig.profile.devices)
    assert snap.time == rig.cabinet.env.now

    for point, engaged in snap.locks_engaged.items():
        assert engaged is rig.driver.lock_engaged(point), point
    for point, active in snap.inputs.items():
        assert active is rig.driver.input_active(point), point
    for point, reading in snap.weights.items():
        single = rig.driver.weight(point)
        assert reading is not None and reading.quality is single.quality, point
        assert reading.grams == single.grams or (
            math.isnan(reading.grams) and math.isnan(single.grams)
        ), point
    for point, temperature in snap.temperatures.items():
        assert temperature == rig.driver.temperature(point), point
    assert snap.locks_engaged[canon(drawer.lock)] is False
    assert snap.inputs[canon(drawer.switch)] is False
