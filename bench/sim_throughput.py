"""Scenario throughput: simulated transactions per wall second with the full controller and audit,
next to a bare SimPy model stepping the same number of events in the same run.

1. `full`: a shipped scenario (default hospital-30day, the speed scenario: 20 cabinets, `--days`
   of it, default 1; `--days 0` the whole scenario) through `run_scenario`: the real
   controller (every rule, one locked transaction plus its audit entry per change), the sim driver,
   the simulated people, and the station's supervision of every cabinet on simulated time (at
   the station's polling rates; adc/scenario/supervise.py). Counted: controller transactions
   (stock_transaction rows), SimPy events, and the supervision's polls (driver snapshots) and
   rule evaluations.
2. `bare`: one SimPy process yielding that many timeouts: what SimPy alone costs for those events.
3. `controller`: `inventory.remove` called back to back on one pocket (no SimPy, no hardware), on
   in-memory SQLite (what a scenario uses) and on a SQLite file (WAL, synchronous=FULL: an fsync
   per commit): the ceiling the controller's transaction path puts on any scenario.
4. The same in CPU time (process time, which a loaded machine inflates far less than wall time):
   the full run's tx/s against the controller alone's, and the supervision's share (its polls
   and plans) against the rest (people, the controller's transactions, SimPy).
5. The same run again, its CPU split by who spends it (bench/cpu_scopes.py): the controller (every
   function of `adc.controller` a person or the go-live calls: the scenario's own transactions,
   done by the controller alone), the station's supervision, the simulated hardware, and the rest
   (people, SimPy). A scenario transaction is a whole withdrawal or restock line (login check,
   access opened on record, unlock, count, record, access closed), several controller
   transactions where `controller` above times one bare removal; so the run is also compared
   with the controller's own share of it, the floor the simulation around it sits on (issue 17:
   "simulation overhead down to the controller's floor").
6. The top of a cProfile of the full run (cumulative), to show what bounds it.

Run: .venv/bin/python bench/sim_throughput.py [--scenario NAME] [--days D] [--no-profile].
Prints figures and ratios; not a pass/fail test. Target named in issue 8: 10,000 tx/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

import simpy

from adc.scenario import load_scenario
from adc.scenario.kpis import compute_kpis
from adc.scenario.runner import build_world, close_world, start_processes

ROOT = Path(__file__).resolve().parents[1]
TARGET = 10_000


def full_run(name: str, days: float) -> tuple[int, int, float, float]:
    """(transactions, SimPy events, wall seconds of the simulated days, wall seconds of setup)."""
    tx, events, wall, setup, _watch = full_run_watched(name, days)
    return tx, events, wall, setup


def full_run_watched(name: str, days: float) -> tuple[int, int, float, float, tuple[int, int]]:
    """full_run, and the supervision's (polls, rule evaluations) over every cabinet."""
    tx, events, wall, setup, watch, _cpu = full_run_cpu(name, days)
    return tx, events, wall, setup, watch


class CpuSplit:
    """CPU seconds (process time: what a loaded machine does not inflate the way it does wall
    time) of the simulated days, and the share spent in the supervision's polls (driver
    snapshot, rules, records) and plans (the rules asked about later ticks)."""

    def __init__(self) -> None:
        self.total = self.poll = self.plan = 0.0

    def wrap(self, cls: type, name: str, attr: str) -> None:
        inner = getattr(cls, name)
        split = self

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            began = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                setattr(split, attr, getattr(split, attr) + time.process_time() - began)

        setattr(cls, name, timed)

    def unwrap(self, cls: type, name: str, inner: object) -> None:
        setattr(cls, name, inner)


