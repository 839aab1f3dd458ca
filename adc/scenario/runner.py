"""Run a scenario: build the site (database, users, formulary, cabinets), load the pockets, let the
people loose in SimPy time, and hand back the KPIs and the events.

One database per run: in memory by default (`sqlite://`), a new SQLite file, or a URL given by the
caller (it must hold no adc schema yet: a scenario writes its own site). The run starts with a
go-live of `GO_LIVE_S` in which the pockets are loaded through restock sessions; day 0 begins at
midnight after it. Every random draw comes from a stream seeded by (seed, purpose), and the go-live
and the people run in SimPy's deterministic event order, so the same scenario and seed give the same
KPIs, byte for byte.
"""

from __future__ import annotations

import random
import time as walltime
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import simpy

from adc.controller import cabinets, formulary, users
from adc.controller.context import Controller
from adc.controller.db import init_database, open_database
from adc.controller.policy import Policy
from adc.controller.restock import LineKind, begin_restock
from adc.errors import BadInput
from adc.profiles.models import PocketKind, Profile, SensorKind
from adc.scenario import diverters, people, study
from adc.scenario.loader import LoadedScenario
from adc.scenario.supervise import Supervisor, WatchedDriver, polling_rates
from adc.scenario.workload import Demand, arrivals, day_profile
from adc.scenario.world import PIN, PocketInfo, Shelf, SimClock, Station, World
from adc.sim.cabinet import VirtualCabinet
from adc.sim.wiring import canonical

GO_LIVE_S = 7200.0  # SimPy seconds before day 0's midnight in which the pockets are loaded
CHEAP_SCRYPT_N = 2**8  # the scenario's users live in a throwaway database: fast PIN hashes


@dataclass
class RunResult:
    world: World
    kpis: dict[str, Any]
    wall_s: float
    transactions: int


def run_scenario(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    days: float | None = None,
    db_url: str | None = None,
    wire: bool = False,
    progress: Callable[[float, float], None] | None = None,
    keep_events: bool = True,
) -> RunResult:
    """Run it to the end; `progress(done_s, total_s)` is called every simulated hour."""
    from adc.scenario.kpis import compute_kpis

    began = walltime.perf_counter()
    world = build_world(loaded, seed=seed, days=days, db_url=db_url, wire=wire)
    world.keep_events = keep_events
    start_processes(world, progress)
    try:
        world.env.run(until=world.horizon_s)
        kpis = compute_kpis(world)
    finally:
        close_world(world)
    wall = walltime.perf_counter() - began
    return RunResult(world, kpis, wall, int(kpis["transactions_total"]))


def build_world(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    days: float | None = None,
    db_url: str | None = None,
    wire: bool = False,
) -> World:
    scenario = loaded.scenario
    zone = ZoneInfo(scenario.timezone)
    env = simpy.Environment()
    midnight = datetime.combine(scenario.start, time(0, 0), zone).astimezone(UTC)
    clock = SimClock(env, midnight - timedelta(seconds=GO_LIVE_S))
    url = db_url or "sqlite://"
    db = open_database(url, create=True)
    if db.schema_version() is not None:
        db.close()
        raise BadInput(f"database {db.url} is not empty: a scenario needs a new database")
    init_database(db, clock.now())
    ctl = Controller(db, clock, Policy(timezone=scenario.timezone))
    ids = random.Random(f"session-ids:{scenario.seed if seed is None else seed}")
    ctl.new_id = lambda: f"{ids.getrandbits(128):032x}"  # the seed's, not the host's, session ids
    world = World(
        loaded=loaded,
        seed=scenario.seed if seed is None else seed,
        days=scenario.days if days is None else days,
        env=env,
        ctl=ctl,
        start=clock.start,
        zone=zone,
        t0=GO_LIVE_S,
    )
    try:
        _people(world)
        formulary.import_items(ctl, world.pharmacists[0], loaded.formulary_path)
        for cab_id, spec_index in scenario.cabinet_ids():
            path, profile = loaded.profiles[spec_index]
            cabinets.add_cabinet(ctl, world.actors["service"], cab_id, path, simulated=True)
            world.stations[cab_id] = _station(world, cab_id, spec_index, path, profile, wire)
        for station in world.stations.values():
            station.nurses = [
                _user(world, f"nurse.{station.id.lower()}.{n}", "nurse")
                for n in range(1, scenario.nurses.per_cabinet + 1)
            ]
        _check_resolver(world)
    except BaseException:
        close_world(world)  # a --wire run has emulator threads serving by now
        raise
    return world


