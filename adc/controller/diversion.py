"""Diversion scores: each user's signals against their peers, ranked, with the records behind them.

Why peers: a nurse on an oncology ward removes more opioids than one on a maternity ward, and a
night shift wastes differently from a day shift; what stands out is a user who differs from the
people doing the same work. A peer group is the users of the same role whose controlled-substance
activity in the period was mostly on the same cabinet (`UserSignals.home`); a group smaller than
`MIN_PEERS` is widened to the role across every cabinet in the report.

Each signal is compared with a robust statistic, so one diverter cannot hide by moving the
yardstick: z = (value − median) / (1.4826 · MAD). Where more than half the peers share one value
(MAD = 0: most nurses waste nothing) the scale falls back to 1.2533 · the mean absolute deviation
from the median, and where every peer has the same value the signal says nothing (z = 0). The
scale is never finer than one event of the user's own (1 / what the value is a share or rate of:
1/shifts for a rate per shift, 1/removals for a share of removals): with most peers at zero, the
mean-deviation scale of a sparse signal is tiny and one honest event (one alarm, one late waste)
would read as z = 12; a difference of one event is never more than z = 1.

A signal adds weight × (min(z, `Z_CAP`) − `Z_FLOOR`) to the score where z exceeds `Z_FLOOR`, and
nothing otherwise: only values well above the peers count, and one signal alone cannot make a
score unbounded. The floor matters: with a dozen signals, summing every positive z adds the noise
of all of them (an honest user's expected sum of positive parts of 12 normal z is about 4.8, and
in the diversion-30day scenario honest nurses were flagged at 1-3 per run that way); above 1.5
robust standard deviations the noise adds about 0.03 per signal. Weights: the `diversion-weights`
setting; a score of at least `diversion-flag-score` flags the user for review.

Who may look: pharmacists and admins (`Action.DIVERSION_REVIEW`). Every look is audited, and so is
every refused attempt (a nurse trying to see who is watched is itself worth knowing).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from adc.controller.cabinet_scope import as_recorded
from adc.controller.diversion_settings import SIGNALS, parse_weights
from adc.controller.diversion_signals import Evidence, Period, UserSignals, compute_signals
from adc.controller.models import User
from adc.controller.permissions import Action, allowed
from adc.errors import BadInput, Refused

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller

MIN_PEERS = 5
Z_CAP = 5.0
Z_FLOOR = 1.5  # robust standard deviations above the peers' median before a signal counts
MAD_SCALE = 1.4826  # MAD → standard deviation for normal data
MEAN_AD_SCALE = 1.2533  # mean absolute deviation → standard deviation for normal data
TOP = 3  # signals named per user
EVIDENCE_REFS = 12  # record references in a report row


def peer_stats(peers: list[float]) -> tuple[float, float] | None:
    """The peers' (median, robust scale before `unit`), or None for no peers: what every user of
    a peer group is compared with, computed once a group and signal (a fleet has thousands)."""
    if not peers:
        return None
    mid = median(peers)
    deviations = [abs(v - mid) for v in peers]
    scale = MAD_SCALE * median(deviations)
    if scale == 0:
        scale = MEAN_AD_SCALE * sum(deviations) / len(deviations)
    return mid, scale


def z_against(value: float | None, stats: tuple[float, float] | None, unit: float = 0.0) -> float:
    """`robust_z` from the peers' `peer_stats`."""
    if value is None or stats is None:
        return 0.0
    mid, scale = stats
    scale = max(scale, unit)
    if scale == 0:
        return 0.0
    return (value - mid) / scale


def robust_z(value: float | None, peers: list[float], unit: float = 0.0) -> float:
    """How far above the peers' median `value` lies, in robust standard deviations (see the
    module docstring for MAD = 0 and `unit`). None (no denominator for this user) is typical: 0."""
    return z_against(value, peer_stats(peers), unit)


@dataclass(frozen=True)
class SignalScore:
    signal: str
    value: float | None
    peer_median: float | None
    z: float
    weight: float
    contribution: float
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class UserScore:
    user: str
    role: str
    peer_group: str
    peers: int
    score: float
    flagged: bool
    shifts: int
    removals: int
    signals: list[SignalScore]  # by contribution, largest first

    @property
    def drivers(self) -> list[SignalScore]:
        return [s for s in self.signals if s.contribution > 0][:TOP]


def rank_users(
    ctl: Controller, period: Period, *, weights: dict[str, float] | None = None
) -> list[UserScore]:
    """Every user with controlled-substance activity in the period, highest score first.

    The analytics proper, on the database only; the report (`review`) adds who may look."""
    weights = weights or parse_weights(ctl.policy.diversion_weights)
    flag = ctl.policy.diversion_flag_score
    users = compute_signals(ctl, period)
    groups: dict[tuple[str, str], list[UserSignals]] = defaultdict(list)
    for u in users.values():
        groups[(u.role, u.home)].append(u)
    by_role: dict[str, list[UserSignals]] = defaultdict(list)
    for u in users.values():
        by_role[u.role].append(u)
    scores = []
    stats: dict[tuple[str, str], tuple[float, float] | None] = {}  # (group, signal) → peer_stats
    for u in users.values():
        group = groups[(u.role, u.home)]
        name = f"{u.role}@{u.home}"
        if len(group) < MIN_PEERS:
            group, name = by_role[u.role], f"{u.role}@all"
        signals = []
        for signal in SIGNALS:
            if (name, signal) not in stats:
                peers = [v for p in group if (v := p.values[signal]) is not None]
                stats[(name, signal)] = peer_stats(peers)
            found = stats[(name, signal)]
            per = u.per.get(signal, 0)
            z = z_against(u.values[signal], found, 1 / per if per else 0.0)
            weight = weights.get(signal, 0.0)
            signals.append(
                SignalScore(
                    signal,
                    u.values[signal],
                    found[0] if found else None,
                    z,
                    weight,
                    weight * max(min(z, Z_CAP) - Z_FLOOR, 0.0),
                    u.evidence[signal],
                )
            )
        signals.sort(key=lambda s: (-s.contribution, s.signal))
        total = sum(s.contribution for s in signals)
        scores.append(
            UserScore(
                u.username,
                u.role,
                name,
                len(group),
                total,
                total >= flag,
                u.shifts,
                u.removals,
                signals,
            )
        )
    scores.sort(key=lambda s: (-s.score, s.user))
    return scores


