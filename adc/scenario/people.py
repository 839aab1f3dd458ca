"""The simulated people: nurses removing doses, technicians restocking, pharmacists resolving
discrepancies, a service engineer answering alarms; plus the hardware faults that befall them.

Each is a SimPy process. People act on the virtual cabinet with its `sim_*` inputs (pull a drawer,
take units, shut it) and on the controller only through its public calls (a withdrawal, a restock
session, a recall, a recovery), waiting in SimPy time where a person would take time. Whatever the
controller refuses, a person takes as an answer: it is recorded as an event and they move on.

People only act: open, take, add, close, wait, give up ("it did not open", abandon a line), call
service. Every alarm, failure and out-of-service decision comes from the controller (the pocket's
`PocketAccess`, the station's supervision: adc.scenario.supervise); a person reads what it recorded on the screen and calls
service for it (`_report`).

Human errors are drawn per removal from the scenario's rates, each from its own random stream:
- miscount: the nurse takes one unit more than she records (where the pocket holds one more);
- wrong pocket: she takes from a neighbouring pocket her hand reaches in the open drawer;
- drawer left open: she walks away; someone shuts it `left_open_min` later.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Generator
from typing import Any

import simpy

from adc.controller import maintenance, recalls, withdrawal
from adc.controller.access import Alarm
from adc.controller.models import Discrepancy, DiscrepancyStatus
from adc.controller.restock import (
    Line,
    LineKind,
    RestockSession,
    State,
    begin_restock,
    pockets_needing_pull,
)
from adc.drivers.base import DriverError, RearmRefused
from adc.errors import AdcError
from adc.scenario.world import InjectedFault, PocketInfo, Station, World
from adc.sim.errors import SimInputError

Proc = Generator[simpy.Event, Any, None]
REACH_S = 0.1  # the hand is on the drawer when it unlocks: pulled inside the solenoid pulse
SHUT_S = 1.0  # shutting and letting go; the scale settles meanwhile
GS1_SCAN = "]d201{gtin}17{expiry:%y%m%d}10{lot}"


def _open_access(station: Station, info: PocketInfo) -> bool:
    """Pull the drawer, then the pocket's lid or door if it has one; True if the pocket is open."""
    if not station.cabinet.sim_open(info.drawer):
        return False
    return not info.has_door or station.cabinet.sim_open(info.code)


def _unlock(world: World, unlock: Callable[[], None]) -> Proc:
    """Unlock, waiting out a solenoid that is re-arming (the person simply tries again)."""
    for _attempt in range(3):
        try:
            unlock()
            return
        except RearmRefused as err:
            yield world.env.timeout(err.remaining_ms / 1000 + 0.1)
    unlock()


def _driver_trouble(world: World, station: Station, err: DriverError, who: str) -> None:
    """A device error on a person's screen: noticed, and it names the device."""
    world.emit("driver_error", cabinet=station.id, who=who, device=err.device, error=err.message)
    on_alarm(world, station, {f"device:{err.device}"}, f"driver error on {err.device}")


# ------------------------------------------------------------------------------------- nurses
def demand_source(world: World, station: Station, demands: Any) -> Proc:
    """Send a nurse to the cabinet at each demand time."""
    for demand in demands:
        if demand.at > world.env.now:
            yield world.env.timeout(demand.at - world.env.now)
        world.env.process(nurse_visit(world, station, demand.pocket))