def full_run_cpu(
    name: str, days: float
) -> tuple[int, int, float, float, tuple[int, int], CpuSplit]:
    """full_run_watched, and the CPU split of the simulated days."""
    from adc.scenario.supervise import Supervisor

    loaded = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    began = time.perf_counter()
    world = build_world(loaded, days=days or None)
    start_processes(world, None)
    setup = time.perf_counter() - began
    env, events = world.env, 0
    cpu = CpuSplit()
    poll, plan = Supervisor.poll, Supervisor.plan
    cpu.wrap(Supervisor, "poll", "poll")
    cpu.wrap(Supervisor, "plan", "plan")
    try:
        began, began_cpu = time.perf_counter(), time.process_time()
        while env.peek() < world.horizon_s:
            env.step()
            events += 1
        wall = time.perf_counter() - began
        cpu.total = time.process_time() - began_cpu
    finally:
        cpu.unwrap(Supervisor, "poll", poll)
        cpu.unwrap(Supervisor, "plan", plan)
    kpis = compute_kpis(world)
    assert kpis["audit"]["verified"], "the audit chain must verify"
    watches = [s.watch for s in world.stations.values()]
    watch = (sum(w.polls for w in watches), sum(w.evaluations for w in watches))
    close_world(world)
    return int(kpis["transactions_total"]), events, wall, setup, watch, cpu


def scoped_run(name: str, days: float) -> tuple[int, dict[str, float], dict[str, int]]:
    """(transactions, CPU seconds by scope, scope entries) of the simulated days."""
    from cpu_scopes import ScopeClock, scoped

    from adc.scenario.supervise import Supervisor

    loaded = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    world = build_world(loaded, days=days or None)
    start_processes(world, None)
    env = world.env
    with scoped(ScopeClock(), Supervisor) as clock:
        clock.close()  # the setup is not counted
        clock.spent.clear()
        clock.mark = time.process_time()
        while env.peek() < world.horizon_s:
            env.step()
        spent = clock.close()
    kpis = compute_kpis(world)
    close_world(world)
    return int(kpis["transactions_total"]), spent, dict(clock.calls)


def bare_simpy(events: int) -> float:
    env = simpy.Environment()

    def ticker(n: int):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield env.timeout(1.0)

    env.process(ticker(events))
    began = time.perf_counter()
    env.run()
    return time.perf_counter() - began


def controller_only(n: int, url: str = "sqlite://") -> float:
    """Wall seconds of `n` removals through `inventory.remove` alone (one pocket, refilled as
    needed; the refills are timed too, one per 49 removals)."""
    return controller_only_cpu(n, url)[0]


def controller_only_cpu(n: int, url: str = "sqlite://") -> tuple[float, float]:
    """(wall seconds, CPU seconds) of controller_only."""
    from adc.controller import cabinets, formulary, inventory, users
    from adc.controller.clock import ManualClock
    from adc.controller.context import Controller
    from adc.controller.db import init_database, open_database
    from adc.controller.gs1 import parse_scan

    clock = ManualClock()
    db = open_database(url, create=True)
    init_database(db, clock.now())
    ctl = Controller(db, clock)
    users.SCRYPT_N = 2**8
    users.add_user(ctl, None, "admin", "admin", "2468")
    admin = users.authenticate(ctl, "admin", "2468")
    for name, role in (("ph", "pharmacist"), ("svc", "service"), ("rn", "nurse")):
        users.add_user(ctl, admin, name, role, "2468")
    ph, svc, rn = (users.authenticate(ctl, u, "2468") for u in ("ph", "svc", "rn"))
    formulary.import_items(ctl, ph, ROOT / "adc" / "data" / "formulary-demo.csv")
    cabinets.add_cabinet(ctl, svc, "B1", "tcp-6drawer")
    scan = parse_scan("]d20100309046722618172712311000L1")
    inventory.load(ctl, ph, "B1", "D6-P1", 1, (40, 5, 50), scan, 50)
    began, began_cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        if i and i % 49 == 0:
            inventory.refill(ctl, ph, "B1", "D6-P1", scan, 49)
        inventory.remove(ctl, rn, "B1", "D6-P1", 1)
        clock.advance(10)
    wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    db.close()
    return wall, cpu


