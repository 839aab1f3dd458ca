"""Supervision: what the always-on station notices about a cabinet between people's commands.

The rules are pure: `evaluate(state, snapshot, accesses, layout, now)` takes the watch's state
(derived only from earlier hardware readings), the cabinet's current snapshot, the accesses open
on record (`access_log`) and the clock, and returns the next state and the findings. Recording a
finding (`record`) is the only write: an audited alarm (`maintenance.alarm`, a maintenance event)
and, where a blind recount is due, a failure on the drawer (`maintenance.failed`, kind `failed`:
out of service until `adc diag recover` recounts it). Scenarios and the station run the same code.

Rules (each once per episode):
- **unauthorized access** (`alarm-unauthorized-access`): a drawer, lid or door switch goes from
  closed to open (or reads open at the first look) with no access open on record for it; a
  drawer holding controlled substances (or the controlled pocket behind a lid) needs a recount;
- **unrecorded change** (`alarm-unrecorded-change`): a weighed pocket's settled scale moves by
  at least one unit from its level while no access is open for that pocket (a matrix
  drawer opened for another pocket does not cover it) → alarm and recount (the diversion signal).
  The level is the mean of the settled readings since the last change, and a change is judged
  on the mean of the readings after it, over at least `CONFIRM_S`, beyond the scale's own noise
  (estimated from its readings; `Scale`, `_judge`): one noisy reading is never an alarm;
- **scale fault** (`alarm-sensor-fault`): a shut pocket's scale, with no access open, reads
  other than "ok" (fault, overload, never settles) for longer than `SENSOR_FAULT_S`: the
  unrecorded-change rule is blind there until it is serviced (no recount: nothing was seen to
  move);
- **left open** (`alarm-door-open`): a door open longer than `LEFT_OPEN_S` with no access open
  for it (an access raises its own `alarm-left-open`);
- **device offline** (`alarm-device-offline`), **bus errors** (`alarm-bus-errors`): as the
  cabinet's watch (`withdrawal.CabinetWatch`) does;
- **power loss** (`alarm-power-loss`): every device offline, then back: every drawer holding
  controlled substances needs a recount, and a drawer that read open when the devices went is
  `power-loss-open`;
- **still differs after the access** (`alarm-unrecorded-change`): once an access (restock,
  withdrawal) of a weighed pocket has closed and the pocket has settled for `SETTLE_S`, the
  units its scale moved since before the access (the mean of its readings over `CONFIRM_S`
  against its level before) differ from the movement recorded in the
  same time (the pocket's on-hand, `recorded`) → alarm and recount. Counts, recoveries and
  service work re-weigh the pocket without judging it (a count corrects the record);
- **cold chain** (`alarm-cold-chain`): a temperature-watched pocket (a fridge) reads outside its
  range (`cold_chain.Limits`, 2–8 °C by default) for longer than its allowed excursion → alarm
  and the stock in it quarantined (`quarantine.place`) until a pharmacist releases or pulls it.

Recording (`record`) also notifies pharmacists (`notifications.py`) where one must act: a
quarantine, and every blind recount that takes a drawer out of service.

The station also decides here whether a client's unlock may go out (`authorize_unlock`: fail
closed) and what its own start and stop mean on record (`station_started`, `station_stopped`).
"""

from __future__ import annotations

import json
import math
import operator
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.sql import ClauseElement
from sqlmodel import Session

from adc.controller import maintenance
from adc.controller.access import Alarm, raise_alarm
from adc.controller.access_log import (
    FLAG_KIND,
    _boot_id,
    _start_ticks,
    open_accesses,
    owner_gone,
    process_owner,
)
from adc.controller.cabinets import get_cabinet
from adc.controller.context import Controller
from adc.controller.models import AccessLog, Drawer, Item, MaintenanceEvent, Pocket, User
from adc.errors import Refused

if TYPE_CHECKING:
    from adc.drivers.base import Snapshot

LEFT_OPEN_S = 120.0  # a door open this long with no access for it
UNAUTHORIZED = "alarm-unauthorized-access"
UNRECORDED = "alarm-unrecorded-change"
DOOR_OPEN = "alarm-door-open"
DEVICE_OFFLINE = "alarm-device-offline"
BUS_ERRORS = "alarm-bus-errors"
POWER_LOSS = "alarm-power-loss"
COLD_CHAIN = "alarm-cold-chain"
SENSOR_FAULT = "alarm-sensor-fault"
SENSOR_FAULT_S = 30.0  # a shut pocket's scale not "ok" this long: it cannot weigh
# A weighed pocket's level is the mean of its settled readings, never one reading: a change is
# judged on the mean of the readings after it, gathered for at least CONFIRM_S (and
# MIN_READINGS), and only once that mean is told apart from the level by Z times its spread
# (the noise, estimated from the scale's own successive readings). Noise around the level
# triggers a look only beyond TRIGGER_SIGMAS (or half a unit), or once the CUSUM of the
# readings beyond half a unit reaches CUSUM_SIGMAS (a one-unit shift on a cell noisier than a
# unit, which no single reading shows); a look still undecided after
# JUDGE_MAX_S is decided by the nearer of "unchanged" and "a unit moved" (fail closed), unless
# the level itself rests on fewer than MATURE_N readings (the station's first look).
CONFIRM_S = 3.0
MIN_READINGS = 3
Z = 5.0
TRIGGER_SIGMAS = 3.0
CUSUM_SIGMAS = 5.0  # or a CUSUM (half a unit of slack) beyond this many sigmas
JUDGE_MAX_S = 120.0
REF_CAP = 60  # the level follows at most this many recent readings
MATURE_N = 30  # a level from fewer readings, undecided after JUDGE_MAX_S, is replaced instead
VAR_CAP = 240  # the noise estimate (a property of the cell) at most this many
NOISE_Z = 3.09  # the noise estimate's upper confidence limit (one-sided 0.1 %)
NOISE_FLOOR_G = 0.01  # a scale's resolution, added to the estimate
SETTLE_S = 2.0  # after an access closes, the pocket settles this long before it is judged
JUDGED_PURPOSES = frozenset({"restock", "withdrawal", "demo"})  # accesses that move stock
STATION_STARTED = "station-started"
STATION_STOPPED = "station-stopped"
STATION_KINDS = (STATION_STARTED, STATION_STOPPED)
ALARM_KINDS = (
    UNAUTHORIZED,
    UNRECORDED,
    DOOR_OPEN,
    DEVICE_OFFLINE,
    BUS_ERRORS,
    POWER_LOSS,
    COLD_CHAIN,
    SENSOR_FAULT,
)


