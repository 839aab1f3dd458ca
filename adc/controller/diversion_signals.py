"""Diversion signals: per user and period, what their controlled-substance records look like.

Why: diversion shows as patterns in the records a cabinet already keeps (more removals than peers,
more waste, late or always-the-same-witness waste, discrepancies found after their accesses,
drawers opened for nothing, removals just before going home). Each signal here is a number per
user, computed from the database only (transactions, access log, discrepancies, the station's
alarms), with the records behind it as evidence; `diversion.py` compares users with their peers.

Only controlled items (a DEA schedule) count. Where a signal has no denominator for a user (no
wastes, no counts) it is None: the peer comparison treats it as typical, not as zero.

What the database does not record, so no signal here pretends to: the shift roster (shifts are the
site's shift windows, `diversion-shift-changes`, in which the user did anything), patient orders
and administrations (no removal-without-administration signal), and who stood at a matrix drawer
besides the person whose access opened it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, type_coerce
from sqlalchemy.types import NullType

from adc.controller.cabinet_scope import Cabinets, scoped
from adc.controller.diversion_settings import SIGNALS, parse_shift_changes
from adc.controller.models import (
    AccessLog,
    Discrepancy,
    Drawer,
    Item,
    MaintenanceEvent,
    Pocket,
    Transaction,
    TxnKind,
    User,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from adc.controller.context import Controller

UNAUTHORIZED = "alarm-unauthorized-access"  # as adc/controller/supervision.py records them
UNRECORDED = "alarm-unrecorded-change"
NULL_OUTCOMES = frozenset({"open", "closed"})  # opened, nothing recorded
CANCELLED_OUTCOMES = frozenset({"ready", "unlocked", "interrupted", "abandoned"})
END_OF_SHIFT = timedelta(hours=1)
EVIDENCE_CAP = 50  # records kept as evidence of a rate over all removals (the latest)
LOOKBACK = timedelta(days=7)  # how far before the period the last access of a pocket is sought


@dataclass(frozen=True)
class Evidence:
    """One record behind a signal: `kind` txn, access, discrepancy or alarm, and its id."""

    kind: str
    id: int
    at: str
    cabinet: str
    pocket: str
    note: str


@dataclass
class UserSignals:
    user_id: int
    username: str
    role: str
    home: str  # the cabinet of most of the user's controlled-substance activity
    shifts: int
    removals: int
    values: dict[str, float | None] = field(default_factory=dict)
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    # what each value is a share or rate of (shifts, removals, units, counts, ...): one event
    # more moves the value by 1/per, the finest difference the data can show (diversion.py)
    per: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime
    cabinet: Cabinets = None  # every cabinet, one, or a tuple of them (cabinet_scope.py)


class ShiftClock:
    """The site's shift windows: which shift a time falls in, and how long until the next change.

    Local time from the zone's UTC offset, looked up once per UTC hour (offsets change on whole
    hours), so a year of records costs integer arithmetic, not a time-zone conversion each."""

    def __init__(self, changes: str, zone: ZoneInfo) -> None:
        self.changes = parse_shift_changes(changes)
        self.zone = zone
        self._offsets: dict[int, int] = {}

    def _local_minute(self, at: datetime) -> tuple[int, float]:
        """(local day number since the epoch, minute of that local day)."""
        ts = at.timestamp()
        hour = int(ts // 3600)
        offset = self._offsets.get(hour)
        if offset is None:
            delta = at.astimezone(self.zone).utcoffset()
            offset = int(delta.total_seconds()) if delta else 0
            self._offsets[hour] = offset
        local = ts + offset
        day = int(local // 86400)
        return day, (local - day * 86400) / 60

    def shift_of(self, at: datetime) -> tuple[int, int]:
        """(local day the shift began, index of the change that began it)."""
        day, minute = self._local_minute(at)
        index = bisect_right(self.changes, minute) - 1  # last change at or before `minute`
        if index < 0:
            day, index = day - 1, len(self.changes) - 1
        return day, index

    def minutes_to_change(self, at: datetime) -> float:
        _day, minute = self._local_minute(at)
        index = bisect_right(self.changes, minute)
        nxt = self.changes[index] if index < len(self.changes) else self.changes[0] + 24 * 60
        return nxt - minute


@dataclass
class _Txn:
    id: int
    at: datetime
    kind: str
    cabinet: str
    pocket_id: int
    qty: int
    expected: int | None
    counted: int | None
    user_id: int
    witness_id: int | None
    reason: str | None
    related_id: int | None
    audit_seq: int


def compute_signals(
    ctl: Controller,
    period: Period,
    *,
    late_waste_min: int | None = None,
    alarm_window_min: int | None = None,
    shift_changes: str | None = None,
) -> dict[int, UserSignals]:
    """Every signal for every user with controlled-substance activity in the period (by user id).

    Thresholds default to the site's policy (`diversion-*` settings)."""
    policy = ctl.policy
    late = timedelta(minutes=late_waste_min or policy.diversion_late_waste_min)
    window = timedelta(minutes=alarm_window_min or policy.diversion_alarm_window_min)
    shifts = ShiftClock(shift_changes or policy.diversion_shift_changes, policy.zone())
    data = _load(ctl, period)
    return _Computation(data, period, shifts, late, window).run()


