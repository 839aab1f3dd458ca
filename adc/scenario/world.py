"""The simulated site: one SimPy environment, the real controller, and a virtual cabinet per cabinet.

This is the one place that wires virtual cabinet + driver + controller + simulated people. The
controller gets a clock that reads SimPy time and a driver per cabinet; it never learns that either
is simulated. The people (adc.scenario.people) act on the virtual cabinets with `sim_*` calls
and on the controller through its public functions, as a person at a real cabinet would.

Ground truth the controller cannot see is kept here: which lot each physical unit in each pocket
belongs to (`Shelf`), which faults are in force, and every event of the run (`events`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import simpy

from adc.controller.context import Actor, Controller
from adc.drivers.base import CabinetDriver
from adc.profiles.models import PocketKind, Profile
from adc.scenario.loader import FormularyItem, LoadedScenario
from adc.scenario.model import StockSpec
from adc.sim.cabinet import VirtualCabinet

PIN = "2468"


class SimClock:
    """The controller's clock: the scenario's start instant plus SimPy seconds."""

    def __init__(self, env: simpy.Environment, start: datetime) -> None:
        self.env, self.start = env, start

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.env.now)


@dataclass
class Lot:
    lot: str
    gtin: str
    expiry: date
    units: int


@dataclass
class Shelf:
    """What is physically in one pocket, lot by lot, earliest expiry first (people take FEFO)."""

    lots: list[Lot] = field(default_factory=list)

    @property
    def units(self) -> int:
        return sum(lot.units for lot in self.lots)

    def add(self, lot: str, gtin: str, expiry: date, n: int) -> None:
        for held in self.lots:
            if (held.lot, held.gtin, held.expiry) == (lot, gtin, expiry):
                held.units += n
                break
        else:
            self.lots.append(Lot(lot, gtin, expiry, n))
        self.lots.sort(key=lambda held: held.expiry)

    def take(self, n: int) -> None:
        for held in self.lots:
            taken = min(held.units, n)
            held.units -= taken
            n -= taken
            if n == 0:
                break
        self.lots = [held for held in self.lots if held.units]

    def take_lots(self, bad: Callable[[Lot], bool]) -> int:
        """Take out every unit of the lots `bad` picks; how many units that was."""
        taken = sum(held.units for held in self.lots if bad(held))
        self.lots = [held for held in self.lots if not bad(held)]
        return taken


@dataclass
class PocketInfo:
    """A stocked pocket as the people see it."""

    code: str
    drawer: str
    kind: PocketKind
    has_door: bool
    capacity: int
    stock: StockSpec
    item: FormularyItem
    neighbours: list[str]  # other stocked pockets a hand reaches in the open drawer


@dataclass
class Station:
    """One cabinet: its virtual hardware, its driver, the queue at its screen, its pockets."""

    id: str
    profile: Profile
    profile_path: Path
    cabinet: VirtualCabinet
    driver: CabinetDriver
    screen: simpy.Resource
    pockets: dict[str, PocketInfo]
    shelves: dict[str, Shelf]
    nurses: list[Actor] = field(default_factory=list)
    watch: Any = None


@dataclass
class InjectedFault:
    id: int
    cabinet: str
    kind: str
    target: str | None
    at: float
    scope: frozenset[str]
    detected_at: float | None = None
    repaired_at: float | None = None
    detected_by: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    loaded: LoadedScenario
    seed: int
    days: float
    env: simpy.Environment
    ctl: Controller
    start: datetime
    zone: ZoneInfo
    stations: dict[str, Station] = field(default_factory=dict)
    actors: dict[str, Actor] = field(default_factory=dict)
    technicians: list[Actor] = field(default_factory=list)
    pharmacists: list[Actor] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: list[InjectedFault] = field(default_factory=list)
    incidents: list[InjectedFault] = field(default_factory=list)  # scripted (scenario.incidents)
    recalled: set[tuple[str, str]] = field(default_factory=set)
    levels: dict[tuple[str, str], list[tuple[float, int]]] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    resolver: Callable[..., Any] | None = None
    resolver_name: str = "none"
    keep_events: bool = True
    t0: float = 0.0  # SimPy seconds at day 0's midnight (the go-live comes before)
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def horizon_s(self) -> float:
        return self.t0 + self.days * 86400.0

    def rng(self, *purpose: object) -> random.Random:
        """An independent, reproducible random stream per purpose (same seed, same draws)."""
        return random.Random(":".join(str(p) for p in (self.seed, *purpose)))

    def emit(self, event: str, /, **fields: Any) -> None:
        if self.keep_events:
            self.events.append({"t": round(self.env.now, 3), "event": event, **fields})

    def count(self, name: str, by: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def today(self) -> date:
        return (self.start + timedelta(seconds=self.env.now)).astimezone(self.zone).date()

    def day_index(self) -> int:
        return max((self.today() - self.loaded.scenario.start).days, 0)

    def seconds_at(self, day: int, hhmm: str) -> float:
        """SimPy seconds of a local time of day on scenario day `day`."""
        hours, minutes = (int(x) for x in hhmm.split(":"))
        local = datetime.combine(
            self.loaded.scenario.start + timedelta(days=day), time(hours, minutes), self.zone
        )
        return (local.astimezone(UTC) - self.start).total_seconds()

    def level(self, cabinet: str, pocket: str, on_hand: int) -> None:
        """The controller's on-hand of a pocket after a change (for stock-out time and plots)."""
        series = self.levels.setdefault((cabinet, pocket), [])
        if not series or series[-1][1] != on_hand:
            series.append((round(self.env.now, 3), on_hand))