_T = TypeVar("_T")


def _evolve(obj: _T, **changes: object) -> _T:
    """`dataclasses.replace` for the watch's frozen records (no `__post_init__`, no init-only
    fields, no slots): a copy of the instance's fields with `changes`, at a quarter of the cost
    (the rules make several per weighed pocket on every poll)."""
    new = object.__new__(type(obj))
    fields = new.__dict__
    fields.update(obj.__dict__)
    fields.update(changes)
    return new


# ------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class PocketInfo:
    code: str
    drawer: str
    lock: str | None  # its own lock or lid lock
    door_switch: str | None  # its own lid or door switch
    sensor: str | None  # a weight channel
    unit_weight_g: float | None
    controlled: bool
    temperature: str | None = None  # a temperature input (fridge)
    range_c: tuple[float, float] | None = None  # the cold-chain range, where watched
    excursion_s: float = 0.0  # how long it may read outside the range


@dataclass(frozen=True)
class DrawerInfo:
    code: str
    lock: str
    switch: str
    pockets: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """The cabinet as registered: which switch and lock belong to which drawer and pocket."""

    cabinet: str
    drawers: Mapping[str, DrawerInfo]
    pockets: Mapping[str, PocketInfo]

    def controlled_drawer(self, drawer: str) -> bool:
        return any(self.pockets[p].controlled for p in self.drawers[drawer].pockets)

    def doors(self) -> list[tuple[str, str, str | None]]:
        """(switch point, drawer, pocket or None) for every drawer switch and pocket door."""
        return list(self._doors)

    # The layout does not change once read (a new one is loaded when the pockets do): what the
    # rules derive from it on every poll is derived once.
    @cached_property
    def _doors(self) -> tuple[tuple[str, str, str | None], ...]:
        out: list[tuple[str, str, str | None]] = []
        for drawer in self.drawers.values():
            out.append((drawer.switch, drawer.code, None))
            for code in drawer.pockets:
                pocket = self.pockets[code]
                if pocket.door_switch and pocket.door_switch != drawer.switch:
                    out.append((pocket.door_switch, drawer.code, code))
        return tuple(out)

    @cached_property
    def _door_readings(self) -> Callable[[Mapping[str, bool | None]], tuple] | None:
        """Every door switch's reading from a snapshot's inputs at once (None: under two doors)."""
        switches = [switch for switch, _, _ in self._doors]
        return operator.itemgetter(*switches) if len(switches) > 1 else None

    @cached_property
    def _controlled_doors(self) -> dict[tuple[str, str | None], bool]:
        """(drawer, pocket or None) of every door → whether it holds controlled substances."""
        return {
            (drawer, pocket): (
                self.pockets[pocket].controlled if pocket else self.controlled_drawer(drawer)
            )
            for _, drawer, pocket in self._doors
        }

    @cached_property
    def _cold(self) -> tuple[tuple[str, PocketInfo], ...]:
        """(code, pocket) of every temperature-watched pocket with a range, in layout order."""
        return tuple(
            (code, pocket)
            for code, pocket in self.pockets.items()
            if pocket.temperature is not None and pocket.range_c is not None
        )

    @cached_property
    def _weighed(self) -> tuple[tuple[str, PocketInfo, tuple[str, ...]], ...]:
        """(code, pocket, the switches that must read shut for it to be weighed) of every
        pocket with a weight channel, in layout order."""
        out = []
        for code, pocket in self.pockets.items():
            if not pocket.sensor:
                continue
            switches = [self.drawers[pocket.drawer].switch]
            if pocket.door_switch:
                switches.append(pocket.door_switch)
            out.append((code, pocket, tuple(switches)))
        return tuple(out)

    def locks_of(self, drawer: str, pocket: str | None) -> set[str]:
        locks = {self.drawers[drawer].lock}
        if pocket is not None and pocket in self.pockets and self.pockets[pocket].lock:
            locks.add(self.pockets[pocket].lock)  # type: ignore[arg-type]
        return locks


def load_layout(ctl: Controller, cabinet: str) -> Layout:
    from adc.controller.cold_chain import limits_of

    with ctl.read() as session:
        get_cabinet(session, cabinet)
        limits = limits_of(session, cabinet)
        drawers = session.execute(
            select(Drawer).where(Drawer.cabinet_id == cabinet).order_by(Drawer.position)
        ).scalars()
        by_id = {d.id: d for d in drawers}
        pockets = session.execute(
            select(Pocket).where(Pocket.cabinet_id == cabinet).order_by(Pocket.position)
        ).scalars()
        infos: dict[str, PocketInfo] = {}
        members: dict[str, list[str]] = {d.code: [] for d in by_id.values()}
        for p in pockets:
            drawer = by_id[p.drawer_id]
            item = session.get(Item, p.item_id) if p.item_id else None
            infos[p.code] = PocketInfo(
                code=p.code,
                drawer=drawer.code,
                lock=p.lid_lock_point or p.lock_point,
                door_switch=p.lid_switch_point or p.switch_point,
                sensor=p.sensor_point if p.sensor_kind == "weight" else None,
                unit_weight_g=item.unit_weight_g if item else None,
                controlled=item is not None and item.schedule is not None,
                temperature=p.temperature_point,
                range_c=(limits[p.code].min_c, limits[p.code].max_c) if p.code in limits else None,
                excursion_s=limits[p.code].excursion_s if p.code in limits else 0.0,
            )
            members[drawer.code].append(p.code)
        return Layout(
            cabinet,
            {
                d.code: DrawerInfo(d.code, d.lock_point, d.switch_point, tuple(members[d.code]))
                for d in by_id.values()
            },
            infos,
        )


# ------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class OpenAccess:
    """An access open on record, as the rules need it."""

    id: int
    drawer: str
    pocket: str | None
    user: str | None
    purpose: str | None = None


@dataclass(frozen=True)
class Finding:
    kind: str
    detail: str
    drawer: str | None = None
    pocket: str | None = None
    device: str | None = None
    point: str | None = None
    recount: str | None = None  # a failure kind to record on the drawer (blind recount due)
    quarantine: bool = False  # the pocket's stock is quarantined


