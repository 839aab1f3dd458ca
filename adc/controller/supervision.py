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
  at least one unit from its reference while no access is open for that pocket (a matrix
  drawer opened for another pocket does not cover it) → alarm and recount (the diversion signal);
- **left open** (`alarm-door-open`): a door open longer than `LEFT_OPEN_S` with no access open
  for it (an access raises its own `alarm-left-open`);
- **device offline** (`alarm-device-offline`), **bus errors** (`alarm-bus-errors`): as the
  cabinet's watch (`withdrawal.CabinetWatch`) does;
- **power loss** (`alarm-power-loss`): every device offline, then back: every drawer holding
  controlled substances needs a recount, and a drawer that read open when the devices went is
  `power-loss-open`;
- **still differs after the access** (`alarm-unrecorded-change`): once an access (restock,
  withdrawal) of a weighed pocket has closed and the pocket has settled for `SETTLE_S`, the
  units its scale moved since before the access differ from the movement recorded in the
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
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.sql import ClauseElement
from sqlmodel import Session

from adc.controller import maintenance
from adc.controller.access import Alarm, raise_alarm
from adc.controller.access_log import (
    FLAG_KIND,
    INTERRUPTED,
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
)


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
        out: list[tuple[str, str, str | None]] = []
        for drawer in self.drawers.values():
            out.append((drawer.switch, drawer.code, None))
            for code in drawer.pockets:
                pocket = self.pockets[code]
                if pocket.door_switch and pocket.door_switch != drawer.switch:
                    out.append((pocket.door_switch, drawer.code, code))
        return out

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
class WatchState:
    """What the watch remembers between snapshots: only what the hardware said earlier."""

    started: bool = False
    open_since: Mapping[str, float] = field(default_factory=dict)  # switch → seconds it opened
    left_open_alarmed: frozenset[str] = frozenset()
    reference_g: Mapping[str, float] = field(default_factory=dict)  # pocket → settled grams
    offline: frozenset[str] = frozenset()
    bad_counts: Mapping[str, int] = field(default_factory=dict)
    bus_alarmed: frozenset[str] = frozenset()
    power_out: bool = False
    open_at_outage: frozenset[str] = frozenset()  # drawers open when every device went
    # pocket → (settled grams, recorded on-hand) before the access that covers it now, and
    # whether that access moves stock (judged once it has closed and settled)
    before_access: Mapping[str, tuple[float, int | None, bool]] = field(default_factory=dict)
    closed_since: Mapping[str, float] = field(default_factory=dict)  # pocket → access closed
    too_warm_since: Mapping[str, float] = field(default_factory=dict)  # pocket → left range
    cold_alarmed: frozenset[str] = frozenset()


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
    for switch, drawer, pocket in layout.doors():
        reading = snap.inputs.get(switch)
        if reading is None:
            continue  # unreadable: the device's own alarm says so
        if reading:  # closed
            open_since.pop(switch, None)
            left_alarmed.discard(switch)
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
                controlled = (
                    layout.pockets[pocket].controlled
                    if pocket
                    else layout.controlled_drawer(drawer)
                )
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

    # ---- scales: unrecorded change, and a difference that remains after an access
    reference = dict(state.reference_g)
    before_access = dict(state.before_access)
    closed_since = dict(state.closed_since)
    purposes = {a.pocket or a.drawer: a.purpose for a in accesses}
    for code, pocket in layout.pockets.items():
        if not pocket.sensor or not pocket.unit_weight_g:
            continue
        if code in by_pocket or pocket.drawer in drawer_wide:
            closed_since.pop(code, None)
            if code not in before_access and code in reference:
                judged = (purposes.get(code) or purposes.get(pocket.drawer)) in JUDGED_PURPOSES
                on_record = recorded.get(code) if recorded is not None else None
                before_access[code] = (reference[code], on_record, judged)
            reference.pop(code, None)  # re-weighed once its access has closed
        elif code in before_access and code not in closed_since:
            closed_since[code] = t
    if weights:
        for code, pocket in layout.pockets.items():
            if not pocket.sensor or not pocket.unit_weight_g:
                continue
            if code in by_pocket or pocket.drawer in drawer_wide:
                continue
            switches = [layout.drawers[pocket.drawer].switch]
            if pocket.door_switch:
                switches.append(pocket.door_switch)
            if not all(snap.inputs.get(s) for s in switches):
                continue  # open or unreadable: wait until it is shut
            reading = snap.weights.get(pocket.sensor)
            if reading is None or reading.quality.value != "ok":
                continue
            if code in before_access:
                if t - closed_since.get(code, t) < settle_s:
                    continue  # settling after its access
                grams_before, on_record_before, judged = before_access.pop(code)
                closed_since.pop(code, None)
                reference[code] = reading.grams
                on_record_now = recorded.get(code) if recorded is not None else None
                if not judged or on_record_before is None or on_record_now is None:
                    continue
                delta = reading.grams - grams_before
                moved = on_record_now - on_record_before
                off_g = delta - moved * pocket.unit_weight_g  # beyond the scale's noise?
                weighed = moved + round(off_g / pocket.unit_weight_g)
                if weighed != moved and abs(off_g) >= max(0.6 * pocket.unit_weight_g, 1.0):
                    findings.append(
                        Finding(
                            UNRECORDED,
                            f"pocket {code} still differs after its access closed and settled: "
                            f"its scale moved {weighed:+d} (Δ {delta:+.1f} g), the record "
                            f"{moved:+d} ({on_record_before} → {on_record_now} on hand): "
                            "blind recount required",
                            drawer=pocket.drawer,
                            pocket=code,
                            point=pocket.sensor,
                            recount=FLAG_KIND,
                        )
                    )
                continue
            before = reference.get(code)
            reference[code] = reading.grams
            if before is None:
                continue
            delta = reading.grams - before
            units = round(delta / pocket.unit_weight_g)
            if units == 0 or abs(delta) < max(0.6 * pocket.unit_weight_g, 1.0):
                reference[code] = before  # noise: keep the reference
                continue
            moved = f"{-units} taken" if units < 0 else f"{units} added"
            findings.append(
                Finding(
                    UNRECORDED,
                    f"pocket {code}'s scale changed by {delta:+.1f} g (about {moved}) with no "
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
        for code, pocket in layout.pockets.items():
            if pocket.temperature is None or pocket.range_c is None:
                continue
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
    new = replace(
        state,
        started=True,
        open_since=open_since,
        left_open_alarmed=frozenset(left_alarmed),
        reference_g=reference,
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
        event = MaintenanceEvent(
            cabinet_id=cabinet,
            drawer_code=row.drawer_code,
            pocket_code=row.pocket_code,
            kind=FLAG_KIND,
            detail=detail,
            user_id=row.user_id,
            at=tx.now,
        )
        tx.session.add(event)
        tx.session.flush()
        tx.audit(
            "access.interrupted",
            {
                "cabinet": cabinet,
                "drawer": row.drawer_code,
                "pocket": row.pocket_code,
                "access": row.id,
                "purpose": row.purpose,
                "session": row.session,
                "user": who,
                "opened_at": row.opened_at.isoformat(),
                "owner": row.owner,
                "cause": "station-stopped",
                "station": crashed.event_id,
                "maintenance_event": event.id,
                "maintenance_kind": FLAG_KIND,
            },
        )
        fresh.closed_at, fresh.outcome = tx.now, INTERRUPTED
        tx.session.add(fresh)
    return Alarm(FLAG_KIND, detail, row.drawer_code, row.pocket_code, event_id=event.id or 0)


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