@dataclass
class _Data:
    users: dict[int, tuple[str, str]]
    pockets: dict[int, tuple[str, str, str]]  # id → cabinet, code, drawer code
    pocket_ids: dict[tuple[str, str], int]
    cs_drawers: set[tuple[str, str]]
    txns: list[_Txn]  # controlled items, LOOKBACK before the period to its end, by id
    accesses: list[tuple[int, int, str, str, str | None, str, datetime, datetime | None, str]]
    discrepancies: list[tuple[int, str, int, int | None, int, int, datetime, str]]
    alarms: list[tuple[int, str, str | None, str | None, str, datetime]]


def _load(ctl: Controller, period: Period) -> _Data:
    """One consistent read of everything the signals need (controlled items only)."""
    start = period.since - LOOKBACK
    cab = period.cabinet
    with ctl.read() as s:
        conn = s.connection()  # Core rows: no ORM loading per row
        controlled = {
            i
            for (i,) in conn.execute(select(Item.id).where(Item.schedule.is_not(None))).all()  # type: ignore[union-attr]
        }
        users = {
            uid: (name, role)
            for uid, name, role in conn.execute(select(User.id, User.username, User.role)).all()
        }
        drawer_codes = dict(conn.execute(select(Drawer.id, Drawer.code)).all())
        pockets: dict[int, tuple[str, str, str]] = {}
        pocket_ids: dict[tuple[str, str], int] = {}
        cs_pockets: set[int] = set()
        cs_drawers: set[tuple[str, str]] = set()
        for pid, cabinet, code, drawer_id, item_id in conn.execute(
            select(Pocket.id, Pocket.cabinet_id, Pocket.code, Pocket.drawer_id, Pocket.item_id)
        ).all():
            pockets[pid] = (cabinet, code, drawer_codes.get(drawer_id, ""))
            pocket_ids[(cabinet, code)] = pid
            if item_id in controlled:
                cs_pockets.add(pid)
                cs_drawers.add((cabinet, drawer_codes.get(drawer_id, "")))
        q = select(
            Transaction.id,
            _raw(Transaction.at),
            Transaction.kind,
            Transaction.cabinet_id,
            Transaction.pocket_id,
            Transaction.qty,
            Transaction.expected,
            Transaction.counted,
            Transaction.user_id,
            Transaction.witness_id,
            Transaction.reason,
            Transaction.related_id,
            Transaction.audit_seq,
        ).where(
            Transaction.at >= start,
            Transaction.at < period.until,
            Transaction.item_id.in_(controlled),  # type: ignore[attr-defined]
        )
        q = scoped(q, Transaction.cabinet_id, cab)
        txns = []
        for row in conn.execute(q.order_by(Transaction.id)):
            t = _Txn(*row)
            t.at = _utc(t.at)
            txns.append(t)
        have = {t.id for t in txns}
        missing = {
            t.related_id
            for t in txns
            if t.kind == TxnKind.WASTE and t.related_id and t.related_id not in have
        }
        if missing:  # removals older than the lookback, wasted in the period
            more = conn.execute(
                select(
                    Transaction.id,
                    _raw(Transaction.at),
                    Transaction.kind,
                    Transaction.cabinet_id,
                    Transaction.pocket_id,
                    Transaction.qty,
                    Transaction.expected,
                    Transaction.counted,
                    Transaction.user_id,
                    Transaction.witness_id,
                    Transaction.reason,
                    Transaction.related_id,
                    Transaction.audit_seq,
                ).where(Transaction.id.in_(sorted(missing)))  # type: ignore[union-attr]
            ).all()
            extra = [_Txn(*row) for row in more]
            for t in extra:
                t.at = _utc(t.at)
            txns = sorted([*txns, *extra], key=lambda t: t.id)
        qa = select(
            AccessLog.id,
            AccessLog.user_id,
            AccessLog.cabinet_id,
            AccessLog.drawer_code,
            AccessLog.pocket_code,
            AccessLog.purpose,
            _raw(AccessLog.opened_at),
            _raw(AccessLog.closed_at),
            AccessLog.outcome,
        ).where(AccessLog.opened_at >= start, AccessLog.opened_at < period.until)
        qa = scoped(qa, AccessLog.cabinet_id, cab)
        accesses = [
            (*row[:6], _utc(row[6]), _utc(row[7]), row[8])
            for row in conn.execute(qa.order_by(AccessLog.id))
            if (row[2], row[3]) in cs_drawers
        ]
        qd = select(
            Discrepancy.id,
            Discrepancy.cabinet_id,
            Discrepancy.pocket_id,
            Discrepancy.transaction_id,
            Discrepancy.expected,
            Discrepancy.counted,
            Discrepancy.opened_at,
            Discrepancy.trigger,
        ).where(
            Discrepancy.opened_at >= period.since,
            Discrepancy.opened_at < period.until,
            Discrepancy.item_id.in_(controlled),  # type: ignore[attr-defined]
        )
        qd = scoped(qd, Discrepancy.cabinet_id, cab)
        discrepancies = list(conn.execute(qd.order_by(Discrepancy.id)).all())
        qm = select(
            MaintenanceEvent.id,
            MaintenanceEvent.cabinet_id,
            MaintenanceEvent.drawer_code,
            MaintenanceEvent.pocket_code,
            MaintenanceEvent.kind,
            MaintenanceEvent.at,
        ).where(
            MaintenanceEvent.kind.in_([UNAUTHORIZED, UNRECORDED]),  # type: ignore[attr-defined]
            MaintenanceEvent.at >= period.since,
            MaintenanceEvent.at < period.until,
        )
        qm = scoped(qm, MaintenanceEvent.cabinet_id, cab)
        alarms = list(conn.execute(qm.order_by(MaintenanceEvent.id)).all())
    del cs_pockets
    return _Data(
        users,
        pockets,
        pocket_ids,
        cs_drawers,
        txns,
        accesses,  # type: ignore[arg-type]
        discrepancies,  # type: ignore[arg-type]
        alarms,  # type: ignore[arg-type]
    )