@dataclass(frozen=True)
class Scale:
    """A weighed pocket's settled level as the watch knows it, from its own readings only.

    `ref_g` is the mean of the settled readings since the last change (the last `REF_CAP`),
    `var` the noise variance estimated from successive readings (half their squared
    difference: the level cancels out). A window (`since`, `m`, `total`) gathers one reading per
    poll while the level is learned, a change is pending, or the pocket is judged after an
    access. A reading equal to the last one is no new sample for the level (a scale that has not
    converted again; and looking at one snapshot twice changes nothing)."""

    ref_g: float | None = None
    n: int = 0
    var: float = 0.0
    k: int = 0
    last_g: float | None = None
    since: float | None = None  # a window open since
    last_t: float = 0.0  # the poll that gave the window's last reading
    m: int = 0
    total: float = 0.0
    up: float = 0.0  # CUSUM of the readings above the level by more than half a unit
    down: float = 0.0  # ... and below it

    def drifted(self, grams: float, unit_g: float) -> Scale:
        """The CUSUMs after one new reading: a shift of a unit that single readings cannot
        tell from the noise adds up here (half a unit per reading on average), noise does not."""
        assert self.ref_g is not None
        dev = grams - self.ref_g
        return _evolve(
            self,
            up=max(0.0, self.up + dev - unit_g / 2),
            down=max(0.0, self.down - dev - unit_g / 2),
        )

    def heard(self, grams: float, *, jump: bool) -> Scale:
        """The reading as a noise sample: its difference from the last reading, unless it is
        a `jump` (the reading that opens a look at a possible change of level)."""
        if grams == self.last_g:
            return self
        if self.last_g is None or jump:
            return _evolve(self, last_g=grams)
        k = min(self.k + 1, VAR_CAP)
        var = self.var + ((grams - self.last_g) ** 2 / 2 - self.var) / k
        return _evolve(self, last_g=grams, var=var, k=k)

    def gather(self, t: float, grams: float, *, first: bool) -> Scale:
        """One reading per poll into the window (opened now if none: with this reading where
        `first`, without it where it is the reading that triggered the look)."""
        if self.since is None:
            return _evolve(self, since=t, last_t=t, m=int(first), total=grams if first else 0.0)
        if t <= self.last_t:
            return self
        return _evolve(self, last_t=t, m=self.m + 1, total=self.total + grams)

    def ripe(self, t: float) -> bool:
        return self.since is not None and t - self.since >= CONFIRM_S and self.m >= MIN_READINGS

    def sigma_seen(self) -> float:
        """The noise as estimated (no widening): what opens a look, which costs nothing."""
        return math.sqrt(self.var + NOISE_FLOOR_G**2)

    def sigma(self) -> float:
        """The noise as an upper bound: the estimate from `k` successive differences (about
        2k/3 degrees of freedom) widened to its one-sided NOISE_Z confidence limit (the
        Wilson–Hilferty approximation of the χ² quantile): a few quiet readings at the start
        must not make a small change look significant."""
        dof = max(2 * self.k / 3, 0.5)
        c = 1 - 2 / (9 * dof) - NOISE_Z * math.sqrt(2 / (9 * dof))
        widen = 1 / max(c, 0.05) ** 3
        return math.sqrt(self.var * widen + NOISE_FLOOR_G**2)

    def folded(self, grams: float) -> Scale:
        assert self.ref_g is not None
        n = min(self.n + 1, REF_CAP)
        return _evolve(self, ref_g=self.ref_g + (grams - self.ref_g) / n, n=n)

    def settled_at(self, ref_g: float, n: int) -> Scale:
        return _evolve(
            self, ref_g=ref_g, n=n, since=None, m=0, total=0.0, last_t=0.0, up=0.0, down=0.0
        )


_NO_SCALE = Scale()  # a pocket not weighed yet (frozen: one shared instance)


def _judge(off_g: float, unit_g: float, spread_g: float, elapsed_s: float) -> bool | None:
    """Whether a mean `off_g` from what was expected is a unit or more moved (True), noise
    (False), or not yet told apart (None): each verdict needs Z spreads of margin."""
    a = abs(off_g)
    if a >= unit_g / 2 and a >= Z * spread_g:
        return True
    if a < unit_g / 2 and unit_g - a >= Z * spread_g:
        return False
    if elapsed_s >= JUDGE_MAX_S:
        return a >= unit_g / 2
    return None


def _sign(x: float) -> int:
    return 1 if x > 0 else -1


def _scale_fault(
    code: str,
    pocket: PocketInfo,
    reading: object,
    unwatched: bool,
    t: float,
    fault_since: dict[str, float],
    fault_alarmed: set[str],
) -> Finding | None:
    """A shut pocket's scale reporting a fault, overload or no settled reading for longer than
    `SENSOR_FAULT_S` with no access open: once per episode (until it reads "ok" again)."""
    if unwatched or reading is None:
        fault_since.pop(code, None)  # open, accessed or unreadable: not judged now
        return None
    if reading.quality == "ok":  # type: ignore[attr-defined]  # a StrEnum: no .value needed
        fault_since.pop(code, None)
        fault_alarmed.discard(code)
        return None
    quality = reading.quality.value  # type: ignore[attr-defined]
    since = fault_since.setdefault(code, t)
    if code in fault_alarmed or t - since < SENSOR_FAULT_S:
        return None
    fault_alarmed.add(code)
    sensor = pocket.sensor or ""
    return Finding(
        SENSOR_FAULT,
        f"pocket {code}'s scale ({sensor}) reads {quality} for {t - since:.0f} s while shut "
        "with no access open: it cannot weigh, so a change to the pocket's stock goes unseen "
        "(the unrecorded-change rule is blind there) until the scale is serviced",
        drawer=pocket.drawer,
        pocket=code,
        device=sensor.partition(":")[0] or None,
        point=sensor or None,
    )