def nurse_visit(world: World, station: Station, pocket: str) -> Proc:
    info = station.pockets[pocket]
    nurses = world.loaded.scenario.nurses
    errors = world.loaded.scenario.errors
    rng = world.rng("nurse", station.id, round(world.env.now, 3), pocket)
    actor = station.nurses[rng.randrange(len(station.nurses))]
    world.count("demand")
    arrived = world.env.now
    with station.screen.request() as turn:
        yield turn
        world.count("nurse_wait_s", world.env.now - arrived)
        try:
            w = withdrawal.begin_withdrawal(
                world.ctl,
                station.driver,
                station.id,
                actor,
                pocket,
                info.stock.dose,
                count_back=nurses.count_back == "all",
            )
        except AdcError as err:
            world.count("removals_refused")
            world.emit("remove_refused", cabinet=station.id, pocket=pocket, reason=err.message)
            return
        try:
            try:
                yield from _unlock(world, w.unlock)
            except DriverError as err:
                _driver_trouble(world, station, err, "nurse")
                return
            yield world.env.timeout(REACH_S)
            try:
                opened = _open_access(station, info)
                w.poll()
                if not opened:  # she says so; the cabinet records what that means
                    w.not_opened()
                    world.emit(
                        "remove_failed", cabinet=station.id, pocket=pocket, why="did not open"
                    )
                    _report(world, station, w, 0)
                    return
                shelf = station.shelves[pocket]
                if (
                    w.count_due.value != "none"
                ):  # the count on access: what she finds, before taking
                    _count_on_access(world, station, pocket, info, w.count, shelf.units)
                if shelf.units < info.stock.dose:
                    # the system says there is stock, the pocket says otherwise: count what is there
                    yield world.env.timeout(nurses.take_s)
                    from adc.controller import inventory

                    movement = inventory.count(world.ctl, actor, station.id, pocket, shelf.units)
                    world.level(station.id, pocket, movement.on_hand)
                    world.emit("found_short", cabinet=station.id, pocket=pocket, held=shelf.units)
                    station.cabinet.sim_close(info.drawer)
                    return
                source, take = pocket, info.stock.dose
                miscount = errors.miscount.get(info.kind.value, 0.0)
                if miscount and rng.random() < miscount and shelf.units > take:
                    take += 1
                    world.count(f"miscounts_injected:{info.kind.value}")
                    world.count("miscounts_injected_blind" if w.count_back else "miscounts_hidden")
                    world.emit(
                        "error_miscount", cabinet=station.id, pocket=pocket, blind=w.count_back
                    )
                elif errors.wrong_pocket and rng.random() < errors.wrong_pocket:
                    reachable = [n for n in info.neighbours if station.shelves[n].units >= take]
                    if reachable:
                        source = reachable[rng.randrange(len(reachable))]
                        world.count("wrong_pocket_injected")
                        world.emit(
                            "error_wrong_pocket", cabinet=station.id, pocket=pocket, took=source
                        )
                station.cabinet.sim_take(source, take)
                station.shelves[source].take(take)
                yield world.env.timeout(nurses.take_s)
                count_back = station.shelves[pocket].units if w.count_back else None
                for movement in w.record(count_back):
                    world.level(station.id, pocket, movement.on_hand)
                    if movement.discrepancy_id:
                        world.emit(
                            "discrepancy_opened",
                            cabinet=station.id,
                            pocket=pocket,
                            id=movement.discrepancy_id,
                            kind=info.kind.value,
                        )
                world.count("removals")
                world.emit(
                    "removal",
                    cabinet=station.id,
                    pocket=pocket,
                    qty=info.stock.dose,
                    on_hand=w.recorded[-1].on_hand,
                )
                reported = _report(world, station, w, 0)
                if errors.drawer_left_open and rng.random() < errors.drawer_left_open:
                    world.count("left_open_injected")
                    world.emit("error_left_open", cabinet=station.id, drawer=info.drawer)
                    station.cabinet.sim_leave_open(info.drawer)
                    yield from _watch_door(world, station, w, errors.left_open_min * 60)
                    reported = _report(world, station, w, reported)
                    station.cabinet.sim_close(info.drawer)
                else:
                    if info.has_door:  # shut the lid or door, and tug it: does it hold?
                        station.cabinet.sim_close(info.code)
                        w.poll()
                        if station.cabinet.sim_open(info.code):
                            w.poll()
                    station.cabinet.sim_close(info.drawer)
                yield world.env.timeout(SHUT_S)
                w.poll()
                if station.cabinet.sim_open(info.drawer):  # a tug: does it hold?
                    w.poll()
                    station.cabinet.sim_close(info.drawer)
                _report(world, station, w, reported)
                w.finish()
            except DriverError as err:
                _driver_trouble(world, station, err, "nurse")
                _shut_all(station, info)
            except SimInputError as err:
                world.emit("person_blocked", cabinet=station.id, pocket=pocket, why=err.message)
                _shut_all(station, info)
        finally:
            w.finish()  # every path ends the access: light off, access log closed