def close_world(world: World) -> None:
    """Close every station's driver and whatever the wire tier started (emulators, ports)."""
    for station in world.stations.values():
        station.driver.close()
    for closer in world.closers:
        closer()
    world.closers.clear()


def _user(world: World, name: str, role: str) -> Any:
    before = users.SCRYPT_N
    users.SCRYPT_N = CHEAP_SCRYPT_N
    try:
        users.add_user(world.ctl, world.actors.get("admin"), name, role, PIN)
    finally:
        users.SCRYPT_N = before
    actor = users.authenticate(world.ctl, name, PIN)
    world.actors[name] = actor
    return actor


def _people(world: World) -> None:
    scenario = world.loaded.scenario
    _user(world, "admin", "admin")
    _user(world, "service", "service")
    world.pharmacists = [
        _user(world, f"pharmacist.{n}", "pharmacist")
        for n in range(1, max(scenario.pharmacists.count, 1) + 1)
    ]
    world.technicians = [
        _user(world, f"technician.{n}", "technician")
        for n in range(1, max(scenario.technicians.count, 1) + 1)
    ]


def _check_resolver(world: World) -> None:
    name = world.loaded.scenario.pharmacists.resolver
    try:
        world.resolver, world.resolver_name = people.find_resolver(name)
    except (ImportError, AttributeError):
        raise BadInput(f"pharmacists.resolver {name!r}: no such module:function") from None


def _station(
    world: World, cab_id: str, spec_index: int, path: Any, profile: Profile, wire: bool
) -> Station:
    """The virtual cabinet (empty: the go-live loads it), its driver, and its pockets."""
    from adc.drivers.registry import open_backend

    empty = profile.model_copy(update={"sim": profile.sim.model_copy(update={"initial_units": 0})})
    cabinet = VirtualCabinet(
        empty, env=world.env, seed=world.rng("cabinet", cab_id).randrange(2**31)
    )
    if wire:
        from adc.scenario.wire import open_wire_driver

        driver, closer = open_wire_driver(cabinet, profile)
        world.closers.append(closer)
    else:
        driver = open_backend("sim:", profile, cabinet=cabinet)
    spec = world.loaded.scenario.cabinets[spec_index]
    stock = {s.pocket: s for s in spec.stock}
    infos: dict[str, PocketInfo] = {}
    for drawer in profile.layout.drawers:
        open_pockets = [
            p.id for p in drawer.pockets if p.id in stock and not (p.lock or p.lid_lock)
        ]
        for pocket in drawer.pockets:
            if pocket.id not in stock:
                continue
            has_door = bool(pocket.lock or pocket.lid_lock)
            infos[pocket.id] = PocketInfo(
                code=pocket.id,
                drawer=drawer.id,
                kind=pocket.kind,
                has_door=has_door,
                capacity=pocket.capacity,
                stock=stock[pocket.id],
                item=world.loaded.item(stock[pocket.id].item),
                neighbours=[] if has_door else [p for p in open_pockets if p != pocket.id],
            )
    station = Station(
        id=cab_id,
        profile=profile,
        profile_path=path,
        cabinet=cabinet,
        driver=driver,
        screen=simpy.Resource(world.env, capacity=1),
        pockets=infos,
        shelves={code: Shelf() for code in infos},
    )
    # The station's supervision reads the driver itself; the controller's calls (through the
    # people) reach it through WatchedDriver, which tells the watch the controller acted.
    fast_s, slow_s = polling_rates(profile)
    watch = Supervisor(
        world,
        station,
        driver,
        fast_s=fast_s,
        slow_s=slow_s,
        on_alarm=lambda alarm, s=station: people.on_alarm(
            world, s, people.alarm_tokens(alarm), alarm.detail, source="supervision"
        ),
    )
    station.watch = watch
    station.driver = WatchedDriver(driver, watch.controller_acted)
    return station