@dataclass(frozen=True)
class WatchState:
    """What the watch remembers between snapshots: only what the hardware said earlier."""

    started: bool = False
    open_since: Mapping[str, float] = field(default_factory=dict)  # switch → seconds it opened
    left_open_alarmed: frozenset[str] = frozenset()
    scales: Mapping[str, Scale] = field(default_factory=dict)  # weighed pocket → its level
    offline: frozenset[str] = frozenset()
    bad_counts: Mapping[str, int] = field(default_factory=dict)
    bus_alarmed: frozenset[str] = frozenset()
    power_out: bool = False
    open_at_outage: frozenset[str] = frozenset()  # drawers open when every device went
    # pocket → (settled grams, readings in that mean, recorded on-hand) before the access that
    # covers it now, and whether that access moves stock (judged once it has closed and settled)
    before_access: Mapping[str, tuple[float, int, int | None, bool]] = field(default_factory=dict)
    closed_since: Mapping[str, float] = field(default_factory=dict)  # pocket → access closed
    too_warm_since: Mapping[str, float] = field(default_factory=dict)  # pocket → left range
    cold_alarmed: frozenset[str] = frozenset()
    fault_since: Mapping[str, float] = field(default_factory=dict)  # pocket → scale not ok
    fault_alarmed: frozenset[str] = frozenset()


def _seconds(now: datetime) -> float:
    return now.timestamp()