def _count_on_access(
    world: World,
    station: Station,
    pocket: str,
    info: PocketInfo,
    count: Callable[[int], Any],
    units: int,
) -> None:
    """A person counts what is in the pocket (correctly); once more if the cabinet asks."""
    result = count(units)
    if result.outcome.value == "recount":
        world.count("recounts")
        result = count(units)
    if result.discrepancy_id:
        world.emit(
            "discrepancy_opened",
            cabinet=station.id,
            pocket=pocket,
            id=result.discrepancy_id,
            kind=info.kind.value,
        )


def _report(world: World, station: Station, w: Any, reported: int) -> int:
    """What the access recorded since `reported` (its alarms and failures, on the person's
    screen): the person calls service for each; returns how many have been passed on."""
    for alarm in w.alarms[reported:]:
        if alarm.kind == "alarm-left-open":
            world.count("left_open_alarms")
        on_alarm(world, station, _tokens(alarm), alarm.detail)
    return len(w.alarms)


def _watch_door(world: World, station: Station, w: Any, left_s: float) -> Proc:
    """The cabinet keeps polling a drawer left open (it alarms once past its limit)."""
    end = world.env.now + left_s
    while world.env.now < end:
        yield world.env.timeout(min(30.0, end - world.env.now))
        w.poll()


def _shut_all(station: Station, info: PocketInfo) -> None:
    with contextlib.suppress(SimInputError):
        station.cabinet.sim_close(info.drawer)


# --------------------------------------------------------------------------------- technicians
def technician_shift(world: World, tech_index: int, stations: list[Station]) -> Proc:
    """Refill rounds at the scenario's times, day by day (with its delays and skipped rounds)."""
    spec = world.loaded.scenario.technicians
    delays = {(d.day, d.time): d for d in spec.delays}
    days = int(world.days) + 1
    for day in range(days):
        for hhmm in spec.refill_times:
            at = world.seconds_at(day, hhmm)
            delay = delays.get((day, hhmm))
            if delay is not None and delay.skip:
                world.emit("refill_skipped", day=day, time=hhmm, technician=tech_index)
                continue
            at += delay.minutes * 60 if delay is not None else 0
            if at >= world.horizon_s:
                return
            if at > world.env.now:
                yield world.env.timeout(at - world.env.now)
            for station in stations:
                yield world.env.timeout(spec.travel_s)
                world.count("technician_s", spec.travel_s)
                yield from refill_round(world, tech_index, station)


def refill_round(world: World, tech_index: int, station: Station) -> Proc:
    """One technician at one cabinet: pull what is blocked, then fill every line below par."""
    tech = world.technicians[tech_index]
    with station.screen.request() as turn:
        yield turn
        started = world.env.now
        session = begin_restock(world.ctl, station.driver, station.id, tech)
        for code in pockets_needing_pull(world.ctl, station.id):
            if code not in station.pockets:
                continue
            try:
                line = session.select(code, LineKind.PULL)
            except AdcError as err:
                world.emit("line_refused", cabinet=station.id, pocket=code, reason=err.message)
                continue
            session = yield from _work_line(world, station, session, line)
        # What `session.next_line()` does before every line, with the refill list read once
        # per session instead of once per line (nothing else changes it while the technician
        # holds the screen): the first entry not done in this session, not blocked, its drawer
        # in service (read again before each line, as next_line does).
        entries: list[Any] | None = None
        listed_for: RestockSession | None = None
        while True:
            try:
                if entries is None or listed_for is not session:
                    entries, listed_for = session.refill_list(), session
                failed = maintenance.out_of_service(world.ctl, station.id)
                done = session._done  # next_line's own record of the lines ended
                entry = next(
                    (
                        e
                        for e in entries
                        if e.pocket not in done and e.blocked is None and e.drawer not in failed
                    ),
                    None,
                )
                line = session.select(entry.pocket) if entry is not None else None
            except AdcError as err:
                world.emit("line_refused", cabinet=station.id, reason=err.message)
                break
            if line is None:
                break
            session = yield from _work_line(world, station, session, line)
        if session.line is None:
            session.end()
        world.count("technician_s", world.env.now - started)
        world.emit(
            "refill_round",
            cabinet=station.id,
            technician=tech_index,
            minutes=round((world.env.now - started) / 60, 2),
        )


