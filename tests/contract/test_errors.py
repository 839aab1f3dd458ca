"""Bad points are typed errors naming the point and its device; health counts what happened."""

from __future__ import annotations

import pytest

from adc.drivers.base import DriverError, UnknownPoint, WrongPointRole
from adc.errors import AdcError
from adc.profiles.models import SensorKind
from tests.contract.helpers import canon, doors
from tests.contract.rigs import Rig


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("pulse", ()),
        ("lock_engaged", ()),
        ("input_active", ()),
        ("weight", ()),
        ("temperature", ()),
        ("set_light", (True,)),
    ],
)
@pytest.mark.parametrize("point", ["ghost:lock.0", "dio1:coil.4000", "dio1:nope.1"])
def test_unknown_points_are_named(rig: Rig, method: str, args: tuple, point: str) -> None:
    with pytest.raises(UnknownPoint) as err:
        getattr(rig.driver, method)(point, *args)
    assert err.value.point == point
    assert err.value.device == point.partition(":")[0]
    assert point in str(err.value)
    assert isinstance(err.value, AdcError) and err.value.exit_code == 2


def test_malformed_point_is_an_unknown_point(rig: Rig) -> None:
    with pytest.raises(UnknownPoint, match="not-a-point"):
        rig.driver.pulse("not-a-point")


def test_points_used_for_what_they_are_not_are_refused_by_name(rig: Rig) -> None:
    door = doors(rig.profile)[0]
    assert door.switch is not None
    cases = [
        ("pulse", door.switch, ()),
        ("weight", door.switch, ()),
        ("temperature", door.lock, ()),
        ("input_active", door.lock, ()),
        ("set_light", door.lock, (True,)),
    ]
    weighed = [
        p.sensor.point for _, p in rig.profile.pockets() if p.sensor.kind is SensorKind.WEIGHT
    ]
    if weighed:
        cases.append(("lock_engaged", canon(weighed[0]), ()))  # type: ignore[arg-type]
    for method, point, args in cases:
        with pytest.raises(WrongPointRole) as err:
            getattr(rig.driver, method)(point, *args)
        assert err.value.point == point, method
        assert err.value.device == point.partition(":")[0]
        assert point in str(err.value)
    # Refusals changed nothing: the lock never moved.
    assert rig.driver.lock_engaged(door.lock)


def test_health_counts_requests_and_last_seen(rig: Rig) -> None:
    door = doors(rig.profile)[0]
    device = door.lock.partition(":")[0]
    before = rig.driver.health()[device]
    rig.advance(1.0)
    rig.driver.lock_engaged(door.lock)
    rig.driver.lock_engaged(door.lock)
    after = rig.driver.health()[device]
    assert after.requests >= before.requests + 2
    assert after.online and after.timeouts == 0 and after.errors == 0
    assert after.last_seen == pytest.approx(rig.cabinet.env.now)


def test_closed_driver_refuses(rig: Rig) -> None:
    door = doors(rig.profile)[0]
    rig.driver.close()
    with pytest.raises(DriverError):
        rig.driver.lock_engaged(door.lock)