def evaluate(
    state: WatchState,
    snap: Snapshot,
    accesses: Iterable[OpenAccess],
    layout: Layout,
    now: datetime,
    *,
    left_open_s: float = LEFT_OPEN_S,
    weights: bool = True,
    recorded: Mapping[str, int] | None = None,
    settle_s: float = SETTLE_S,
) -> tuple[WatchState, list[Finding]]:
    """The findings of one snapshot; see the module docstring. `weights` False: the slow
    readings (scales, temperatures) of this snapshot are not looked at (they are read at a
    slower rate). `recorded`: each pocket's on-hand on record now (None: the movement after an
    access is not judged)."""
    accesses = list(accesses)
    findings: list[Finding] = []
    t = _seconds(now)
    by_drawer = {a.drawer for a in accesses}
    by_pocket = {a.pocket for a in accesses if a.pocket}
    drawer_wide = {a.drawer for a in accesses if a.pocket is None}

    # ---- devices: offline, power loss, bus errors
    health = snap.health
    offline_now = frozenset(n for n, h in health.items() if not h.online and h.requests)
    all_out = bool(health) and all(not h.online for h in health.values()) and bool(offline_now)
    for device in sorted(offline_now - state.offline):
        if not all_out:
            findings.append(
                Finding(DEVICE_OFFLINE, f"device {device} does not answer", device=device)
            )
    power_out = state.power_out
    open_at_outage = state.open_at_outage
    if all_out and not state.power_out:
        power_out = True
        open_at_outage = frozenset(
            code for sw, code, pocket in layout.doors() if pocket is None and sw in state.open_since
        )
    elif state.power_out and not all_out and any(h.online for h in health.values()):
        power_out = False
        findings.append(
            Finding(
                POWER_LOSS,
                "every device of the cabinet stopped answering and came back (power loss): "
                "drawers holding controlled substances need a blind recount before use",
            )
        )
        for code in layout.drawers:
            if code in state.open_at_outage:
                findings.append(
                    Finding(
                        POWER_LOSS,
                        f"drawer {code} was open when the power went: contents unknown",
                        drawer=code,
                        recount=maintenance.MaintenanceKind.POWER_LOSS_OPEN.value,
                    )
                )
            elif layout.controlled_drawer(code):
                findings.append(
                    Finding(
                        POWER_LOSS,
                        f"drawer {code} holds controlled substances and was unwatched during "
                        "a power loss: blind recount before use",
                        drawer=code,
                        recount=FLAG_KIND,
                    )
                )
        open_at_outage = frozenset()
    bad_counts = dict(state.bad_counts)
    bus_alarmed = set(state.bus_alarmed)
    for name, h in health.items():
        bad = h.errors + h.retries + h.timeouts
        grew = bad > state.bad_counts.get(name, bad if not state.started else 0)
        if grew and h.online and name not in bus_alarmed:
            findings.append(Finding(BUS_ERRORS, f"device {name}: requests failing", device=name))
            bus_alarmed.add(name)
        elif not grew:
            bus_alarmed.discard(name)
        bad_counts[name] = bad

    # ---- doors: unauthorized opening, left open
    open_since = dict(state.open_since)
    left_alarmed = set(state.left_open_alarmed)
    inputs = snap.inputs
    doors = layout._doors
    if not open_since and not left_alarmed and layout._door_readings is not None:
        # nothing was open: the loop below changes something only for a door reading open now
        try:
            if False not in layout._door_readings(inputs):
                doors = ()
        except KeyError:
            pass  # a switch missing from the snapshot: the loop reads it as unreadable
    for switch, drawer, pocket in doors:
        reading = inputs.get(switch)
        if reading is None:
            continue  # unreadable: the device's own alarm says so
        if reading:  # closed
            open_since.pop(switch, None)
            if switch in left_alarmed:
                left_alarmed.remove(switch)
            continue
        covered = (
            drawer in by_drawer
            if pocket is None
            else (pocket in by_pocket or drawer in drawer_wide)
        )
        if switch not in open_since:
            open_since[switch] = t
            if not covered:
                where = f"pocket {pocket} in drawer {drawer}" if pocket else f"drawer {drawer}"
                how = "at the station's first look" if not state.started else "opened"
                controlled = layout._controlled_doors[drawer, pocket]
                findings.append(
                    Finding(
                        UNAUTHORIZED,
                        f"{where} {how} with no access open on record for it ({switch})"
                        + (": controlled substances, blind recount required" if controlled else ""),
                        drawer=drawer,
                        pocket=pocket,
                        point=switch,
                        recount=FLAG_KIND if controlled else None,
                    )
                )
        elif not covered and switch not in left_alarmed and t - open_since[switch] > left_open_s:
            left_alarmed.add(switch)
            where = f"pocket {pocket} in drawer {drawer}" if pocket else f"drawer {drawer}"
            findings.append(
                Finding(
                    DOOR_OPEN,
                    f"{where} open for over {left_open_s:g} s with no access ({switch})",
                    drawer=drawer,
                    pocket=pocket,
                    point=switch,
                )
            )

    # ---- scales: unrecorded change, a difference that remains after an access, a scale fault
    scales = dict(state.scales)
    before_access = dict(state.before_access)
    closed_since = dict(state.closed_since)
    fault_since = dict(state.fault_since)
    fault_alarmed = set(state.fault_alarmed)
    purposes = {a.pocket or a.drawer: a.purpose for a in accesses}
    for code, pocket, _ in layout._weighed:
        if not pocket.unit_weight_g:
            continue
        if code in by_pocket or pocket.drawer in drawer_wide:
            closed_since.pop(code, None)
            scale = scales.get(code) or _NO_SCALE
            if code not in before_access and scale.ref_g is not None:
                judged = (purposes.get(code) or purposes.get(pocket.drawer)) in JUDGED_PURPOSES
                on_record = recorded.get(code) if recorded is not None else None
                before_access[code] = (scale.ref_g, scale.n, on_record, judged)
            scales[code] = Scale(var=scale.var, k=scale.k)  # re-weighed once it has closed
        elif code in before_access and code not in closed_since:
            closed_since[code] = t
    if weights:
        for code, pocket, switches in layout._weighed:
            covered = code in by_pocket or pocket.drawer in drawer_wide
            shut = True
            for switch in switches:
                if not inputs.get(switch):
                    shut = False
                    break
            reading = snap.weights.get(pocket.sensor)  # type: ignore[arg-type]
            if (
                shut
                and not covered
                and reading is not None
                and reading.quality == "ok"
                and code not in fault_since
                and code not in fault_alarmed
            ):
                pass  # a working scale with no fault episode open: what _scale_fault would say
            else:
                fault = _scale_fault(
                    code, pocket, reading, covered or not shut, t, fault_since, fault_alarmed
                )
                if fault is not None:
                    findings.append(fault)
            if covered or not pocket.unit_weight_g:
                continue
            scale = scales.get(code) or _NO_SCALE
            if not shut:  # open or unreadable: wait until it is shut, then read afresh
                scales[code] = _evolve(scale, last_g=None, since=None, m=0, total=0.0)
                continue
            if reading is None or reading.quality != "ok":
                continue
            fresh = reading.grams != scale.last_g  # a new sample, not the last one again
            if (
                fresh
                and scale.since is None
                and scale.ref_g is not None
                and code not in before_access
            ):
                # The common case, in one step: a new reading of a settled pocket that opens no
                # look. Exactly drifted, then heard (not a jump), then folded, below.
                grams, unit_g, ref_g = reading.grams, pocket.unit_weight_g, scale.ref_g
                dev = grams - ref_g
                up = max(0.0, scale.up + dev - unit_g / 2)
                down = max(0.0, scale.down - dev - unit_g / 2)
                seen = scale.sigma_seen()
                if not (
                    abs(grams - (ref_g or 0.0)) >= max(0.5 * unit_g, TRIGGER_SIGMAS * seen)
                    or max(up, down) >= CUSUM_SIGMAS * seen
                ):
                    var, k = scale.var, scale.k
                    if scale.last_g is not None:
                        k = min(k + 1, VAR_CAP)
                        var = var + ((grams - scale.last_g) ** 2 / 2 - var) / k
                    n = min(scale.n + 1, REF_CAP)
                    scales[code] = _evolve(
                        scale,
                        up=up,
                        down=down,
                        last_g=grams,
                        var=var,
                        k=k,
                        ref_g=ref_g + (grams - ref_g) / n,
                        n=n,
                    )
                    continue
            trigger = max(0.5 * pocket.unit_weight_g, TRIGGER_SIGMAS * scale.sigma_seen())
            looking = code not in before_access and scale.ref_g is not None and scale.since is None
            if looking and fresh:
                scale = scale.drifted(reading.grams, pocket.unit_weight_g)
            jump = looking and (
                abs(reading.grams - (scale.ref_g or 0.0)) >= trigger
                or max(scale.up, scale.down) >= CUSUM_SIGMAS * scale.sigma_seen()
            )
            scale = scale.heard(reading.grams, jump=jump)
            if code in before_access:
                if t - closed_since.get(code, t) < settle_s:
                    scales[code] = scale
                    continue  # settling after its access
                scale = scale.gather(t, reading.grams, first=True)
                scales[code] = scale
                if not scale.ripe(t):
                    continue
                grams_before, n_before, on_record_before, judged = before_access[code]
                on_record_now = recorded.get(code) if recorded is not None else None
                mean = scale.total / scale.m
                if judged and on_record_before is not None and on_record_now is not None:
                    delta = mean - grams_before
                    moved = on_record_now - on_record_before
                    off_g = delta - moved * pocket.unit_weight_g
                    spread = scale.sigma() * math.sqrt(1 / scale.m + 1 / max(n_before, 1))
                    elapsed = t - (scale.since or t)
                    # a level before from few readings (the station's first look) is not failed
                    # closed on: after JUDGE_MAX_S undecided, the pocket is taken as it weighs
                    young = n_before < MATURE_N
                    verdict = _judge(off_g, pocket.unit_weight_g, spread, 0.0 if young else elapsed)
                    if verdict is None and not (young and elapsed >= JUDGE_MAX_S):
                        continue  # not yet told apart from the scale's noise: gather more
                    if verdict:
                        weighed = moved + (round(off_g / pocket.unit_weight_g) or _sign(off_g))
                        findings.append(
                            Finding(
                                UNRECORDED,
                                f"pocket {code} still differs after its access closed and "
                                f"settled: its scale moved {weighed:+d} (Δ {delta:+.1f} g over "
                                f"{scale.m} readings), the record {moved:+d} "
                                f"({on_record_before} → {on_record_now} on hand): "
                                "blind recount required",
                                drawer=pocket.drawer,
                                pocket=code,
                                point=pocket.sensor,
                                recount=FLAG_KIND,
                            )
                        )
                before_access.pop(code)
                closed_since.pop(code, None)
                scales[code] = scale.settled_at(mean, scale.m)
                continue
            if scale.ref_g is None:  # a first level, judged as young (its n) until more come
                scales[code] = scale.settled_at(reading.grams, 1)
                continue
            if scale.since is None:
                if jump:  # pending from now, on the readings after this one
                    scale = _evolve(scale.gather(t, reading.grams, first=False), up=0.0, down=0.0)
                elif fresh:
                    scale = scale.folded(reading.grams)
                scales[code] = scale
                continue
            scale = scale.gather(t, reading.grams, first=False)
            scales[code] = scale
            if not scale.ripe(t):
                continue
            mean = scale.total / scale.m
            delta = mean - scale.ref_g
            spread = scale.sigma() * math.sqrt(1 / scale.m + 1 / max(scale.n, 1))
            elapsed = t - (scale.since or t)
            if (
                elapsed >= JUDGE_MAX_S
                and scale.n < MATURE_N
                and _judge(delta, pocket.unit_weight_g, spread, 0.0) is None
            ):
                # the level was a few readings (the station's first look) and nothing could be
                # told against it in all this time: the window's mean is the level now
                scales[code] = scale.settled_at(mean, scale.m)
                continue
            verdict = _judge(delta, pocket.unit_weight_g, spread, elapsed)
            if verdict is None:
                continue
            if not verdict:  # noise: the window's readings join the reference
                n = min(scale.n + scale.m, REF_CAP)
                ref = scale.ref_g + (scale.total - scale.m * scale.ref_g) / (scale.n + scale.m)
                scales[code] = scale.settled_at(ref, n)
                continue
            units = round(delta / pocket.unit_weight_g) or _sign(delta)
            scales[code] = scale.settled_at(mean, scale.m)
            moved = f"{-units} taken" if units < 0 else f"{units} added"
            findings.append(
                Finding(
                    UNRECORDED,
                    f"pocket {code}'s scale changed by {delta:+.1f} g (about {moved}; the mean "
                    f"of {scale.m} readings over {t - (scale.since or t):.0f} s) with no "
                    "access open for it: blind recount required",
                    drawer=pocket.drawer,
                    pocket=code,
                    point=pocket.sensor,
                    recount=FLAG_KIND,
                )
            )
    # ---- cold chain: out of range for longer than the allowed excursion
    too_warm = dict(state.too_warm_since)
    cold_alarmed = set(state.cold_alarmed)
    if weights:
        for code, pocket in layout._cold:
            reading_c = snap.temperatures.get(pocket.temperature)
            if reading_c is None or reading_c.quality.value != "ok":
                continue  # unreadable: the device's own alarm says so
            low, high = pocket.range_c
            if low <= reading_c.celsius <= high:
                too_warm.pop(code, None)
                cold_alarmed.discard(code)
                continue
            since = too_warm.setdefault(code, t)
            if code in cold_alarmed or t - since < pocket.excursion_s:
                continue
            cold_alarmed.add(code)
            findings.append(
                Finding(
                    COLD_CHAIN,
                    f"pocket {code} at {reading_c.celsius:.1f} °C, outside {low:g}–{high:g} °C "
                    f"for {(t - since) / 60:.0f} min (allowed {pocket.excursion_s / 60:g} min): "
                    "stock quarantined until a pharmacist releases or pulls it",
                    drawer=pocket.drawer,
                    pocket=code,
                    point=pocket.temperature,
                    quarantine=True,
                )
            )
    new = _evolve(
        state,
        started=True,
        open_since=open_since,
        left_open_alarmed=frozenset(left_alarmed),
        scales=scales,
        fault_since=fault_since,
        fault_alarmed=frozenset(fault_alarmed),
        offline=offline_now,
        bad_counts=bad_counts,
        bus_alarmed=frozenset(bus_alarmed),
        power_out=power_out,
        open_at_outage=open_at_outage,
        before_access=before_access,
        closed_since=closed_since,
        too_warm_since=too_warm,
        cold_alarmed=frozenset(cold_alarmed),
    )
    return new, findings