def _scan_text(world: World, info: PocketInfo, lot: str, expiry: Any) -> str:
    return GS1_SCAN.format(gtin=info.item.gtin, expiry=expiry, lot=lot)


def _work_line(world: World, station: Station, session: RestockSession, line: Line) -> Any:
    """Do one line with the hands; returns the session to go on with (a new one if this one got
    stuck on hardware that would not close)."""
    spec = world.loaded.scenario.technicians
    info = station.pockets[line.pocket]
    shelf = station.shelves[line.pocket]
    rng = world.rng("line", station.id, line.pocket, round(world.env.now, 3))
    line_s = rng.uniform(*spec.line_s)
    lot, expiry, n = "", None, 0
    if line.kind in (LineKind.REFILL, LineKind.LOAD):
        day = world.day_index()
        lot = f"L{day:03d}"
        expiry = world.today() + _days(spec.shelf_life_days)
        if line.kind is LineKind.LOAD:
            n = info.stock.initial if info.stock.initial is not None else info.stock.par
            if info.stock.initial_expiry_days is not None:
                expiry = world.today() + _days(info.stock.initial_expiry_days)
        else:
            n = min(line.need or 0, info.capacity - shelf.units)
        if n <= 0:
            session.skip("the pocket is physically full")
            world.emit("line_skipped", cabinet=station.id, pocket=line.pocket, why="full")
            return session
        try:
            verdict = session.scan(_scan_text(world, info, lot, expiry))
            if verdict.short_dated:
                session.confirm_short_dated()
        except AdcError as err:
            world.emit("line_refused", cabinet=station.id, pocket=line.pocket, reason=err.message)
            session.skip(err.message)
            return session
    try:
        yield from _unlock(world, session.unlock)
    except DriverError as err:
        _driver_trouble(world, station, err, "technician")
        session.cancel()
        return session
    yield world.env.timeout(REACH_S)
    reported = 0
    try:
        opened = _open_access(station, info)
        session.poll()
        if not opened:
            # she shuts what did open, waits until the cabinet gives the unlock up, and says
            # it did not open
            _shut_all(station, info)
            yield world.env.timeout(world.ctl.policy.unlock_timeout_s + 1)
            session.poll()
            session.not_opened()
            world.emit("line_failed", cabinet=station.id, pocket=line.pocket, why="did not open")
            _report(world, station, line.access, 0)
            session.cancel()
            return session
        if line.count_due.value != "none":
            _count_on_access(world, station, line.pocket, info, session.count, shelf.units)
        if line.kind is LineKind.PULL:
            today = world.today()
            n = shelf.take_lots(
                lambda held: held.expiry < today or (held.gtin, held.lot) in world.recalled
            )
            if n:
                station.cabinet.sim_take(line.pocket, n)
        else:
            station.cabinet.sim_add(line.pocket, n, info.item.unit_weight_g)
            shelf.add(lot, info.item.gtin, expiry, n)
        yield world.env.timeout(line_s)
        station.cabinet.sim_close(info.drawer)
        yield world.env.timeout(SHUT_S)
        for _ in range(20):
            if session.poll() is State.CLOSED:
                break
            yield world.env.timeout(0.5)
    except DriverError as err:
        _driver_trouble(world, station, err, "technician")
        _shut_all(station, info)
    reported = _report(world, station, line.access, reported)
    if session.state is not State.CLOSED:
        # shut by hand, the cabinet did not see it close: she gives the line up
        return _abandon_line(world, station, session, info, "the cabinet did not see it close", n)
    try:
        try:
            movement = session.confirm_quantity(n)
        except AdcError:
            movement = session.confirm_quantity(n, accept_discrepancy=True)
    except AdcError as err:
        world.emit("line_refused", cabinet=station.id, pocket=line.pocket, reason=err.message)
        return _abandon_line(world, station, session, info, f"not recorded: {err.message}", n)
    world.level(station.id, line.pocket, movement.on_hand)
    world.count(f"lines:{line.kind.value}")
    world.emit(
        "restock_line",
        cabinet=station.id,
        pocket=line.pocket,
        kind=line.kind.value,
        units=n,
        on_hand=movement.on_hand,
    )
    world.count(f"units:{line.kind.value}", n)
    if line.kind is LineKind.PULL:
        world.emit("pulled", cabinet=station.id, pocket=line.pocket, units=n)
    if movement.discrepancy_id:
        world.emit(
            "discrepancy_opened",
            cabinet=station.id,
            pocket=line.pocket,
            id=movement.discrepancy_id,
            kind=info.kind.value,
        )
    return session


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