# ----------------------------------------------------------------------------- what people see
@dataclass(frozen=True)
class DiversionRow:
    """One line of `adc report diversion` (its CSV columns, in order)."""

    rank: int
    user: str
    role: str
    peer_group: str
    peers: int
    score: float
    flagged: bool
    shifts: int
    removals: int
    top_signals: str  # "signal (z 4.2)" of the signals that drive the score
    evidence: str  # record references behind them: txn:ID, access:ID, discrepancy:ID, alarm:ID

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(rank: int, s: UserScore) -> DiversionRow:
    refs: list[str] = []
    for signal in s.drivers:
        for e in signal.evidence:
            ref = f"{e.kind}:{e.id}"
            if ref not in refs and len(refs) < EVIDENCE_REFS:
                refs.append(ref)
    return DiversionRow(
        rank,
        s.user,
        s.role,
        s.peer_group,
        s.peers,
        round(s.score, 2),
        s.flagged,
        s.shifts,
        s.removals,
        "; ".join(f"{d.signal} (z {d.z:.1f})" for d in s.drivers),
        " ".join(refs),
    )


def _permit(ctl: Controller, actor: Actor, what: dict[str, Any]) -> None:
    """Refused unless the actor may review diversion; a refusal is audited before it is raised."""
    with ctl.read() as session:
        user = session.get(User, actor.user_id)
        role = user.role if user else ""
        ok = user is not None and user.active and not user.locked
    if ok and allowed(role, Action.DIVERSION_REVIEW):
        return
    with ctl.write(None, None) as tx:
        tx.user = tx.session.get(User, actor.user_id)
        tx.audit("report.diversion.refused", {**what, "role": role})
    raise Refused(
        f"user {actor.username} ({role or 'unknown'}) is not allowed to do "
        f"{Action.DIVERSION_REVIEW.value}: the diversion report is for pharmacists and admins"
    )


def _period_json(period: Period) -> dict[str, Any]:
    return {
        "from": period.since.isoformat(),
        "to": period.until.isoformat(),
        "cabinet": as_recorded(period.cabinet),
    }


def review(ctl: Controller, actor: Actor, period: Period) -> list[DiversionRow]:
    """The ranked report for a pharmacist or an admin; the look is audited."""
    what = {"view": "ranking", **_period_json(period)}
    _permit(ctl, actor, what)
    scores = rank_users(ctl, period)
    rows = [_row(rank, s) for rank, s in enumerate(scores, 1)]
    with ctl.write(actor, Action.DIVERSION_REVIEW) as tx:
        tx.audit(
            "report.diversion",
            {**what, "users": len(rows), "flagged": [r.user for r in rows if r.flagged]},
        )
    return rows


@dataclass(frozen=True)
class UserEvidence:
    """`adc report diversion --user NAME`: one user's score, every signal, the records behind."""

    user: str
    rank: int | None  # None: no controlled-substance activity in the period
    of: int
    score: UserScore | None

    def as_json(self) -> dict[str, Any]:
        if self.score is None:
            return {"user": self.user, "rank": None, "of": self.of, "score": None, "signals": []}
        s = self.score
        return {
            "user": s.user,
            "role": s.role,
            "rank": self.rank,
            "of": self.of,
            "peer_group": s.peer_group,
            "peers": s.peers,
            "score": round(s.score, 2),
            "flagged": s.flagged,
            "shifts": s.shifts,
            "removals": s.removals,
            "signals": [
                {
                    "signal": g.signal,
                    "value": g.value,
                    "peer_median": g.peer_median,
                    "z": round(g.z, 2),
                    "weight": g.weight,
                    "contribution": round(g.contribution, 2),
                    "evidence": [asdict(e) for e in g.evidence],
                }
                for g in s.signals
            ],
        }


def user_evidence(ctl: Controller, actor: Actor, period: Period, username: str) -> UserEvidence:
    """One user's evidence for a pharmacist or an admin (BadInput for an unknown user); audited."""
    what = {"view": "evidence", "subject": username, **_period_json(period)}
    _permit(ctl, actor, what)
    with ctl.read() as session:
        known = session.execute(select(User.id).where(User.username == username)).first()
    if known is None:
        raise BadInput(f"--user {username!r}: no such user")
    scores = rank_users(ctl, period)
    found = next(((i, s) for i, s in enumerate(scores, 1) if s.user == username), None)
    with ctl.write(actor, Action.DIVERSION_REVIEW) as tx:
        tx.audit(
            "report.diversion",
            {**what, "score": round(found[1].score, 2) if found else None},
        )
    if found is None:
        return UserEvidence(username, None, len(scores), None)
    return UserEvidence(username, found[0], len(scores), found[1])