def gathering(
    state: WatchState, snap: Snapshot, accesses: Iterable[OpenAccess], layout: Layout
) -> bool:
    """Whether `evaluate` on this same snapshot and accesses, at any later time with the slow
    readings looked at, gives a state other than `state` (the one it gave for this snapshot):
    True when a shut, unaccessed weighed pocket whose scale reads "ok" has a window open
    (a change being confirmed, or a pocket judged after its access): the later look takes one
    more reading into the window (`Scale.gather`; its count grows, or the window closes with
    a verdict). Cheap, so a caller planning its next poll need not run the rules to know it."""
    scales = state.scales
    if not scales:
        return False
    accesses = list(accesses)
    by_pocket = {a.pocket for a in accesses if a.pocket}
    drawer_wide = {a.drawer for a in accesses if a.pocket is None}
    inputs, weights = snap.inputs, snap.weights
    for code, pocket, switches in layout._weighed:
        scale = scales.get(code)
        if scale is None or scale.since is None or not pocket.unit_weight_g:
            continue
        if code in by_pocket or pocket.drawer in drawer_wide:
            continue
        if not all(inputs.get(switch) for switch in switches):
            continue
        reading = weights.get(pocket.sensor)  # type: ignore[arg-type]
        if reading is not None and reading.quality == "ok":
            return True
    return False


def fast_quiet(
    state: WatchState, snap: Snapshot, accesses: Iterable[OpenAccess], layout: Layout
) -> bool:
    """Whether `evaluate` on this same snapshot and accesses, with the slow readings left out,
    gives `state` (the one it gave for this snapshot) and no finding at any later time. Then
    only time could make the fast rules fire, and what time drives among them is a door open
    with no access and not yet alarmed (left open) and a bus alarm to clear (the next look sees
    no new errors). The rest of the fast rules gives the same answer on the same readings
    (devices offline, power, new openings, the pockets an access covers). Cheap: a caller
    planning its next poll need not run the rules to know that no fast tick differs."""
    if state.bus_alarmed or not state.started:
        return False
    open_since = state.open_since
    if not open_since:
        return True
    inputs = snap.inputs
    left_alarmed = state.left_open_alarmed
    accesses = list(accesses)
    by_drawer = {a.drawer for a in accesses}
    by_pocket = {a.pocket for a in accesses if a.pocket}
    drawer_wide = {a.drawer for a in accesses if a.pocket is None}
    for switch, drawer, pocket in layout._doors:
        if inputs.get(switch) is not False or switch in left_alarmed:
            continue  # shut or unreadable (nothing timed), or alarmed already
        covered = (
            drawer in by_drawer
            if pocket is None
            else (pocket in by_pocket or drawer in drawer_wide)
        )
        if not covered:
            return False  # its left-open alarm comes with time
    return True