# ------------------------------------------------------------------------------------ processes
def start_processes(world: World, progress: Callable[[float, float], None] | None) -> None:
    scenario = world.loaded.scenario
    env = world.env
    stations = list(world.stations.values())
    for station in stations:
        env.process(go_live(world, station))
    profile = day_profile(scenario.demand)
    horizon_days = world.days * 86400.0
    for station in stations:
        rates = {code: info.stock.demand_per_day for code, info in station.pockets.items()}
        demands = (
            Demand(GO_LIVE_S + d.at, d.pocket)
            for d in arrivals(world.rng("demand", station.id), rates, profile, horizon_days)
        )
        env.process(people.demand_source(world, station, demands))
        env.process(station.watch.run())
    for index in range(scenario.technicians.count):
        mine = stations[index :: scenario.technicians.count]
        env.process(people.technician_shift(world, index, mine))
    for index in range(scenario.pharmacists.count):
        env.process(people.pharmacist_rounds(world, index))
    _schedule_faults(world)
    diverters.start(world)  # planted diverters' own visits (adc/scenario/diverters.py)
    study.start(world, scenario.study)  # a study pocket's subjects (adc/scenario/study.py)
    _schedule_incidents(world)
    for recall in scenario.recalls:
        item = world.loaded.item(recall.item)
        at = world.seconds_at(recall.day, recall.time)
        env.process(
            people.fault_at(
                world,
                at,
                lambda g=item.gtin, lot=recall.lot, why=recall.reason: people.recall_arrives(
                    world, g, lot, why or "recall"
                ),
            )
        )
    if progress is not None:
        env.process(_ticker(world, progress))


def _ticker(world: World, progress: Callable[[float, float], None]) -> Any:
    total = world.days * 86400.0
    while True:
        done = max(world.env.now - GO_LIVE_S, 0.0)
        progress(min(done, total), total)
        yield world.env.timeout(3600.0)


def go_live(world: World, station: Station) -> Any:
    """Load every stocked pocket through restock sessions (LOAD lines), before day 0."""
    tech = world.technicians[0]
    with station.screen.request() as turn:
        yield turn
        session = begin_restock(world.ctl, station.driver, station.id, tech)
        for code, info in station.pockets.items():
            stock = info.stock
            if (stock.initial if stock.initial is not None else stock.par) <= 0:
                continue
            session.select(
                code,
                LineKind.LOAD,
                item=info.item.gtin,
                levels=(stock.par, stock.critical_low, stock.max),
            )
            session = yield from people._work_line(world, station, session, session.line)
        if session.line is None:
            session.end()
    station.watch.layout_stale = True  # the pockets have their items now: read the layout again


# ---------------------------------------------------------------------------------------- faults
def fault_scope(profile: Profile, kind: str, target: str | None) -> frozenset[str]:
    """What an alarm must point at to count as having found this fault: the point or device and
    every drawer and pocket wired to it."""
    uses: dict[str, set[str]] = {}
    for drawer in profile.layout.drawers:
        for point in (drawer.lock, drawer.switch, drawer.light):
            if point:
                uses.setdefault(canonical(point), set()).add(f"drawer:{drawer.id}")
        for pocket in drawer.pockets:
            for point in (
                pocket.lock,
                pocket.switch,
                pocket.lid_lock,
                pocket.lid_switch,
                pocket.sensor.point,
                pocket.light,
            ):
                if point:
                    uses.setdefault(canonical(point), set()).update(
                        {f"pocket:{pocket.id}", f"drawer:{drawer.id}"}
                    )
    if kind == "power_loss":
        devices = set(profile.devices)
    elif kind == "bus_noise":
        devices = {name for name, d in profile.devices.items() if d.bus == target}
    elif kind == "device_offline":
        devices = {target or ""}
    else:
        point = canonical(target or "")
        return frozenset({f"point:{point}", *uses.get(point, set())})
    scope = {f"device:{d}" for d in devices}
    if kind == "power_loss":
        scope.add("cabinet")  # the supervision's whole-cabinet power-loss alarm points here
    for point, where in uses.items():
        if point.partition(":")[0] in devices:
            scope |= where | {f"point:{point}"}
    return frozenset(scope)