# --------------------------------------------------------------------------------- pharmacists
def find_resolver(name: str) -> tuple[Callable[..., Any] | None, str]:
    """The discrepancy-resolution step: `module:function`, or 'auto' (the controller's own, once
    it has one: `adc.controller.discrepancies.resolve`), or 'none'."""
    if name == "none":
        return None, "none"
    target = "adc.controller.discrepancies:resolve" if name == "auto" else name
    module_name, _, attr = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        if name == "auto":
            return None, "unavailable (no adc.controller.discrepancies.resolve yet)"
        raise
    return function, target


def pharmacist_rounds(world: World, index: int) -> Proc:
    """Review open discrepancies at the round times; resolve each with the pluggable step."""
    spec = world.loaded.scenario.pharmacists
    actor = world.pharmacists[index]
    witness = world.pharmacists[(index + 1) % len(world.pharmacists)]
    for day in range(int(world.days) + 1):
        for hhmm in spec.rounds:
            at = world.seconds_at(day, hhmm) + index * 60
            if at >= world.horizon_s:
                return
            if at > world.env.now:
                yield world.env.timeout(at - world.env.now)
            with world.ctl.read() as session:
                open_ids = list(
                    session.execute(
                        Discrepancy.__table__.select()
                        .with_only_columns(Discrepancy.__table__.c.id)
                        .where(Discrepancy.__table__.c.status == DiscrepancyStatus.OPEN.value)
                        .order_by(Discrepancy.__table__.c.id)
                    ).scalars()
                )
            mine = [d for d in open_ids if d % max(len(world.pharmacists), 1) == index]
            for disc_id in mine:
                yield world.env.timeout(spec.resolve_s)
                world.count("pharmacist_s", spec.resolve_s)
                if world.resolver is None:
                    world.count("resolutions_unavailable")
                    continue
                try:
                    world.resolver(
                        world.ctl,
                        actor,
                        disc_id,
                        "miscount: reviewed on round",
                        witness=witness if witness != actor else None,
                    )
                except AdcError as err:
                    world.emit("resolve_refused", id=disc_id, reason=err.message)
                    continue
                world.emit("discrepancy_resolved", id=disc_id)


# ------------------------------------------------------------------------------ faults & service
def _abandon_line(
    world: World, station: Station, session: RestockSession, info: PocketInfo, why: str, n: int
) -> RestockSession:
    """A line whose pocket was opened but cannot be recorded: the technician abandons it (the
    drawer is flagged for a blind recount) and calls service, as the session's screen says.
    Returns the session to go on with (a new one if even the abandon could not be recorded)."""
    line = session.line
    assert line is not None
    world.emit("line_abandoned", cabinet=station.id, pocket=line.pocket, n=n)
    world.count("lines_abandoned")
    try:
        session.abandon(why)
    except AdcError as err:
        world.emit("line_refused", cabinet=station.id, pocket=line.pocket, reason=err.message)
        return begin_restock(world.ctl, station.driver, station.id, session.actor)
    tokens = {f"drawer:{info.drawer}", f"pocket:{line.pocket}"}
    on_alarm(world, station, tokens, f"drawer {info.drawer} flagged for recount: {why} (restock)")
    return session