def slow_quiet(
    state: WatchState, snap: Snapshot, accesses: Iterable[OpenAccess], layout: Layout
) -> bool:
    """`fast_quiet`, and the same with the slow readings looked at: no scale's window open or
    about to open (a settled level the reading does not jump from), no pocket waiting to be
    judged after its access, no scale fault or temperature excursion being timed. Then no later
    tick differs at all on this snapshot: the caller sleeps until a reading changes. Each
    condition mirrors a branch of `evaluate` on a reading it has seen once already."""
    if not fast_quiet(state, snap, accesses, layout):
        return False
    accesses = list(accesses)
    by_pocket = {a.pocket for a in accesses if a.pocket}
    drawer_wide = {a.drawer for a in accesses if a.pocket is None}
    inputs, weights = snap.inputs, snap.weights
    scales, before_access = state.scales, state.before_access
    fault_alarmed = state.fault_alarmed
    for code, pocket, switches in layout._weighed:
        if code in by_pocket or pocket.drawer in drawer_wide:
            continue  # covered: judged once it closes, which is a change of readings
        if not all(inputs.get(switch) for switch in switches):
            continue  # open or unreadable: read afresh once shut (a change of readings)
        reading = weights.get(pocket.sensor)  # type: ignore[arg-type]
        if reading is None:
            continue
        if reading.quality != "ok":
            if code not in fault_alarmed:
                return False  # a scale fault being timed
            continue
        if not pocket.unit_weight_g:
            continue
        scale = scales.get(code)
        if scale is None or scale.ref_g is None or scale.since is not None:
            return False  # a first level to take, or a window gathering
        if code in before_access or reading.grams != scale.last_g:
            return False  # judged after its access once settled; or a reading not heard
        seen = scale.sigma_seen()
        trigger = max(0.5 * pocket.unit_weight_g, TRIGGER_SIGMAS * seen)
        if (
            abs(reading.grams - scale.ref_g) >= trigger
            or max(scale.up, scale.down) >= CUSUM_SIGMAS * seen
        ):
            return False  # the look at a change opens at the next slow tick
    cold_alarmed = state.cold_alarmed
    for code, pocket in layout._cold:
        reading_c = snap.temperatures.get(pocket.temperature)
        if reading_c is None or reading_c.quality.value != "ok":
            continue
        low, high = pocket.range_c
        if not low <= reading_c.celsius <= high and code not in cold_alarmed:
            return False  # an excursion being timed
    return True


# ---------------------------------------------------------------------------------- records
def current_accesses(ctl: Controller, cabinet: str) -> list[OpenAccess]:
    rows = open_accesses(ctl, cabinet)
    with ctl.read() as session:
        names = {
            u.id: u.username
            for u in session.execute(
                select(User).where(User.id.in_([r.user_id for r in rows if r.user_id]))  # type: ignore[union-attr]
            ).scalars()
        }
    return [
        OpenAccess(r.id or 0, r.drawer_code, r.pocket_code, names.get(r.user_id or -1), r.purpose)
        for r in rows
    ]


def recorded_on_hand(ctl: Controller, cabinet: str) -> dict[str, int]:
    """Every weighed pocket's on-hand on record (what `evaluate` compares a scale with)."""
    with ctl.read() as session:
        return dict(
            session.execute(  # type: ignore[arg-type]
                select(Pocket.code, Pocket.on_hand).where(
                    Pocket.cabinet_id == cabinet, Pocket.sensor_kind == "weight"
                )
            ).all()
        )


def record(ctl: Controller, cabinet: str, findings: Iterable[Finding]) -> list[Alarm]:
    """Each finding as an audited alarm, its recount as a failure of the drawer, its quarantine
    placed; pharmacists notified of each recount and quarantine."""
    from adc.controller import notifications, quarantine

    out: list[Alarm] = []
    for f in findings:
        alarm = raise_alarm(
            ctl,
            cabinet,
            f.kind,
            f.detail,
            drawer=f.drawer,
            pocket=f.pocket,
            device=f.device,
            point=f.point,
        )
        out.append(alarm)
        if f.quarantine and f.pocket:
            quarantine.place(ctl, cabinet, f.pocket, f.detail, alarm_event=alarm.event_id)
        if f.recount and f.drawer:
            flag = raise_alarm(ctl, cabinet, f.recount, f.detail, drawer=f.drawer, pocket=f.pocket)
            out.append(flag)
            with ctl.write(None, None, cabinet=cabinet) as tx:
                notifications.notify(
                    tx,
                    cabinet,
                    notifications.RECOUNT,
                    f"recount:{flag.event_id}",
                    f"drawer {f.drawer} out of service until a blind recount "
                    f"(adc diag recover --drawer {f.drawer}): {f.detail}",
                    drawer=f.drawer,
                    pocket=f.pocket,
                )
    return out


# ------------------------------------------------------------------------ client unlocks
def owner_of_pid(pid: int) -> str:
    """A process on this host as the access log names it (`access_log.process_owner`)."""
    return f"{socket.gethostname()}|{_boot_id()}|{pid}|{_start_ticks(pid)}"


def _q_open_with_users() -> ClauseElement:
    """The cabinet's open accesses, newest first, each with its user's name and standing: one
    indexed query (`ix_access_log_open`) for the check an unlock waits on."""
    log = AccessLog.__table__.c  # type: ignore[attr-defined]
    user = User.__table__.c  # type: ignore[attr-defined]
    return (
        select(
            log.id, log.drawer_code, log.pocket_code, log.owner, user.username, user.active,
            user.locked,
        )
        .join_from(AccessLog.__table__, User.__table__, user.id == log.user_id)  # type: ignore[arg-type]
        .where(log.cabinet_id == bindparam("cabinet"), log.closed_at.is_(None))
        .order_by(log.id.desc())
    )  # fmt: skip


def authorize_unlock(
    ctl: Controller, cabinet: str, layout: Layout, locks: Iterable[str], *, peer: str | None
) -> OpenAccess:
    """The access a client's unlock is for, or Refused (fail closed): one access open on record
    covering every lock asked for, of an active user who is not locked out, opened by the
    process asking (`peer`, its access-log owner; None: not known, as over TCP, where the row's
    process must at least be alive on this host). Read in one query on the raw cursor
    (`store.py`): the unlock waits on it."""
    wanted = set(locks)
    if not wanted:
        raise Refused("the station unlocks nothing without a lock named")
    with ctl.read_fast() as store:
        found = store.rows(_q_open_with_users, cabinet=cabinet)
    for access_id, drawer, pocket, owner, username, active, locked in found:
        if drawer not in layout.drawers:
            continue
        if not wanted <= layout.locks_of(drawer, pocket):
            continue
        if peer is not None and owner != peer:
            continue
        if peer is None and owner_gone(owner):
            continue
        if not active or locked:
            continue
        return OpenAccess(access_id, drawer, pocket, username)
    raise Refused(
        f"the station refuses to unlock {', '.join(sorted(wanted))}: no access open on record "
        "for it by an authenticated user of the process asking (open it through a restock, a "
        "count or a withdrawal)"
    )


