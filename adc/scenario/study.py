"""A study pocket with enrolled subjects in a scenario, and the KPI that its record reconciles.

Why: a test engineer sees the accountability record of an investigational drug reconcile at the
end of a run (every lot's running balance equals what the pockets hold), with the study's rules
at work among the ward's ordinary traffic. A scenario names (`[study]`): the cabinet and a pocket
the scenario does not stock, how many subjects are enrolled, doses a day per subject, units per
dose, the stock level the pharmacist keeps, and how often a dose is held and returned.

The people act, the controller decides: the study is set up with the controller's public calls
(a pharmacist: `adc study add`, authorize, item, pocket), the pocket is loaded and refilled each
morning by the pharmacist through restock sessions (the scenario people's own `_work_line`),
each dose is a nurse's withdrawal through the access machine with the subject's study id and the
dose, and a held dose goes back to the pharmacy (`study return`). Technicians are not on the
study: their refill rounds are refused the pocket (audited), as in a hospital. The ward's demand
never reaches the pocket (its rates are fixed before the study registers it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simpy

from adc.controller import formulary, studies, withdrawal
from adc.controller.gs1 import gtin_check_digit
from adc.controller.restock import LineKind, begin_restock
from adc.controller.study_report import accountability
from adc.controller.study_returns import return_to_pharmacy
from adc.drivers.base import DriverError
from adc.errors import AdcError
from adc.profiles.models import PocketKind
from adc.scenario import people
from adc.scenario.loader import FormularyItem
from adc.scenario.model import StockSpec
from adc.scenario.study_spec import StudySpec
from adc.scenario.world import PocketInfo, Shelf

if TYPE_CHECKING:
    from adc.scenario.world import Station, World

Proc = Generator[simpy.Event, Any, None]
STUDY_GTIN = "0061414199999" + str(gtin_check_digit("0061414199999"))  # no NDC: a study's own


def start(world: World, spec: StudySpec | None) -> None:
    """Start the study's processes (a scenario without `[study]` starts none)."""
    if spec is not None:
        world.env.process(_study(world, spec))


def _station(world: World, spec: StudySpec) -> Station:
    cabinet = spec.cabinet or next(iter(world.stations))
    if cabinet not in world.stations:
        raise AdcError(f"[study] cabinet {cabinet!r} is not in this scenario")
    station = world.stations[cabinet]
    if spec.pocket in station.pockets:
        raise AdcError(
            f"[study] pocket {spec.pocket} is stocked by the scenario: choose a free one"
        )
    return station


def _set_up(world: World, station: Station, spec: StudySpec) -> PocketInfo:
    """The pharmacist sets the study up through the controller; the pocket becomes one the
    scenario's people know (after the ward's demand rates were fixed: no ward nurse takes it)."""
    ph = world.pharmacists[0]
    ctl = world.ctl
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "study-item.csv"
        csv.write_text(
            "name,strength,form,ndc,gtins,schedule,high_alert,unit_weight_g\n"
            f"{spec.protocol} study drug,50 mg,capsule,,{STUDY_GTIN},,no,{spec.unit_weight_g}\n"
        )
        formulary.import_items(ctl, ph, csv)
    studies.add_study(
        ctl, ph, spec.protocol, title="simulated study", sponsor="sim", investigator="sim"
    )
    for actor in (ph, *station.nurses):
        studies.authorize(ctl, ph, spec.protocol, actor.username)
    studies.mark_item(ctl, ph, spec.protocol, STUDY_GTIN)
    studies.assign_pocket(ctl, ph, spec.protocol, station.id, spec.pocket)
    drawer, pocket = next(
        (d, p) for d in station.profile.layout.drawers for p in d.pockets if p.id == spec.pocket
    )
    capacity = pocket.capacity
    level = min(spec.stock, capacity)
    info = PocketInfo(
        code=pocket.id,
        drawer=drawer.id,
        kind=PocketKind(pocket.kind),
        has_door=bool(pocket.lock or pocket.lid_lock),
        capacity=capacity,
        stock=StockSpec(pocket=pocket.id, item=STUDY_GTIN, par=level, critical_low=1, max=level),
        item=FormularyItem(
            STUDY_GTIN, None, f"{spec.protocol} study drug", None, spec.unit_weight_g
        ),
        neighbours=[],
    )
    station.pockets[pocket.id] = info
    station.shelves[pocket.id] = Shelf()
    return info


