"""The station's cold chain, quarantine, settled-difference rule, scheduled work and
notifications, over the sim backend stepped in simulated time (SQLite, and PostgreSQL when
given). Each case asserts the alarm, the maintenance event and the audit entries."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import (
    cabinets,
    counts,
    discrepancies,
    inventory,
    maintenance,
    notifications,
    quarantine,
    station_schedule,
    supervision,
)
from adc.controller.cold_chain import set_limits
from adc.controller.gs1 import parse_scan
from adc.controller.models import Discrepancy
from adc.controller.restock import State as RestockState
from adc.controller.restock import begin_restock
from adc.controller.stock import find_pocket
from adc.controller.withdrawal import begin_withdrawal
from adc.errors import BadInput, Refused
from adc.station.service import Station
from tests.controller.conftest import _fast_pins, db_url  # noqa: F401  (fixtures)
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import (
    CABINET,
    MORPHINE_CART,
    ONDANSETRON_VIAL,
    build_site,
    datamatrix,
)
from tests.station.conftest import Rig

FRIDGE, FRIDGE_PROBE = "F-1", "dio1:ai.0"
GOOD = date(2027, 6, 30)


def _kinds(alarms: list[Any]) -> list[str]:
    return [a.kind for a in alarms]


def _stock(
    rig: Rig, pocket: str, gtin: str, qty: int, expiry: date = GOOD, lot: str = "L1"
) -> None:
    scan = parse_scan(datamatrix(gtin, expiry, lot))
    with rig.site.ctl.read() as session:
        held = find_pocket(session, CABINET, pocket).on_hand
    counts.count_pocket(rig.site.ctl, rig.site.pharmacist, CABINET, pocket, held, access="refill")
    inventory.refill(
        rig.site.ctl, rig.site.pharmacist, CABINET, pocket, scan, qty, confirm_short_dated=True
    )


@pytest.fixture
def fridge(db_url: str, tmp_path: Path) -> Iterator[Rig]:  # noqa: F811
    driver = sim_driver("cs-small")
    site = build_site(db_url, SimClock(driver), with_cabinet=False)
    cabinets.add_cabinet(site.ctl, site.service, CABINET, "cs-small")
    site.assign(FRIDGE, ONDANSETRON_VIAL, par=8, critical_low=1, max_qty=12)
    station = Station(
        site.ctl, CABINET, lambda: driver, backend="sim:cs-small", directory=tmp_path / "run"
    )
    station.start()
    rig = Rig(site, driver, station)
    _stock(rig, FRIDGE, ONDANSETRON_VIAL, 6)
    rig.wait(1.5)
    yield rig
    if station.driver is not None:
        station.close("test over")
    site.ctl.db.close()


def _warm(rig: Rig, celsius: float) -> None:
    """The fridge's compressor fails: its probe reads `celsius` (the virtual cabinet's own
    thermometer, as the wire serves it)."""
    rig.cabinet._parts.thermometers[FRIDGE_PROBE].start_c = celsius


def test_cold_chain_excursion_quarantines_until_a_pharmacist_releases_it(fridge: Rig) -> None:
    rig, site = fridge, fridge.site
    set_limits(site.ctl, site.pharmacist, CABINET, FRIDGE, "2:8:2")  # 2 minutes allowed
    rig.station._last_recover = None  # reload the layout (limits) at the next step
    _warm(rig, 11.0)
    assert rig.wait(100.0, step_s=1.0) == []  # within the allowed excursion: nothing yet
    raised = rig.wait(40.0, step_s=1.0)
    assert _kinds(raised) == ["alarm-cold-chain"]
    (event,) = rig.events("alarm-cold-chain")
    assert event.pocket_code == FRIDGE and "11.0 °C" in event.detail
    assert [a["kind"] for a in rig.audit("maintenance.alarm")] == ["alarm-cold-chain"]
    (placed,) = rig.audit("quarantine.placed")
    assert placed["pocket"] == FRIDGE and placed["alarm_event"] == event.id
    assert sum(lot["qty"] for lot in placed["lots"]) == 6
    (q,) = quarantine.list_quarantines(site.ctl, CABINET, open_only=True)
    assert q.reason == event.detail and q.qty == 6
    # once per excursion: still warm, no second alarm or quarantine
    assert rig.wait(30.0, step_s=1.0) == []
    # removal refused, before anything unlocks and at the removal itself
    with pytest.raises(Refused, match="quarantined"):
        begin_withdrawal(site.ctl, rig.driver, CABINET, site.nurse, FRIDGE, 1)
    with pytest.raises(Refused, match="quarantined"):
        inventory.remove(site.ctl, site.nurse, CABINET, FRIDGE, 1)
    # pharmacists are told
    (note,) = notifications.list_notifications(site.ctl, CABINET, pending_only=True)
    assert note.kind == "quarantine" and note.pocket == FRIDGE
    # a technician or a nurse may not release it: refused, and the refusal audited
    for who in (site.tech, site.nurse):
        with pytest.raises(Refused, match="not a pharmacist"):
            quarantine.release(site.ctl, who, q.id, "looks fine")
    refused = rig.audit("station.refused")
    assert [r["user"] for r in refused] == ["technician", "nurse"]
    assert all(r["quarantine"] == q.id for r in refused)
    with pytest.raises(BadInput):
        quarantine.release(site.ctl, site.pharmacist, q.id, "  ")
    done = quarantine.release(site.ctl, site.pharmacist, q.id, "stability data covers 11 °C")
    assert done.status == "released" and done.resolved_by == "pharmacist"
    (released,) = rig.audit("quarantine.released")
    assert released["id"] == q.id and released["note"] == "stability data covers 11 °C"
    with pytest.raises(Refused, match="released already"):
        quarantine.release(site.ctl, site.pharmacist, q.id, "again")
    moved = inventory.remove(site.ctl, site.nurse, CABINET, FRIDGE, 1)
    assert moved.on_hand == 5
    # back in range, then out again: a new episode, a new quarantine
    _warm(rig, 4.5)
    assert rig.wait(3.0, step_s=1.0) == []
    _warm(rig, 0.5)
    assert _kinds(rig.wait(130.0, step_s=1.0)) == ["alarm-cold-chain"]
    assert len(quarantine.list_quarantines(site.ctl, CABINET, open_only=True)) == 1
    notifications.acknowledge(site.ctl, site.pharmacist, note.id)
    assert [n["id"] for n in rig.audit("notification.acknowledged")] == [note.id]


def test_a_pharmacist_pulls_quarantined_stock(fridge: Rig) -> None:
    rig, site = fridge, fridge.site
    _warm(rig, 14.0)
    raised = rig.wait(31 * 60.0, step_s=5.0)  # the default excursion: 30 minutes
    assert _kinds(raised) == ["alarm-cold-chain"]
    (q,) = quarantine.list_quarantines(site.ctl, CABINET, open_only=True)
    with pytest.raises(Refused):
        quarantine.pull(site.ctl, site.tech, q.id, 6)
    with pytest.raises(Refused, match="restocking blocked"):  # nothing is added meanwhile
        _stock(rig, FRIDGE, ONDANSETRON_VIAL, 2, lot="NEW2")
    pulled = quarantine.pull(site.ctl, site.pharmacist, q.id, 5, "one vial missing")
    assert pulled.quarantine.status == "pulled" and pulled.movement.on_hand == 0
    assert pulled.movement.discrepancy_id is not None  # 6 on record, 5 taken out
    (audited,) = rig.audit("stock.pull")
    assert audited["quarantine"] == q.id and audited["expected"] == 6 and audited["removed"] == 5
    assert [r["action"] for r in rig.audit("station.refused")] == ["pull a quarantine"]
    assert quarantine.list_quarantines(site.ctl, CABINET, open_only=True) == []
    with pytest.raises(Refused, match="pulled already"):
        quarantine.pull(site.ctl, site.pharmacist, q.id, 0)


def test_cold_chain_limits_are_a_pharmacists_setting(fridge: Rig) -> None:
    site = fridge.site
    with pytest.raises(BadInput, match="MIN:MAX:MINUTES"):
        set_limits(site.ctl, site.pharmacist, CABINET, FRIDGE, "2-8")
    with pytest.raises(Refused, match="not a pharmacist"):
        set_limits(site.ctl, site.service, CABINET, FRIDGE, "2:8:10")
    with pytest.raises(Refused, match="no temperature point"):
        set_limits(site.ctl, site.pharmacist, CABINET, "C1-01", "2:8:10")
    set_limits(site.ctl, site.pharmacist, CABINET, FRIDGE, "2:6:10")
    (audited,) = [a for a in fridge.audit("settings.set") if a["key"].startswith("cold-chain.")]
    assert audited == {"key": f"cold-chain.{CABINET}.{FRIDGE}", "before": None, "after": "2:6:10"}


# ------------------------------------------------------------------- still differs after access
@pytest.fixture
def stocked(rig: Rig) -> Rig:
    _stock(rig, "D2-P1", MORPHINE_CART, 10)
    rig.wait(1.5)
    return rig


def _visit(rig: Rig, w: Any, take: int) -> list[Any]:
    """A nurse at drawer D2: unlocks, counts 10, opens, takes `take`, closes; the withdrawal and
    the station polled at each step."""
    raised: list[Any] = []

    def steps(n: int) -> None:
        for _ in range(n):
            raised.extend(rig.wait(0.1))
            w.poll()

    w.unlock()
    steps(1)
    w.count(10)
    assert rig.cabinet.sim_open("D2")
    steps(5)
    rig.cabinet.sim_take("D2-P1", take)
    rig.cabinet.sim_close("D2")
    steps(20)
    return raised


def test_a_removal_recorded_as_what_the_scale_saw_raises_nothing(stocked: Rig) -> None:
    rig, site = stocked, stocked.site
    w = begin_withdrawal(site.ctl, rig.driver, CABINET, site.nurse, "D2-P1", 2)
    _visit(rig, w, 2)
    w.record(8)
    w.finish()
    assert rig.wait(4.0) == []


def test_a_pocket_that_still_differs_after_its_access_is_an_alarm_and_a_recount(
    stocked: Rig,
) -> None:
    rig, site = stocked, stocked.site
    w = begin_withdrawal(site.ctl, rig.driver, CABINET, site.nurse, "D2-P1", 1)
    raised = _visit(rig, w, 3)  # one recorded, three taken
    w.record(9)  # the nurse's blind count-back matches the record, not the pocket
    w.finish()
    # settled (SETTLE_S), then judged on the mean of its readings over CONFIRM_S, not on one
    raised += rig.wait(supervision.SETTLE_S + supervision.CONFIRM_S + 3.0)
    assert _kinds(raised) == ["alarm-unrecorded-change", "failed"]
    (event,) = rig.events("alarm-unrecorded-change")
    assert event.pocket_code == "D2-P1" and "still differs" in event.detail
    assert "moved -3" in event.detail and "the record -1" in event.detail
    assert [a["pocket"] for a in rig.audit("maintenance.alarm")] == ["D2-P1"]
    assert [f["drawer"] for f in rig.audit("maintenance.failed")] == ["D2"]
    assert list(maintenance.out_of_service(site.ctl, CABINET)) == ["D2"]
    (note,) = notifications.list_notifications(site.ctl, CABINET)
    assert note.kind == "recount-due" and note.drawer == "D2"
    assert [n["kind"] for n in rig.audit("notification.created")] == ["recount-due"]


# ----------------------------------------------------------------------------- scheduled work
def test_expiry_sweep_runs_once_a_day_across_a_restart(rig: Rig, tmp_path: Path) -> None:
    site = rig.site
    _stock(rig, "D1-P1", "00309046722618", 5, expiry=date(2026, 3, 3), lot="SOON")
    _stock(rig, "D1-P2", "00309046722618", 5, expiry=date(2026, 3, 5), lot="LATER")
    assert [r.job for r in station_schedule.runs(site.ctl, CABINET, "expiry-sweep")] == [
        "expiry-sweep"
    ]  # the first step swept 2026-03-02: nothing expired
    assert rig.audit("station.expiry-sweep") == []
    site.clock.skip_days(2)  # 2026-03-04: lot SOON has expired
    rig.station._last_schedule = None
    rig.wait(0.2)
    (sweep,) = rig.audit("station.expiry-sweep")
    assert list(sweep["pockets"]) == ["D1-P1"] and sweep["since"] == "2026-03-02"
    # the same day again, and after a restart: no second sweep
    rig.station._last_schedule = None
    rig.wait(0.2)
    rig.station.close("restart")
    again = Station(site.ctl, CABINET, lambda: rig.driver, backend="sim:tcp-6drawer",
                    directory=tmp_path / "run2")  # fmt: skip
    again.start()
    rig.station = again
    rig.wait(0.5)
    assert len(rig.audit("station.expiry-sweep")) == 1
    days = [r.period for r in station_schedule.runs(site.ctl, CABINET, "expiry-sweep")]
    assert days == ["2026-03-02", "2026-03-04"]
    # the station was down on 03-05 and 03-06: the next sweep takes what expired since 03-04
    site.clock.skip_days(3)  # 2026-03-07
    again._last_schedule = None
    rig.wait(0.2)
    second = rig.audit("station.expiry-sweep")[-1]
    assert list(second["pockets"]) == ["D1-P2"] and second["since"] == "2026-03-04"
    kinds = [n.kind for n in notifications.list_notifications(site.ctl, CABINET)]
    assert kinds == ["expired-lots", "expired-lots"]
    with pytest.raises(Refused, match="expired lot"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P2", 1)


def test_an_overdue_controlled_discrepancy_is_escalated_and_notified(stocked: Rig) -> None:
    rig, site = stocked, stocked.site
    inventory.count(site.ctl, site.nurse, CABINET, "D2-P1", 9)  # one short: a discrepancy
    with site.ctl.read() as session:
        (disc,) = session.execute(select(Discrepancy)).scalars().all()
    assert disc.deadline is not None
    rig.wait(0.2)
    assert rig.audit("discrepancy.escalate") == []
    site.clock.skip_days(2)  # past the 24 h deadline
    rig.station._last_schedule = None
    rig.wait(0.2)
    (escalated,) = rig.audit("discrepancy.escalate")
    assert escalated["ids"] == [disc.id]
    (note,) = notifications.list_notifications(site.ctl, CABINET)
    assert note.kind == "discrepancy-escalated" and str(disc.id) in note.detail
    # the next slot escalates nothing again
    site.clock.skip_days(1)
    rig.station._last_schedule = None
    rig.wait(0.2)
    assert len(rig.audit("discrepancy.escalate")) == 1
    assert len(notifications.list_notifications(site.ctl, CABINET)) == 1
    (run,) = station_schedule.runs(site.ctl, CABINET, "discrepancy-escalation")  # idle: none
    assert json.loads(run.result)["escalated"] == [disc.id]
    jobs = [a["job"] for a in rig.audit("station.scheduled")]
    assert jobs.count("discrepancy-escalation") == 1
    assert discrepancies.list_discrepancies(site.ctl)[0].escalated
    with pytest.raises(Refused):
        notifications.acknowledge(site.ctl, site.nurse, note.id)


def test_a_restock_recorded_as_loaded_raises_nothing(rig: Rig) -> None:
    """Tablets of 0.55 g on a scale with noise: the rule judges grams beyond the noise, so a
    line recorded as loaded is no alarm."""
    site, cabinet = rig.site, rig.cabinet
    session = begin_restock(site.ctl, rig.driver, CABINET, site.tech)
    session.select("D1-P2")
    session.scan(datamatrix("00309046722618", GOOD, "R1"))
    raised: list[Any] = []

    def steps(n: int) -> None:
        for _ in range(n):
            raised.extend(rig.wait(0.1))
            session.poll()

    session.unlock()
    steps(1)
    assert cabinet.sim_open("D1")
    steps(5)
    cabinet.sim_add("D1-P2", 6, 0.55)
    cabinet.sim_close("D1")
    steps(20)
    assert session.state is RestockState.CLOSED
    assert session.confirm_quantity(6, accept_discrepancy=True).on_hand == 6
    raised += rig.wait(4.0)
    assert raised == [] and rig.events("alarm-unrecorded-change") == []


def test_authorize_unlock_fails_closed(rig: Rig) -> None:
    from sqlalchemy import update

    from adc.controller import access_log, supervision
    from adc.controller.models import User

    site, layout = rig.site, rig.station.layout
    assert layout is not None
    me = supervision.owner_of_pid(os.getpid())
    with pytest.raises(Refused, match="no access open"):
        supervision.authorize_unlock(site.ctl, CABINET, layout, ["dio1:coil.0"], peer=me)
    row = access_log.open_access(site.ctl, site.nurse, CABINET, "D1", "D1-P1", "withdrawal")
    found = supervision.authorize_unlock(site.ctl, CABINET, layout, ["dio1:coil.0"], peer=me)
    assert (found.id, found.drawer, found.user) == (row, "D1", "nurse")
    for locks, peer in ((["dio1:coil.1"], me), (["dio1:coil.0"], "other|-|1|-")):
        with pytest.raises(Refused):  # another drawer's lock; another process's access
            supervision.authorize_unlock(site.ctl, CABINET, layout, locks, peer=peer)
    for column in ("locked", "active"):
        value = column == "locked"
        with site.ctl.db.engine.begin() as conn:
            conn.execute(update(User).where(User.username == "nurse").values({column: value}))
        with pytest.raises(Refused):  # a locked-out or disabled user's access opens nothing
            supervision.authorize_unlock(site.ctl, CABINET, layout, ["dio1:coil.0"], peer=me)
        with site.ctl.db.engine.begin() as conn:
            conn.execute(update(User).where(User.username == "nurse").values({column: not value}))
    with pytest.raises(Refused, match="without a lock"):
        supervision.authorize_unlock(site.ctl, CABINET, layout, [], peer=me)


def test_shortage_notifications_are_delivered_by_the_station(rig: Rig, tmp_path: Path) -> None:
    from adc.controller.settings import set_setting

    site = rig.site
    sink = tmp_path / "pharmacy.jsonl"
    broken = tmp_path / "no-such-dir" / "pharmacy.jsonl"  # the sink fails at first
    set_setting(site.ctl, site.admin, "shortage-sink", f"file:{broken}")
    _stock(rig, "D1-P1", "00309046722618", 5)
    inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 4)  # 1 left: critical-low
    assert rig.audit("shortage.delivered") == []  # delivery at the change failed
    set_setting(site.ctl, site.admin, "shortage-sink", f"file:{sink}")
    rig.wait(61.0, step_s=1.0)  # the next delivery period, on the station's own schedule
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert "critical-low" in [n["kind"] for n in lines]
    (run,) = station_schedule.runs(site.ctl, CABINET, "shortage-delivery")
    assert json.loads(run.result) == {"delivered": len(lines), "errors": []}
    assert [a["ids"] for a in rig.audit("shortage.delivered")] == [[n["id"] for n in lines]]
    site.clock.skip_days(1)  # a later period: nothing new to deliver, nothing recorded
    rig.station._last_schedule = None
    rig.wait(0.2)
    assert len(sink.read_text().splitlines()) == len(lines)
    assert len(station_schedule.runs(site.ctl, CABINET, "shortage-delivery")) == 1