# ------------------------------------------------------------------------ station records
@dataclass(frozen=True)
class StationRecord:
    event_id: int
    owner: str
    listen: str | None
    started_at: datetime
    stopped: bool


def last_station(ctl: Controller, cabinet: str) -> StationRecord | None:
    """The latest station start on record for the cabinet, and whether it stopped cleanly."""
    with ctl.read() as session:
        return _last_station(session, cabinet)


def _last_station(session: Session, cabinet: str) -> StationRecord | None:
    events = list(
        session.execute(
            select(MaintenanceEvent)
            .where(
                MaintenanceEvent.cabinet_id == cabinet,
                MaintenanceEvent.kind.in_(STATION_KINDS),  # type: ignore[attr-defined]
            )
            .order_by(MaintenanceEvent.id.desc())  # type: ignore[union-attr]
            .limit(2)
        ).scalars()
    )
    if not events:
        return None
    latest = events[0]
    start = next((e for e in events if e.kind == STATION_STARTED), None)
    if start is None:
        return None
    info = json.loads(start.detail or "{}")
    return StationRecord(
        start.id or 0,
        info.get("owner", ""),
        info.get("listen"),
        start.at,
        stopped=latest.kind == STATION_STOPPED,
    )


def holder(ctl: Controller, cabinet: str) -> StationRecord | None:
    """The station that holds the cabinet now, if any: started, not stopped, its process alive
    (on another host: not known, taken as alive)."""
    with ctl.read() as session:
        return _holder(session, cabinet)


def _holder(session: Session, cabinet: str) -> StationRecord | None:
    last = _last_station(session, cabinet)
    if last is None or last.stopped or owner_gone(last.owner):
        return None
    return last


def _station_event(tx: object, cabinet: str, kind: str, payload: dict[str, object]) -> int:
    event = MaintenanceEvent(
        cabinet_id=cabinet,
        kind=kind,
        detail=json.dumps(payload, sort_keys=True, default=str),
        at=tx.now,  # type: ignore[attr-defined]
    )
    tx.session.add(event)  # type: ignore[attr-defined]
    tx.session.flush()  # type: ignore[attr-defined]
    tx.audit(f"station.{kind.removeprefix('station-')}", {**payload, "id": event.id})  # type: ignore[attr-defined]
    return event.id or 0


@dataclass
class Started:
    event_id: int
    crashed: StationRecord | None  # the previous station, where it ended without stopping
    flagged: list[Alarm]


def station_started(
    ctl: Controller, cabinet: str, *, listen: str | None, backend: str, take_over: bool = False
) -> Started:
    """Take the cabinet on record (Refused while another station holds it). Where the previous
    station ended without a stop (killed, crashed, power lost), every access still open was
    unwatched since: each is closed as interrupted and its drawer flagged for a blind recount."""
    owner = process_owner()
    with ctl.write(None, None, cabinet=cabinet) as tx:
        get_cabinet(tx.session, cabinet)
        current = _holder(tx.session, cabinet)
        if current is not None and current.owner != owner and not take_over:
            host = current.owner.split("|")[0]
            pid = current.owner.split("|")[2] if current.owner.count("|") >= 2 else "?"
            raise Refused(
                f"cabinet {cabinet} is held by another station (pid {pid} on {host}, since "
                f"{current.started_at:%Y-%m-%d %H:%M:%S} UTC"
                + (f", listening on {current.listen}" if current.listen else "")
                + ")"
            )
        previous = _last_station(tx.session, cabinet)
        crashed = previous if previous is not None and not previous.stopped else None
        event_id = _station_event(
            tx,
            cabinet,
            STATION_STARTED,
            {
                "cabinet": cabinet,
                "owner": owner,
                "listen": listen,
                "backend": backend,
                "previous_ended_uncleanly": crashed.event_id if crashed else None,
                "take_over": take_over,
            },
        )
    flagged: list[Alarm] = []
    if crashed is not None:
        for row in open_accesses(ctl, cabinet):  # all unwatched since the crash
            alarm = _interrupt(ctl, cabinet, row, crashed)
            if alarm is not None:
                flagged.append(alarm)
    return Started(event_id, crashed, flagged)


def _interrupt(
    ctl: Controller, cabinet: str, row: AccessLog, crashed: StationRecord
) -> Alarm | None:
    with ctl.write(None, None, cabinet=cabinet) as tx:
        fresh = tx.session.get(AccessLog, row.id)
        if fresh is None or fresh.closed_at is not None:
            return None
        user = tx.session.get(User, row.user_id) if row.user_id else None
        who = user.username if user else "unknown user"
        where = f"pocket {row.pocket_code}" if row.pocket_code else f"drawer {row.drawer_code}"
        detail = (
            f"access interrupted: {row.purpose} of {where} by {who} opened "
            f"{row.opened_at:%Y-%m-%d %H:%M:%S} UTC was open when the station watching the "
            f"cabinet stopped (killed, crashed or power lost): contents unknown, blind recount "
            "required"
        )
        event_id, _ = maintenance.record_interrupted_access(
            tx, cabinet, fresh, who, detail, cause="station-stopped", station=crashed.event_id
        )
    return Alarm(FLAG_KIND, detail, row.drawer_code, row.pocket_code, event_id=event_id)


def station_stopped(ctl: Controller, cabinet: str, started: int, reason: str) -> int:
    with ctl.write(None, None, cabinet=cabinet) as tx:
        return _station_event(
            tx,
            cabinet,
            STATION_STOPPED,
            {"cabinet": cabinet, "owner": process_owner(), "started": started, "reason": reason},
        )


def alarm_history(
    ctl: Controller, cabinet: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[MaintenanceEvent]:
    """The cabinet's alarms and failures (newest last), from `since`, before `until`."""
    kinds = [*ALARM_KINDS, *maintenance.FAILURE_KINDS, "alarm-left-open", "alarm-sensor"]
    query = select(MaintenanceEvent).where(
        MaintenanceEvent.cabinet_id == cabinet,
        MaintenanceEvent.kind.in_(kinds),  # type: ignore[attr-defined]
    )
    if since is not None:
        query = query.where(MaintenanceEvent.at >= since)
    if until is not None:
        query = query.where(MaintenanceEvent.at < until)
    with ctl.read() as session:
        return list(session.execute(query.order_by(MaintenanceEvent.id)).scalars())