def _raw(column: Any) -> Any:
    """A time column as the driver returns it (`_utc` converts): the ORM's per-row conversion
    costs more than the rest of reading a year of records."""
    return type_coerce(column, NullType())


def _utc(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # SQLite: naive UTC text


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


class _Computation:
    """The signals of one period, from one load (see the module docstring for each signal)."""

    def __init__(
        self, data: _Data, period: Period, shifts: ShiftClock, late: timedelta, window: timedelta
    ) -> None:
        self.d = data
        self.period = period
        self.shifts = shifts
        self.late = late
        self.window = window
        self.by_id = {t.id: t for t in data.txns}

    def _in(self, at: datetime) -> bool:
        return self.period.since <= at < self.period.until

    def _ev(self, kind: str, id_: int, at: datetime, pocket_id: int | None, note: str) -> Evidence:
        cabinet, code, _ = self.d.pockets.get(pocket_id or 0, ("", "", ""))
        return Evidence(kind, id_, _iso(at), cabinet, code, note)

    def run(self) -> dict[int, UserSignals]:
        d = self.d
        txns = [t for t in d.txns if self._in(t.at)]
        accesses = [a for a in d.accesses if self._in(a[6])]
        shift_keys: dict[int, set[tuple[str, int]]] = defaultdict(set)
        home: dict[int, Counter[str]] = defaultdict(Counter)
        for t in txns:
            shift_keys[t.user_id].add(self.shifts.shift_of(t.at))
            home[t.user_id][t.cabinet] += 1
        for a in accesses:
            if a[1] is not None:
                shift_keys[a[1]].add(self.shifts.shift_of(a[6]))
                home[a[1]][a[2]] += 1
        # removals: one per audit entry and pocket (a removal across lots is several rows)
        removals: dict[int, dict[tuple[int, int], list[_Txn]]] = defaultdict(dict)
        for t in txns:
            if t.kind == TxnKind.REMOVE:
                removals[t.user_id].setdefault((t.audit_seq, t.pocket_id), []).append(t)
        active = set(removals) | {a[1] for a in accesses if a[1] is not None}
        out: dict[int, UserSignals] = {}
        for uid in sorted(active):
            name, role = d.users.get(uid, (str(uid), "?"))
            out[uid] = UserSignals(
                uid,
                name,
                role,
                home[uid].most_common(1)[0][0] if home[uid] else "",
                len(shift_keys[uid]),
                len(removals.get(uid, {})),
                {s: None for s in SIGNALS},
                {s: [] for s in SIGNALS},
            )
        self._removal_signals(out, removals)
        self._waste_signals(out, txns, removals)
        self._access_signals(out, accesses)
        self._count_signals(out, txns)
        self._discrepancy_signal(out)
        self._alarm_signal(out)
        return out

    def _removal_signals(
        self, out: dict[int, UserSignals], removals: dict[int, dict[tuple[int, int], list[_Txn]]]
    ) -> None:
        for uid, user in out.items():
            mine = removals.get(uid, {})
            user.values["removals_per_shift"] = len(mine) / user.shifts if user.shifts else None
            user.per["removals_per_shift"] = user.shifts
            ends: list[tuple[_Txn, float]] = []
            last_hour = END_OF_SHIFT.total_seconds() / 60
            for rows in mine.values():
                left = self.shifts.minutes_to_change(rows[0].at)
                if left <= last_hour:
                    ends.append((rows[0], left))
            user.values["end_of_shift_removals"] = len(ends) / len(mine) if mine else None
            user.per["end_of_shift_removals"] = len(mine)
            # the evidence of a rate is its latest records (EVIDENCE_CAP), not every removal
            user.evidence["removals_per_shift"] = [
                self._ev(
                    "txn", r[0].id, r[0].at, r[0].pocket_id, f"removed {-sum(x.qty for x in r)}"
                )
                for r in list(mine.values())[-EVIDENCE_CAP:]
            ]
            user.evidence["end_of_shift_removals"] = [
                self._ev("txn", t.id, t.at, t.pocket_id, f"{left:.0f} min before shift change")
                for t, left in ends[-EVIDENCE_CAP:]
            ]

    def _waste_signals(
        self,
        out: dict[int, UserSignals],
        txns: list[_Txn],
        removals: dict[int, dict[tuple[int, int], list[_Txn]]],
    ) -> None:
        removed_units = {
            uid: -sum(r.qty for rows in mine.values() for r in rows)
            for uid, mine in removals.items()
        }
        wasted: Counter[int] = Counter()
        late: dict[int, list[Evidence]] = defaultdict(list)
        witnesses: dict[int, Counter[int]] = defaultdict(Counter)
        returned: Counter[int] = Counter()
        for t in txns:
            if t.user_id not in out:
                continue
            user = out[t.user_id]
            if t.kind == TxnKind.WASTE:
                units = t.counted or 0
                wasted[t.user_id] += units
                user.evidence["waste_share"].append(
                    self._ev("txn", t.id, t.at, t.pocket_id, f"wasted {units}: {t.reason or ''}")
                )
                if t.witness_id is not None:
                    witnesses[t.user_id][t.witness_id] += 1
                source = self.by_id.get(t.related_id or 0)
                if t.qty == 0 and source is not None:
                    delay = t.at - source.at
                    if delay >= self.late:
                        late[t.user_id].append(
                            self._ev(
                                "txn",
                                t.id,
                                t.at,
                                t.pocket_id,
                                f"wasted {delay.total_seconds() / 60:.0f} min after removal "
                                f"{source.id}",
                            )
                        )
            elif t.kind == TxnKind.RETURN and t.qty > 0:
                returned[t.user_id] += t.qty
                user.evidence["returns"].append(
                    self._ev(
                        "txn",
                        t.id,
                        t.at,
                        t.pocket_id,
                        f"returned {t.qty} of removal {t.related_id}",
                    )
                )
        for uid, user in out.items():
            units = removed_units.get(uid, 0)
            user.values["waste_share"] = wasted[uid] / units if units else None
            user.values["wasted_units_per_shift"] = (
                wasted[uid] / user.shifts if user.shifts else None
            )
            user.evidence["wasted_units_per_shift"] = list(user.evidence["waste_share"])
            user.values["late_wastes"] = len(late[uid]) / user.removals if user.removals else None
            user.evidence["late_wastes"] = late[uid]
            user.values["returns"] = returned[uid] / units if units else None
            user.per.update(
                waste_share=units,
                returns=units,
                wasted_units_per_shift=user.shifts,
                late_wastes=user.removals,
            )
            seen = witnesses[uid]
            total = sum(seen.values())
            if total >= 3:
                top, n = seen.most_common(1)[0]
                user.values["witness_concentration"] = n / total
                user.per["witness_concentration"] = total
                name = self.d.users.get(top, (str(top), ""))[0]
                user.evidence["witness_concentration"] = [
                    replace(e, note=f"{e.note} (witness {name})")
                    for e in user.evidence["waste_share"]
                    if self._witness_of(e.id) == top
                ]

    def _witness_of(self, txn_id: int) -> int | None:
        t = self.by_id.get(txn_id)
        return t.witness_id if t else None

    def _access_signals(self, out: dict[int, UserSignals], accesses: list) -> None:  # type: ignore[type-arg]
        total: Counter[int] = Counter()
        for aid, uid, cabinet, drawer, pocket, purpose, opened, _closed, outcome in accesses:
            if uid not in out or purpose != "withdrawal":
                continue
            pid = self.d.pocket_ids.get((cabinet, pocket or ""))
            total[uid] += 1
            if outcome in NULL_OUTCOMES:
                out[uid].evidence["null_accesses"].append(
                    self._ev(
                        "access", aid, opened, pid, f"drawer {drawer} {outcome}, nothing recorded"
                    )
                )
            elif outcome in CANCELLED_OUTCOMES:
                out[uid].evidence["cancelled_accesses"].append(
                    self._ev("access", aid, opened, pid, f"access ended {outcome}")
                )
        for uid, user in out.items():
            n = total[uid]
            user.per.update(null_accesses=n, cancelled_accesses=n)
            user.values["null_accesses"] = len(user.evidence["null_accesses"]) / n if n else None
            user.values["cancelled_accesses"] = (
                len(user.evidence["cancelled_accesses"]) / n if n else None
            )

    def _count_signals(self, out: dict[int, UserSignals], txns: list[_Txn]) -> None:
        counted: Counter[int] = Counter()
        for t in txns:
            if t.kind != TxnKind.COUNT or t.user_id not in out or t.expected is None:
                continue
            counted[t.user_id] += 1
            if t.counted is not None and t.counted != t.expected:
                out[t.user_id].evidence["count_differences"].append(
                    self._ev(
                        "txn", t.id, t.at, t.pocket_id, f"counted {t.counted}, record {t.expected}"
                    )
                )
        for uid, user in out.items():
            n = counted[uid]
            user.per["count_differences"] = n
            user.values["count_differences"] = (
                len(user.evidence["count_differences"]) / n if n else None
            )

    def _touches(self, pockets: set[int]) -> dict[int, list[tuple[datetime, int, int]]]:
        """Per pocket, who handled it when: (time, transaction id or 0, user) sorted. Movements
        (not counts, not records that move nothing) and closed accesses."""
        touches: dict[int, list[tuple[datetime, int, int]]] = defaultdict(list)
        for t in self.d.txns:
            if t.pocket_id not in pockets or t.kind == TxnKind.COUNT or t.qty == 0:
                continue
            touches[t.pocket_id].append((t.at, t.id, t.user_id))
        for _aid, uid, cabinet, _drawer, pocket, _p, _opened, closed, _o in self.d.accesses:
            pid = self.d.pocket_ids.get((cabinet, pocket or ""))
            if pid in pockets and closed is not None and uid is not None:
                touches[pid].append((closed, 0, uid))
        for rows in touches.values():
            rows.sort()
        return touches

    def last_handler(self, pocket_id: int, txn: _Txn) -> tuple[int, datetime] | None:
        """Who handled `pocket_id` last before the count `txn` found a difference: their movement
        (a removal just before a count-back: themselves) or their access closed before it."""
        best: tuple[datetime, int, int] | None = None
        for touch in self._touch_index.get(pocket_id, []):
            at, tid, _uid = touch
            if tid:
                if tid >= txn.id or self.by_id[tid].audit_seq == txn.audit_seq:
                    continue
            elif at >= txn.at:
                continue
            if best is None or (at, tid) >= (best[0], best[1]):
                best = touch
        return (best[2], best[0]) if best else None

    def _discrepancy_signal(self, out: dict[int, UserSignals]) -> None:
        self._touch_index = self._touches({row[2] for row in self.d.discrepancies})
        for (
            did,
            _cab,
            pocket_id,
            txn_id,
            expected,
            counted,
            opened,
            trigger,
        ) in self.d.discrepancies:
            txn = self.by_id.get(txn_id or 0)
            if txn is None:
                continue
            found = self.last_handler(pocket_id, txn)
            if found is None or found[0] not in out:
                continue
            out[found[0]].evidence["discrepancies_after_access"].append(
                self._ev(
                    "discrepancy",
                    did,
                    opened,
                    pocket_id,
                    f"{trigger}: record {expected}, counted {counted}; "
                    f"last handled by this user at {_iso(found[1])}",
                )
            )
        for user in out.values():
            n = len(user.evidence["discrepancies_after_access"])
            user.values["discrepancies_after_access"] = n / user.shifts if user.shifts else None
            user.per["discrepancies_after_access"] = user.shifts

    def _alarm_signal(self, out: dict[int, UserSignals]) -> None:
        by_drawer: dict[tuple[str, str], list[tuple[datetime, int, int]]] = defaultdict(list)
        for aid, uid, cabinet, drawer, _pocket, _p, _opened, closed, _o in self.d.accesses:
            if closed is not None and uid is not None:
                by_drawer[(cabinet, drawer)].append((closed, aid, uid))
        for rows in by_drawer.values():
            rows.sort()
        for mid, cabinet, drawer, pocket, kind, at in self.d.alarms:
            if (cabinet, drawer or "") not in self.d.cs_drawers:
                continue
            before = [r for r in by_drawer.get((cabinet, drawer or ""), []) if r[0] <= at]
            if not before or at - before[-1][0] > self.window:
                continue
            closed, aid, uid = before[-1]
            if uid in out:
                gap = (at - closed).total_seconds() / 60
                out[uid].evidence["alarms_near_access"].append(
                    Evidence(
                        "alarm",
                        mid,
                        _iso(at),
                        cabinet,
                        pocket or drawer or "",
                        f"{kind} {gap:.0f} min after this user's access {aid} closed",
                    )
                )
        for user in out.values():
            n = len(user.evidence["alarms_near_access"])
            user.values["alarms_near_access"] = n / user.shifts if user.shifts else None
            user.per["alarms_near_access"] = user.shifts
