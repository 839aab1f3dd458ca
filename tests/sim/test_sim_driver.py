"""What only the in-process backend has: how it is opened, its options, and serving checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from adc.drivers.base import CabinetDriver, DeviceOffline, UnknownPoint
from adc.drivers.registry import open_backend
from adc.drivers.sim import SimDriver
from adc.errors import BadInput
from adc.sim.cabinet import VirtualCabinet
from tests.conftest import PROFILES
from tests.sim.conftest import shipped, variant


def test_open_by_shipped_name_path_and_seed() -> None:
    by_name = open_backend("sim:tcp-6drawer?seed=5")
    assert isinstance(by_name, SimDriver) and isinstance(by_name, CabinetDriver)
    assert by_name.cabinet.seed == 5 and by_name.profile.name == "tcp-6drawer"
    by_path = open_backend(f"sim:{PROFILES / 'cs-small.toml'}", seed=3)
    assert by_path.profile.name == "cs-small" and by_path.cabinet.seed == 3  # type: ignore[attr-defined]


def test_open_over_an_existing_cabinet_shares_it() -> None:
    cabinet = VirtualCabinet(shipped("rs485-2bus"), seed=9)
    driver = open_backend("sim:", cabinet=cabinet)
    assert driver.cabinet is cabinet and driver.profile is cabinet.profile  # type: ignore[attr-defined]
    driver.pulse("lb0:lock.0")
    assert cabinet.device("lb0").status()[0] & 1  # type: ignore[union-attr]  still locked: no time passed
    driver.advance(0.1)  # type: ignore[attr-defined]
    assert cabinet.now == pytest.approx(0.1)
    assert not cabinet.lock_holding("lb0:lock.0")


@pytest.mark.parametrize(
    ("uri", "options", "message"),
    [
        ("sim:", {}, "needs a profile"),
        ("sim:tcp-6drawer", {"speed": 3}, "no option speed"),
        ("sim:tcp-6drawer?seed=abc", {}, "seed must be an integer"),
        ("sim:tcp-6drawer", {"cabinet": "not a cabinet"}, "must be a VirtualCabinet"),
        ("sim:no-such-profile", {}, "no-such-profile"),
        ("nosuch:thing", {}, "unknown backend 'nosuch'"),
    ],
)
def test_bad_backend_requests_are_bad_input(uri: str, options: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        open_backend(uri, **options)


def test_profile_point_the_cabinet_cannot_serve_names_point_and_device(tmp_path: Path) -> None:
    small = VirtualCabinet(shipped("tcp-6drawer"))
    wider = variant(tmp_path, "tcp-6drawer", {"channels = 8\nmax_read": "channels = 12\nmax_read"})
    with pytest.raises(UnknownPoint) as err:
        SimDriver(wider, small)
    assert err.value.device == "lc2" and err.value.point == "lc2:ch.8"
    assert "cannot serve" in str(err.value)

    with pytest.raises(UnknownPoint) as err:
        SimDriver(shipped("rs485-2bus"), small)
    assert err.value.device == "lb0" and "lb0:lock.0" in str(err.value)


def test_offline_read_retries_then_names_device_and_point() -> None:
    driver = open_backend("sim:tcp-6drawer")
    driver.cabinet.sim_inject_fault("device_offline", "lc2")  # type: ignore[attr-defined]
    with pytest.raises(DeviceOffline, match=r"device lc2 \(point lc2:ch.3\) does not answer"):
        driver.weight("lc2:ch.3")
    health = driver.health()["lc2"]
    assert (health.requests, health.timeouts, health.retries) == (1, 3, 2)  # retries = 2
    assert "timeout" in (health.last_error or "")
    assert driver.health()["lc1"].online


def test_health_is_a_copy() -> None:
    driver = open_backend("sim:cs-small")
    driver.health()["dio1"].requests = 99
    assert driver.health()["dio1"].requests == 0
