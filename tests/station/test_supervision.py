"""The station's supervision over the sim backend, stepped in simulated time: each case asserts
the alarm, its maintenance event and its audit entry, and the recount flag where one is due."""

from __future__ import annotations

from adc.controller import maintenance
from adc.controller.access import PocketAccess
from tests.controller.site import CABINET
from tests.station.conftest import Rig


def _kinds(alarms: list) -> list[str]:
    return [a.kind for a in alarms]


def test_quiet_cabinet_raises_nothing(rig: Rig) -> None:
    assert rig.wait(3.0) == []
    assert rig.events("alarm-unauthorized-access") == []


def test_forced_drawer_opening_is_an_unauthorized_access_and_a_recount(rig: Rig) -> None:
    # D2 holds morphine; its switch reads open with no access on record (forced, or a key)
    rig.cabinet.sim_inject_fault("switch_stuck", "dio1:di.1", active=False)
    raised = rig.wait(0.3)
    assert _kinds(raised) == ["alarm-unauthorized-access", "failed"]
    (event,) = rig.events("alarm-unauthorized-access")
    assert event.drawer_code == "D2" and "controlled substances" in event.detail
    (audited,) = rig.audit("maintenance.alarm")
    assert audited["kind"] == "alarm-unauthorized-access" and audited["id"] == event.id
    flagged = rig.audit("maintenance.failed")
    assert [f["drawer"] for f in flagged] == ["D2"]
    out = maintenance.out_of_service(rig.site.ctl, CABINET)
    assert list(out) == ["D2"]
    # once per opening: still open, no second alarm; left open past the limit: door-open
    rig.station.left_open_s = 2.0
    assert _kinds(rig.wait(2.5)) == ["alarm-door-open"]
    assert rig.events("alarm-door-open")[0].drawer_code == "D2"


def test_a_drawer_without_controlled_stock_opened_is_an_alarm_without_recount(rig: Rig) -> None:
    rig.cabinet.sim_inject_fault("switch_stuck", "dio1:di.0", active=False)
    assert _kinds(rig.wait(0.3)) == ["alarm-unauthorized-access"]
    assert maintenance.out_of_service(rig.site.ctl, CABINET) == {}


def _access(rig: Rig, pocket: str) -> PocketAccess:
    return PocketAccess.for_pocket(
        rig.site.ctl, rig.driver, CABINET, rig.site.nurse, pocket, "withdrawal"
    )


def test_an_access_on_record_covers_its_opening(rig: Rig) -> None:
    access = _access(rig, "D1-P1")
    access.unlock()
    rig.wait(0.1)
    assert rig.cabinet.sim_open("D1")
    rig.wait(0.5)
    rig.cabinet.sim_take("D1-P1", 2)
    rig.cabinet.sim_close("D1")
    for _ in range(30):
        rig.wait(0.1)
        access.poll()
    access.finish("recorded")
    assert rig.wait(3.0) == []
    assert rig.events("alarm-unauthorized-access") == []
    assert rig.events("alarm-unrecorded-change") == []


def test_unrecorded_removal_from_a_pocket_outside_the_access(rig: Rig) -> None:
    access = _access(rig, "D1-P1")  # a matrix drawer: D1-P2 is within reach too
    access.unlock()
    rig.wait(0.1)
    assert rig.cabinet.sim_open("D1")
    rig.wait(0.5)
    rig.cabinet.sim_take("D1-P2", 3)
    rig.cabinet.sim_close("D1")
    raised = []
    for _ in range(30):
        raised += rig.wait(0.1)
        access.poll()
    access.finish("recorded")
    raised += rig.wait(2.0)
    assert _kinds(raised) == ["alarm-unrecorded-change", "failed"]
    (event,) = rig.events("alarm-unrecorded-change")
    assert event.pocket_code == "D1-P2" and "about 3 taken" in event.detail
    assert [a["pocket"] for a in rig.audit("maintenance.alarm")] == ["D1-P2"]
    assert [f["pocket"] for f in rig.audit("maintenance.failed")] == ["D1-P2"]
    assert list(maintenance.out_of_service(rig.site.ctl, CABINET)) == ["D1"]


def test_power_loss_flags_controlled_drawers_for_recount(rig: Rig) -> None:
    rig.cabinet.sim_inject_fault("power_loss")
    outage = rig.wait(1.0)
    assert "alarm-device-offline" not in _kinds(outage)  # all at once: a power loss
    rig.cabinet.sim_clear_fault("power_loss")
    raised = rig.wait(1.5)
    assert "alarm-power-loss" in _kinds(raised)
    assert list(maintenance.out_of_service(rig.site.ctl, CABINET)) == ["D2"]
    cabinet_wide = [e for e in rig.events("alarm-power-loss") if e.drawer_code is None]
    assert len(cabinet_wide) == 1
    assert [f["drawer"] for f in rig.audit("maintenance.failed")] == ["D2"]


def test_one_device_offline_is_an_alarm(rig: Rig) -> None:
    rig.cabinet.sim_inject_fault("device_offline", "lc2")
    raised = rig.wait(0.5)
    assert _kinds(raised) == ["alarm-device-offline"]
    assert rig.events("alarm-device-offline")[0].detail == "device lc2 does not answer"