def alarm_tokens(alarm: Alarm) -> set[str]:
    """What an alarm points at: its drawer, pocket, device or point; `cabinet` when it names
    none of them (a whole-cabinet alarm such as a power loss)."""
    out = _tokens(alarm)
    return out or {"cabinet"}


def _tokens(alarm: Alarm) -> set[str]:
    out = set()
    if alarm.drawer:
        out.add(f"drawer:{alarm.drawer}")
    if alarm.pocket:
        out.add(f"pocket:{alarm.pocket}")
    if alarm.device and not alarm.point:
        out.add(f"device:{alarm.device}")
    if alarm.point:
        out.add(f"point:{alarm.point}")
    return out


def on_alarm(
    world: World, station: Station, tokens: set[str], detail: str, *, source: str = "screen"
) -> None:
    """The cabinet said something is wrong: faults it points at count as detected, and the
    service engineer is called (once per cabinet until they have been). Scripted incidents
    count only what the station's supervision found (`source` "supervision")."""
    world.count("alarms")
    world.emit("alarm", cabinet=station.id, detail=detail, where=sorted(tokens))
    if source == "supervision":
        for incident in world.incidents:
            found = incident.cabinet == station.id and incident.scope & tokens
            if found and incident.detected_at is None and world.env.now >= incident.at:
                incident.detected_at = world.env.now
                incident.detected_by = detail
                world.emit(
                    "incident_detected",
                    id=incident.id,
                    cabinet=station.id,
                    kind=incident.kind,
                    after_s=round(world.env.now - incident.at, 3),
                )
    for fault in world.faults:
        found = fault.cabinet == station.id and fault.scope & tokens
        if found and fault.repaired_at is None and fault.detected_at is None:
            fault.detected_at = world.env.now
            fault.detected_by = detail
            world.emit(
                "fault_detected",
                id=fault.id,
                cabinet=station.id,
                kind=fault.kind,
                after_s=round(world.env.now - fault.at, 3),
            )
    key = f"service_called:{station.id}"
    if not world.counters.get(key):
        world.counters[key] = 1
        world.env.process(service_visit(world, station))


def service_visit(world: World, station: Station) -> Proc:
    """The engineer comes, repairs what is broken there, and recovers failed drawers."""
    spec = world.loaded.scenario.service
    yield world.env.timeout(spec.respond_min * 60)
    world.counters[f"service_called:{station.id}"] = 0
    with station.screen.request() as turn:
        yield turn
        for fault in world.faults:
            if fault.cabinet == station.id and fault.repaired_at is None and fault.detected_at:
                station.cabinet.sim_clear_fault(fault.kind, fault.target)
                fault.repaired_at = world.env.now
                world.emit("fault_repaired", id=fault.id, cabinet=station.id, kind=fault.kind)
        for incident in world.incidents:
            broken = incident.kind == "fridge_failure" and incident.repaired_at is None
            if broken and incident.cabinet == station.id and incident.detected_at:
                station.cabinet.sim_clear_fault("fridge_failure", _probe_of(station, incident))
                incident.repaired_at = world.env.now
                world.emit("incident_repaired", id=incident.id, cabinet=station.id, kind="fridge")
        yield world.env.timeout(spec.repair_min * 60)
        world.count("service_s", spec.repair_min * 60)
        service = world.actors["service"]
        counter = world.technicians[0] if world.technicians else world.pharmacists[0]
        for drawer in sorted(maintenance.out_of_service(world.ctl, station.id)):
            try:
                plan = maintenance.recovery_plan(world.ctl, station.id, drawer)
                for line in plan.recount:
                    counted = (
                        station.shelves[line.pocket].units if line.pocket in station.shelves else 0
                    )
                    disc = maintenance.recount(world.ctl, counter, plan, line.pocket, counted)
                    if disc:
                        world.emit(
                            "discrepancy_opened",
                            cabinet=station.id,
                            pocket=line.pocket,
                            id=disc,
                            kind=station.pockets[line.pocket].kind.value
                            if line.pocket in station.pockets
                            else "unknown",
                        )
                maintenance.complete_recovery(
                    world.ctl,
                    service,
                    plan,
                    hardware="repaired by the service engineer",
                    witness=world.pharmacists[0] if world.pharmacists else None,
                )
                world.count("recoveries")
                world.emit("drawer_recovered", cabinet=station.id, drawer=drawer)
            except AdcError as err:
                world.emit(
                    "recovery_refused", cabinet=station.id, drawer=drawer, reason=err.message
                )