def _targets(station: Station, kind: str) -> list[str | None]:
    """Where a random fault of this kind can strike: parts the stocked pockets use."""
    profile = station.profile
    drawers = [
        profile.drawer(code) for code in sorted({i.drawer for i in station.pockets.values()})
    ]
    stocked = [p for d in drawers for p in d.pockets if p.id in station.pockets]
    if kind in ("lock_jammed", "lock_no_reengage"):
        return [d.lock for d in drawers] + [
            p.lock or p.lid_lock for p in stocked if p.lock or p.lid_lock
        ]
    if kind == "switch_stuck":
        return [d.switch for d in drawers]
    if kind.startswith("loadcell_"):
        return [p.sensor.point for p in stocked if p.sensor.kind is SensorKind.WEIGHT]
    if kind == "device_offline":
        return sorted(profile.devices)
    if kind == "bus_noise":
        return sorted(profile.buses)
    return [None]


def _schedule_faults(world: World) -> None:
    scenario = world.loaded.scenario
    horizon = world.days * 86400.0
    for station in world.stations.values():
        for kind, per_day in sorted(scenario.faults.rates.items()):
            if per_day <= 0:
                continue
            targets = _targets(station, kind)
            if not targets:
                continue
            rng = world.rng("faults", station.id, kind)
            t = 0.0
            while True:
                t += rng.expovariate(per_day / 86400.0)
                if t >= horizon:
                    break
                target = targets[rng.randrange(len(targets))]
                params: dict[str, Any] = {}
                if kind == "switch_stuck":
                    params["active"] = rng.random() < 0.5
                if kind == "power_loss":
                    params["duration_s"] = 600.0
                scope = fault_scope(station.profile, kind, target)
                world.env.process(
                    people.fault_at(
                        world,
                        GO_LIVE_S + t,
                        lambda s=station, k=kind, tg=target, p=params, sc=scope: people.inject(
                            world, s, k, tg, p, sc
                        ),
                    )
                )
    for fault in scenario.faults.scripted:
        station = world.stations[fault.cabinet]
        scope = fault_scope(station.profile, fault.kind, fault.target)
        world.env.process(
            people.fault_at(
                world,
                world.seconds_at(fault.day, fault.time),
                lambda s=station, f=fault, sc=scope: people.inject(
                    world, s, f.kind, f.target, dict(f.params), sc
                ),
            )
        )


def incident_scope(profile: Profile, kind: str, target: str | None) -> frozenset[str]:
    """What a supervision alarm must point at to count as having found this incident."""
    if kind == "power_cut":
        return frozenset({"cabinet"})
    if kind == "forced_open":
        drawer = profile.drawer(target or "")
        return frozenset({f"drawer:{drawer.id}", f"point:{canonical(drawer.switch)}"})
    _drawer, pocket = profile.pocket(target or "")
    points = [pocket.temperature] if kind == "fridge_failure" else [pocket.sensor.point]
    return frozenset({f"pocket:{pocket.id}", *(f"point:{canonical(p)}" for p in points if p)})


def _schedule_incidents(world: World) -> None:
    for spec in world.loaded.scenario.incidents:
        station = world.stations[spec.cabinet]
        scope = incident_scope(station.profile, spec.kind, spec.target)
        world.env.process(
            people.fault_at(
                world,
                world.seconds_at(spec.day, spec.time),
                lambda s=station, i=spec, sc=scope: people.incident(world, s, i, sc),
            )
        )


__all__ = ["GO_LIVE_S", "PocketKind", "RunResult", "build_world", "run_scenario"]