def profile_top(name: str, days: float, lines: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    full_run(name, days)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(lines)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="hospital-30day")
    parser.add_argument("--days", type=float, default=1.0, help="0: the whole scenario")
    parser.add_argument("--removals", type=int, default=1000)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    load_before = os.getloadavg()
    tx, events, wall, setup, (polls, evaluations), cpu = full_run_cpu(args.scenario, args.days)
    bare = bare_simpy(events)
    only, only_cpu = controller_only_cpu(args.removals)
    with tempfile.TemporaryDirectory() as directory:
        on_file = controller_only(args.removals, f"sqlite:///{directory}/bench.db")
    full_rate = tx / wall
    days = f"{args.days:g} simulated day(s)" if args.days else "the whole scenario"
    print(
        f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
        f"({os.cpu_count()} cores; a busy machine slows every figure)"
    )
    print(f"scenario {args.scenario}, {days}; setup {setup:.2f} s")
    print(
        f"  full     {tx:>8} transactions, {events:>8} SimPy events in {wall:8.3f} s "
        f"= {full_rate:10,.0f} tx/s, {events / wall:10,.0f} events/s"
    )
    print(
        f"  bare     {events:>8} SimPy events (timeouts)              in {bare:8.3f} s "
        f"= {events / bare:10,.0f} events/s"
    )
    print(f"  ratio    full/bare wall time: {wall / bare:,.0f}x")
    print(
        f"  controller alone: {args.removals} removals in {only:.3f} s = "
        f"{args.removals / only:,.0f} tx/s (inventory.remove, in-memory SQLite); "
        f"{args.removals / on_file:,.0f} tx/s on a SQLite file (fsync per commit)"
    )
    print(
        f"  supervision: {polls} polls (driver snapshots), {evaluations} rule evaluations "
        f"= {polls / max(tx, 1):.2f} polls and {evaluations / max(tx, 1):.2f} evaluations "
        "per transaction"
    )
    ratio = full_rate / (args.removals / only)
    print(
        f"  ratio    full tx/s / controller-alone tx/s = {ratio:.2f} "
        f"(goal of issue 17: >= 0.5); the simulated days took {wall:.2f} s wall"
    )
    cpu_ratio = (tx / cpu.total) / (args.removals / only_cpu)
    rest = cpu.total - cpu.poll - cpu.plan
    print(
        f"  CPU time (process time; steadier than wall on a loaded machine): the simulated "
        f"days {cpu.total:.2f} s = {tx / cpu.total:,.0f} tx/s, the controller alone "
        f"{args.removals / only_cpu:,.0f} tx/s: ratio {cpu_ratio:.2f}"
    )
    print(
        f"    of which supervision {cpu.poll + cpu.plan:.2f} s "
        f"({(cpu.poll + cpu.plan) / cpu.total:.0%}: polls {cpu.poll:.2f} s "
        f"= {cpu.poll / max(polls, 1) * 1e6:.0f} µs each, plans {cpu.plan:.2f} s), the rest "
        f"(people, the controller's transactions, SimPy) {rest:.2f} s = "
        f"{rest / max(tx, 1) * 1e3:.2f} ms per transaction"
    )
    print(
        f"  target {TARGET:,} tx/s: {'met' if full_rate >= TARGET else 'NOT met'} "
        f"({full_rate / TARGET:.1%} of it)"
    )
    stx, spent, _calls = scoped_run(args.scenario, args.days)
    whole = sum(spent.values())
    print(f"  CPU by scope (the same days again, instrumented: {whole:.2f} s, {stx} transactions):")
    for scope in ("controller", "supervision", "hardware", "rest"):
        seconds = spent.get(scope, 0.0)
        print(
            f"    {scope:<12} {seconds:7.2f} s  {seconds / whole:4.0%}  "
            f"{seconds / max(stx, 1) * 1e3:6.3f} ms per transaction"
        )
    ctl = spent.get("controller", 0.0)
    print(
        f"  the controller alone on the scenario's own transactions: {stx / ctl:,.0f} tx/s "
        f"({ctl / max(stx, 1) * 1e3:.3f} ms each, {ctl / max(stx, 1) / (only_cpu / args.removals):.1f}"
        f" bare removals' worth); ratio full / that = {ctl / whole:.2f} (the simulation around "
        f"the controller costs {(whole - ctl) / ctl:.1f}x what the controller does)"
    )
    if not args.no_profile:
        print(profile_top(args.scenario, min(args.days or 1.0, 1.0)))


if __name__ == "__main__":
    main()