def _study(world: World, spec: StudySpec) -> Proc:
    station = _station(world, spec)
    if world.t0 > world.env.now:  # after the go-live loads the ward's pockets
        yield world.env.timeout(world.t0 - world.env.now)
    info = _set_up(world, station, spec)
    world.emit("study_set_up", protocol=spec.protocol, cabinet=station.id, pocket=info.code)
    for day in range(int(world.days) + 1):
        morning = world.seconds_at(day, "06:00")
        if morning >= world.horizon_s:
            return
        if morning > world.env.now:
            yield world.env.timeout(morning - world.env.now)
        yield from _restock(world, station, info, LineKind.LOAD if day == 0 else LineKind.REFILL)
        for dose in range(spec.doses_per_day):
            for subject in range(1, spec.subjects + 1):
                at = world.seconds_at(day, spec.first_dose) + dose * 6 * 3600 + subject * 300
                world.env.process(_dose(world, station, info, spec, subject, at))


def _restock(world: World, station: Station, info: PocketInfo, kind: LineKind) -> Proc:
    """The pharmacist's line on the study pocket (load the first morning, then refill)."""
    with station.screen.request() as turn:
        yield turn
        session = begin_restock(world.ctl, station.driver, station.id, world.pharmacists[0])
        try:
            stock = info.stock
            if kind is LineKind.LOAD:
                session.select(
                    info.code,
                    kind,
                    item=STUDY_GTIN,
                    levels=(stock.par, stock.critical_low, stock.max),
                )
            else:
                line = session.select(info.code, kind)
                if not line.need:
                    session.cancel()
                    return
            session = yield from people._work_line(world, station, session, session.line)
            world.count("study_receipts")
        except AdcError as err:
            world.count("study_refused")
            world.emit("study_refused", pocket=info.code, what=kind.value, reason=err.message)
        finally:
            if session.line is None:
                session.end()


def _dose(
    world: World, station: Station, info: PocketInfo, spec: StudySpec, subject: int, at: float
) -> Proc:
    if at >= world.horizon_s:
        return
    yield world.env.timeout(max(at - world.env.now, 0))
    rng = world.rng("study-dose", subject, round(at))
    nurse = station.nurses[subject % len(station.nurses)]
    subject_id = f"{spec.protocol[-3:]}-{subject:04d}"
    shelf = station.shelves[info.code]
    with station.screen.request() as turn:
        yield turn
        try:
            w = withdrawal.begin_withdrawal(
                world.ctl,
                station.driver,
                station.id,
                nurse,
                info.code,
                spec.dose_units,
                subject=subject_id,
                dose=f"{spec.dose_units * 50} mg",
            )
        except AdcError as err:
            world.count("study_refused")
            world.emit("study_refused", pocket=info.code, what="dose", reason=err.message)
            return
        try:
            yield from people._unlock(world, w.unlock)
            yield world.env.timeout(people.REACH_S)
            if not people._open_access(station, info):
                w.poll()
                w.not_opened()
                return
            w.poll()
            if w.count_due.value != "none":
                w.count(shelf.units)
            station.cabinet.sim_take(info.code, spec.dose_units)
            shelf.take(spec.dose_units)
            recorded = w.record()
            if info.has_door:
                station.cabinet.sim_close(info.code)
            station.cabinet.sim_close(info.drawer)
            yield world.env.timeout(people.SHUT_S)
            w.poll()
            world.count("study_dispenses")
            world.level(station.id, info.code, recorded[-1].on_hand)
        except (AdcError, DriverError) as err:
            world.count("study_refused")
            world.emit("study_refused", pocket=info.code, what="dose", reason=str(err))
            people._shut_all(station, info)
            return
        finally:
            w.finish()
    if rng.random() < spec.return_rate:  # the dose was held: back to the pharmacy
        removal = next(m.txn_ids[0] for m in w.recorded if m.kind == "remove")
        return_to_pharmacy(world.ctl, nurse, removal, 1, "dose held")
        world.count("study_returns")


def study_kpis(world: World, spec: StudySpec) -> dict[str, Any]:
    """The study's KPI: the accountability record's balance equals on-hand for every lot."""
    record = accountability(world.ctl, world.pharmacists[0], spec.protocol, output="kpi")
    kinds: dict[str, int] = {}
    for row in record.rows:
        kinds[row.kind] = kinds.get(row.kind, 0) + 1
    return {
        "protocol": spec.protocol,
        "subjects": spec.subjects,
        "rows": kinds,
        "dispenses": int(world.counters.get("study_dispenses", 0)),
        "returns": int(world.counters.get("study_returns", 0)),
        "refused": int(world.counters.get("study_refused", 0)),
        "lots": [{"lot": b.lot, "balance": b.balance, "on_hand": b.on_hand} for b in record.lots],
        "balance_equals_on_hand_every_lot": record.reconciled,
    }