def inject(
    world: World,
    station: Station,
    kind: str,
    target: str | None,
    params: dict[str, Any],
    scope: frozenset[str],
) -> None:
    try:
        station.cabinet.sim_inject_fault(kind, target, **params)
    except SimInputError as err:
        world.emit("fault_refused", cabinet=station.id, kind=kind, target=target, why=err.message)
        return
    fault = InjectedFault(len(world.faults) + 1, station.id, kind, target, world.env.now, scope)
    world.faults.append(fault)
    world.emit("fault_injected", id=fault.id, cabinet=station.id, kind=kind, target=target)


def fault_at(world: World, at: float, action: Callable[[], None]) -> Proc:
    if at > world.env.now:
        yield world.env.timeout(at - world.env.now)
    action()


def recall_arrives(world: World, gtin: str, lot: str, reason: str) -> None:
    world.recalled.add((gtin, lot))
    blocked = recalls.add_recall(world.ctl, world.pharmacists[0], gtin, lot, reason)
    world.count("recall_pockets_blocked", len(blocked))
    world.emit("recall", gtin=gtin, lot=lot, blocked=blocked)


# ---------------------------------------------------------------------------- scripted incidents
def incident(world: World, station: Station, spec: Any, scope: frozenset[str]) -> None:
    """A scripted incident happens (scenario.incidents): people and physics act; whether it is
    found is up to the station's supervision (see `on_alarm`)."""
    cabinet = station.cabinet
    record = InjectedFault(
        len(world.incidents) + 1,
        station.id,
        spec.kind,
        spec.target,
        world.env.now,
        scope,
        params={"rate_c_per_h": spec.rate_c_per_h} if spec.kind == "fridge_failure" else {},
    )
    world.incidents.append(record)
    world.emit("incident", id=record.id, cabinet=station.id, kind=spec.kind, target=spec.target)
    if spec.kind == "power_cut":
        cabinet.sim_inject_fault("power_loss", None, duration_s=spec.minutes * 60)
    elif spec.kind == "fridge_failure":
        cabinet.sim_inject_fault(
            "fridge_failure", _probe_of(station, record), rate_c_per_h=spec.rate_c_per_h
        )
    elif spec.kind == "unrecorded_removal":
        shelf = station.shelves.get(spec.target)
        n = min(spec.units, len(cabinet.units(spec.target)))
        if n:
            cabinet.sim_take_unseen(spec.target, n)
            if shelf is not None:
                shelf.take(n)
        world.emit("incident_taken", id=record.id, cabinet=station.id, pocket=spec.target, units=n)
    else:
        world.env.process(_forced_open(world, station, spec, record))


def _forced_open(world: World, station: Station, spec: Any, record: InjectedFault) -> Proc:
    """Someone yanks the drawer open, takes packs from its first stocked open pocket, and
    shuts it after `open_s`."""
    cabinet = station.cabinet
    if not cabinet.sim_force_open(spec.target):
        world.emit("incident_refused", id=record.id, why="the drawer would not come open")
        return
    reachable = [
        code
        for code, info in station.pockets.items()
        if info.drawer == spec.target and not info.has_door and station.shelves[code].units
    ]
    if reachable and spec.units:
        code = reachable[0]
        n = min(spec.units, station.shelves[code].units)
        cabinet.sim_take(code, n)
        station.shelves[code].take(n)
        world.emit("incident_taken", id=record.id, cabinet=station.id, pocket=code, units=n)
    yield world.env.timeout(spec.open_s)
    with contextlib.suppress(SimInputError):
        cabinet.sim_close(spec.target)


def _probe_of(station: Station, incident: InjectedFault) -> str:
    _drawer, pocket = station.profile.pocket(incident.target or "")
    return str(pocket.temperature)
