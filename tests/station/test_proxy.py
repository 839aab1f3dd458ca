"""Clients through the station (`station:PATH`): the driver port by proxy, and the fail-closed
unlock rule: only for an access open on record for an authenticated user of the process asking."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adc.controller import access_log
from adc.controller.access import PocketAccess
from adc.drivers.base import RearmRefused, Snapshot, UnknownPoint
from adc.drivers.station import StationDriver
from adc.drivers.station import open_backend as open_station
from adc.errors import Refused
from adc.station.service import Station
from tests.controller.rig import sim_driver
from tests.controller.site import CABINET
from tests.station.conftest import make_site


@pytest.fixture
def served(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = sim_driver("tcp-6drawer")
    site = make_site(db_url, driver)
    sock = tmp_path / "st.sock"
    station = Station(
        site.ctl, CABINET, lambda: driver, backend="sim", listen=str(sock),
        directory=tmp_path / "run",
    )  # fmt: skip
    station.start()
    station.step()
    client = open_station(str(sock))
    yield site, driver, station, client, sock
    client.close()
    station.close("test over")
    site.ctl.db.close()


def test_the_socket_is_group_only_and_the_port_answers(served) -> None:  # type: ignore[no-untyped-def]
    _site, _driver, _station, client, sock = served
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    assert isinstance(client, StationDriver) and client.profile.name == "tcp-6drawer"
    snap = client.snapshot()
    assert isinstance(snap, Snapshot) and snap.inputs["dio1:di.0"] is True
    assert snap.weights["lc1:ch.1"] is not None
    assert client.input_active("dio1:di.0") is True
    assert client.lock_engaged("dio1:coil.0") is True
    with pytest.raises(UnknownPoint) as err:
        client.input_active("dio9:di.0")
    assert "dio9" in err.value.message


def test_unlock_with_no_open_access_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    _site, driver, _station, client, _ = served
    for call in (
        lambda: client.unlock_together(["dio1:coil.0"]),
        lambda: client.pulse("dio1:coil.0"),
    ):
        with pytest.raises(Refused) as err:
            call()
        assert "no access open on record" in err.value.message
    driver.advance(0.05)
    assert not driver.cabinet.sim_open("D1"), "nothing was pulsed"


def test_unlock_of_an_access_on_record_goes_through(served) -> None:  # type: ignore[no-untyped-def]
    site, driver, station, client, _ = served
    access = PocketAccess.for_pocket(site.ctl, client, CABINET, site.nurse, "D1-P1", "withdrawal")
    access.unlock()  # the row is written by this process before the pulse goes to the station
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D1")
    # a lock of another drawer is not covered by this access
    with pytest.raises(Refused):
        client.unlock_together(["dio1:coil.1"])
    # typed driver errors come back typed: the drawer lock re-arming
    with pytest.raises(RearmRefused):
        client.unlock_together(["dio1:coil.0"])
    driver.cabinet.sim_close("D1")
    driver.advance(1.0)
    for _ in range(20):
        driver.advance(0.1)
        access.poll()
    access.finish("recorded")
    assert station.step() == []  # the opening was the access's
    assert access_log.open_accesses(site.ctl, CABINET) == []


def test_an_access_of_another_process_is_not_unlocked_by_this_one(served) -> None:  # type: ignore[no-untyped-def]
    site, _driver, _station, client, _ = served
    row = access_log.open_access(site.ctl, site.nurse, CABINET, "D1", "D1-P1", "withdrawal")
    from sqlalchemy import update

    from adc.controller.models import AccessLog

    with site.ctl.db.engine.begin() as conn:  # as if another process (pid 1) had opened it
        conn.execute(update(AccessLog).where(AccessLog.id == row).values(owner="other|-|1|-"))
    with pytest.raises(Refused):
        client.unlock_together(["dio1:coil.0"])


def test_a_second_station_on_the_socket_or_cabinet_is_refused(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    site, driver, _station, _client, sock = served
    second = Station(
        site.ctl, CABINET, lambda: driver, listen=str(sock), directory=tmp_path / "run"
    )
    with pytest.raises(Refused) as err:
        second.start()
    assert "held by another station" in err.value.message
    assert sock.exists()  # the first station's socket is untouched


def test_the_registry_opens_a_station_uri(served) -> None:  # type: ignore[no-untyped-def]
    from adc.drivers.registry import BACKENDS, open_backend

    if "station" not in BACKENDS:
        pytest.skip("the station: scheme is not registered in this tree yet")
    *_, sock = served
    with open_backend(f"station:{sock}") as client:
        assert client.input_active("dio1:di.0") is True
