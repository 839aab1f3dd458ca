"""The station's supervision of a simulated cabinet, on simulated time, at the station's rates.

A real station (`adc.station.service.Station`) polls its cabinet every `fast_s` (switches,
locks; scales and temperatures every `slow_s`) and runs the controller's supervision rules
(`adc.controller.supervision.evaluate`, recorded by `supervision.record`) on each snapshot. A
scenario runs those same rules on the same polling grid — tick k at SimPy second k × fast_s,
scales looked at on every (slow_s / fast_s)-th tick — but does not step through the ticks at
which nothing can differ. Between two ticks, evaluate's result can change only if

- a reading changes: a person or a fault acts on the virtual cabinet (it calls `on_change`), or
  a reading moves by itself (a scale settling, a fridge probe's next analog step:
  `VirtualCabinet.next_change`; load-cell noise around a settled weight is not a change);
- the accesses open on record change: only the controller opens or closes one, and it talks to
  the driver as it does (every controller call on the driver marks the accesses stale);
- time alone makes a rule fire (a door open too long, a temperature out of range too long).

After each real poll the watch asks the pure rules what a later tick would give with the same
snapshot and accesses (`evaluate` writes nothing): the first fast tick and the first slow tick
at which the findings or the watch's state would differ, found by bisection (time-driven rules
only ever go from "not yet" to "now"; while a scale's window is open — a change being
confirmed, a pocket judged after its access — the next slow tick differs by the rule's own
making, which `supervision.gathering` tells without running the rules; and with no door open
unwatched and no bus alarm to clear, no fast tick differs, which `supervision.fast_quiet`
tells, and with no scale or temperature timed or gathering either, no tick differs at all:
`supervision.slow_quiet`). It sleeps until that tick, the next self-driven change, or the first tick at or after
a notified change, whichever is first, and polls there through the driver as the station
would. So every finding is raised at the tick a station polling at the real rate would raise it, with the snapshot it would read, and detection times are those of
the real rate; only the snapshots that could not change anything are not taken.

People never raise alarms: what the rules find is recorded by `supervision.record` (audited
alarms and failures) and only then told to the world (`people.on_alarm`), which is how a
scenario's KPIs learn that an injected fault or a scripted incident was detected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import simpy
from sqlalchemy import bindparam, select

from adc.controller import supervision
from adc.controller.models import AccessLog, Pocket, User
from adc.controller.store import Store
from adc.controller.supervision import WatchState
from adc.drivers.base import DriverError
from adc.scenario.world import Station, World


def polling_rates(profile: Any) -> tuple[float, float]:
    """(fast_s, slow_s): the profile's station rates where it names them, else the station's
    defaults (adc.station.service FAST_S, SLOW_S)."""
    from adc.station.service import FAST_S, SLOW_S

    rates = getattr(profile, "station", None)
    fast = getattr(rates, "fast_s", None) or getattr(rates, "poll_s", None) or FAST_S
    slow = getattr(rates, "slow_s", None) or SLOW_S
    return float(fast), float(slow)


class WatchedDriver:
    """The station's driver as the controller's calls reach it: each call tells the watch that
    the controller acted (an access may have opened or closed on record)."""

    def __init__(self, driver: Any, acted: Callable[[], None]) -> None:
        self._driver = driver
        self._acted = acted

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._driver, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        acted = self._acted

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            finally:
                acted()

        setattr(self, name, call)  # looked up once: the next call finds it directly
        return call


class Supervisor:
    """One cabinet's supervision in a scenario (see the module docstring)."""

    def __init__(
        self,
        world: World,
        station: Station,
        driver: Any,
        *,
        fast_s: float,
        slow_s: float,
        left_open_s: float = supervision.LEFT_OPEN_S,
        on_alarm: Callable[[Any], None] | None = None,
    ) -> None:
        self.world, self.station, self.driver = world, station, driver
        self.env: simpy.Environment = world.env
        self.fast_s = fast_s
        self.slow_every = max(1, round(slow_s / fast_s))
        self.left_open_s = left_open_s
        self.on_alarm = on_alarm
        self.state = WatchState()
        self.layout: supervision.Layout | None = None
        self.accesses: list[supervision.OpenAccess] = []
        self.acted = True
        # Pockets are assigned only by the go-live's loads in a scenario: the layout is read at
        # the start and again when the go-live is done (the station reads it every 5 s).
        self.layout_stale = True
        self.recorded: dict[str, int] | None = None
        self.dirty = True
        self.polls = 0
        self.evaluations = 0
        self._wake: simpy.Event | None = None
        self._snap: Any = None
        self.exhaustive = False  # poll at every tick, as the station does (tests compare)
        station.cabinet.on_change = self.touch

    # ---------------------------------------------------------------------------- changes
    def touch(self) -> None:
        """Something a reading can show changed (the virtual cabinet says so)."""
        self.dirty = True
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()

    def controller_acted(self) -> None:
        """The controller called the driver: accesses on record may have changed."""
        self.acted = True
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()

    # ------------------------------------------------------------------------------ ticks
    def at(self, k: int) -> float:
        """SimPy seconds of tick k. The grid sits half a tick off the whole seconds at which
        scripted events and people's round times fall, so no change ties with a poll (a real
        station's phase is arbitrary too)."""
        return (k + 0.5) * self.fast_s

    def tick_at_or_after(self, t: float) -> int:
        k = math.ceil(t / self.fast_s)
        while k > 0 and self.at(k - 1) >= t:
            k -= 1
        while self.at(k) < t:
            k += 1
        return k

    def tick_after(self, t: float) -> int:
        """The first tick strictly after `t`: a change at `t` is read by the next poll."""
        k = self.tick_at_or_after(t)
        return k + 1 if self.at(k) <= t else k

    def slow(self, k: int) -> bool:
        return k % self.slow_every == 0

    # ------------------------------------------------------------------------------ process
    def run(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        k = self.tick_at_or_after(env.now)
        if self.at(k) > env.now:
            yield env.timeout(self.at(k) - env.now)
        self.read_record()
        while True:
            snap = self.poll(k)
            nxt = self.plan(k) if snap is not None else k + 1
            while True:  # until the tick of the next real poll
                if not (self.dirty or self.acted):
                    self._wake = env.event()
                    if nxt is None:
                        yield self._wake
                    else:
                        yield self._wake | env.timeout(max(self.at(nxt) - env.now, 0.0))
                    self._wake = None
                if not (self.dirty or self.acted):
                    break  # the planned tick
                tick = max(k + 1, self.tick_after(env.now))
                if nxt is not None and nxt <= tick:
                    break  # planned before (or at) the change's tick: poll then
                if self.at(tick) > env.now:
                    yield env.timeout(self.at(tick) - env.now)
                if self.dirty:  # a reading changed: poll at this tick
                    nxt = tick
                    break
                # only the controller acted: look at the record (no snapshot) and poll only if
                # the accesses changed; else plan again with the same readings
                self.acted = False
                before = self.accesses, self.recorded
                self.read_record()
                if self.accesses != before[0]:
                    nxt = tick
                    break
                if self.recorded != before[1]:
                    nxt = self.plan(k)
            if nxt is None:
                continue
            if self.at(nxt) > env.now:
                yield env.timeout(self.at(nxt) - env.now)
            k = nxt

    def read_record(self) -> None:
        """The accesses open on record and the weighed pockets' on-hand (one read)."""
        self.accesses, self.recorded = read_record(self.world.ctl, self.station.id)
        self.acted = False

    def poll(self, k: int) -> Any:
        """One poll at tick k, as the station's `step` does; the snapshot (None: unreadable)."""
        self.dirty = False
        ctl, cabinet = self.world.ctl, self.station.id
        if self.layout is None or self.layout_stale:
            self.layout = supervision.load_layout(ctl, cabinet)
            self.layout_stale = False  # read again once the go-live has assigned the pockets
        if self.acted:
            self.read_record()
        try:
            snap = self.driver.snapshot()
        except DriverError:
            return None
        self.polls += 1
        self._snap = snap
        self.state, findings = self._evaluate(k, snap, ctl.now(), self.slow(k))
        if findings:
            for alarm in supervision.record(ctl, cabinet, findings):
                if self.on_alarm is not None:
                    self.on_alarm(alarm)
            self.read_record()  # a recount or quarantine is on record now
        return snap

    # ------------------------------------------------------------------------------- plan
    def plan(self, k: int) -> int | None:
        """The next tick at which a poll can find something, with nothing acting before it:
        the next self-driven reading change, or the first tick at which the rules on this same
        snapshot and these accesses would find something or change the watch's state."""
        if self.exhaustive:
            return k + 1
        cabinet = self.station.cabinet
        horizon = self.tick_at_or_after(self.world.horizon_s) + 1
        e = self.slow_every
        # A reading that moves by itself (a scale settling, a fridge probe) is a slow reading:
        # it is looked at on slow ticks only, so it bounds the slow ticks, not the fast ones.
        slow_bound = horizon
        change = cabinet.next_change(self.env.now)
        if change is not None:
            at = max(k + 1, self.tick_after(change))
            slow_bound = -(-at // e) * e  # the first slow tick that reads the changed value
        # The next slow tick first (a scale read there after a change: the common case); else
        # one look at the far end with the slow readings looked at, which covers the fast
        # rules too (the `weights` flag only leaves the slow readings out): nothing differs
        # there → nothing differs before it (time-driven rules only go from "not yet" to "now").
        if self._slow_quiet():
            return slow_bound if slow_bound < horizon else None  # no tick differs, unrun
        end = slow_bound if slow_bound < horizon else horizon  # exclusive
        nxt_slow = (k // e + 1) * e
        first: int | None = None
        if nxt_slow < end and (self._gathering() or self._differs(nxt_slow, True)):
            first = nxt_slow
        elif end - 1 <= k or not self._differs(end - 1, True):
            return slow_bound if slow_bound < horizon else None
        else:
            first = self._first_differing(nxt_slow + e, end - 1, weights=True, step=e)
        if first is None and slow_bound < horizon:
            first = slow_bound
        if self._fast_quiet():
            return first  # no fast tick differs: what _first_differing would find, unrun
        fast = self._first_differing(
            k + 1, (first if first is not None else horizon) - 1, weights=False
        )
        return fast if fast is not None else first

    def _evaluate(self, k: int, snap: Any, now: Any, slow: bool) -> tuple[WatchState, list[Any]]:
        """The rules as the station's `step` calls them (the on-hand on record where it passes
        it: at slow polls, or while an access is open or being judged)."""
        assert self.layout is not None
        self.evaluations += 1
        judged = slow or bool(self.accesses) or bool(self.state.before_access)
        return supervision.evaluate(
            self.state,
            snap,
            self.accesses,
            self.layout,
            now,
            left_open_s=self.left_open_s,
            weights=slow,
            recorded=self.recorded if judged else None,
        )

    def _gathering(self) -> bool:
        """A scale's window takes a reading at every slow poll: the next slow tick differs
        (what `_differs` would say, without running the rules; `supervision.gathering`)."""
        assert self.layout is not None
        return supervision.gathering(self.state, self._snap, self.accesses, self.layout)

    def _fast_quiet(self) -> bool:
        """No later fast tick differs on this snapshot (what `_first_differing` with the slow
        readings left out would say, without running the rules; `supervision.fast_quiet`)."""
        assert self.layout is not None
        return supervision.fast_quiet(self.state, self._snap, self.accesses, self.layout)

    def _slow_quiet(self) -> bool:
        """No later tick differs on this snapshot, slow readings looked at or not (what
        `_differs` would say at every later tick; `supervision.slow_quiet`)."""
        assert self.layout is not None
        return supervision.slow_quiet(self.state, self._snap, self.accesses, self.layout)

    def _differs(self, k: int, weights: bool) -> bool:
        state, findings = self._evaluate(
            k, self._snap, self.world.start + timedelta(seconds=self.at(k)), weights
        )
        return bool(findings) or state != self.state

    def _first_differing(self, lo: int, hi: int, *, weights: bool, step: int = 1) -> int | None:
        """The first tick (a multiple of `step`) in [lo, hi] at which the rules would find
        something on the last snapshot; None if not even at hi. The far end first, then
        galloping out from lo (what differs mostly differs soon: a scale read at the next slow
        tick, an access judged once it has settled), then bisection."""
        a, b = -(-lo // step), hi // step
        if a > b or not self._differs(b * step, weights):
            return None
        span = 1
        while a + span < b:  # gallop: a, a+1, a+3, a+7, ...
            probe = a + span - 1
            if self._differs(probe * step, weights):
                b = probe
                break
            a = probe + 1
            span *= 2
        while a < b:
            mid = (a + b) // 2
            if self._differs(mid * step, weights):
                b = mid
            else:
                a = mid + 1
        return a * step


def _q_open() -> Any:
    log = AccessLog.__table__.c  # type: ignore[attr-defined]
    user = User.__table__.c  # type: ignore[attr-defined]
    return (
        select(log.id, log.drawer_code, log.pocket_code, user.username, log.purpose)
        .join_from(AccessLog.__table__, User.__table__, user.id == log.user_id, isouter=True)  # type: ignore[arg-type]
        .where(log.cabinet_id == bindparam("cabinet"), log.closed_at.is_(None))
        .order_by(log.id)
    )


def _q_on_hand() -> Any:
    pocket = Pocket.__table__.c  # type: ignore[attr-defined]
    return select(pocket.code, pocket.on_hand).where(
        pocket.cabinet_id == bindparam("cabinet"), pocket.sensor_kind == bindparam("weight")
    )


def read_record(ctl: Any, cabinet: str) -> tuple[list[supervision.OpenAccess], dict[str, int]]:
    """What `supervision.current_accesses` and `supervision.recorded_on_hand` read, in one
    read transaction on the DB-API cursor (store.py): the watch reads it after every act of
    the controller, so it must cost little."""
    with ctl.db.raw_read() as raw:
        store = Store(raw, ctl.db.engine.dialect)
        try:
            rows = store.rows(_q_open, cabinet=cabinet)
            hands = store.rows(_q_on_hand, cabinet=cabinet, weight="weight")
        finally:
            store.close()
    accesses = [
        supervision.OpenAccess(row_id or 0, drawer, pocket, user, purpose)
        for row_id, drawer, pocket, user, purpose in rows
    ]
    return accesses, {code: on_hand for code, on_hand in hands}
