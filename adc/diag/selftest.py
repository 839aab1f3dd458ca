"""`adc diag selftest`: cycle every lock and door of the chosen drawers; a verdict per lock and switch.

For each door (a drawer, then the lids and doors inside it) the procedure is what a service
engineer does by hand, measured through the driver port:
1. before: the lock reads engaged and the switch reads closed;
2. pulse the lock, honouring its re-arm time (a `RearmRefused` is waited out, never hammered);
3. where the lock has feedback (CU16 boards), watch it release: the actuation latency; a lock
   without feedback (a DIO coil) is released by inference only, so only a pull can prove it;
4. the person pulls during the pulse: the switch must read open (a door that opens while the
   switch stays closed is a stuck switch; a door that does not open is a jammed lock);
5. while it is open, the doors inside are tested the same way and `visit(pocket)` is called for
   each pocket a hand can reach (the recovery's blind recount and calibration use this);
6. the person closes it: the switch must read closed again; after the pulse has ended the lock
   must re-engage; a pull without a pulse must not open it.
Without a person, steps 4-6 that need hands are reported "not exercised", not passed.

Every pulse is a `ServiceCycle` of the controller's access machine (`bench.gate`, the recorded
run's): the access is on the access log before the pulse, attributed to the service user, so a
process killed in the middle leaves a row the next start flags (the drawer out of service until
recovered); the relock of step 6 is the machine's judgement (`relock_verdict`: engaged within
`RELOCK_GRACE_S` of the later of the pulse's end and the close), and a relock failure is recorded
by the machine as it is judged. Without a gate (no database: a bench procedure with nowhere to
record the access) no lock is pulsed: fail closed, every door is "not exercised" (refused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from adc.diag.bench import Bench
from adc.diag.person import Door
from adc.diag.results import Check, Report, Verdict
from adc.drivers.base import DeviceOffline, DriverError, LockNotReleased, RearmRefused
from adc.errors import BadInput
from adc.profiles.models import Drawer, LockboardCU16, PocketKind, Profile
from adc.profiles.points import PointRef
from adc.waiting import poll_until

Visit = Callable[[str], None]  # called with a pocket id while a hand can reach into it
Refuse = Callable[[str], "str | None"]  # lock point → why it may not be pulsed, or None
NO_RECORD = (
    "no database to record the access on: a lock is pulsed only with its access on record "
    "(--cabinet ID --user NAME)"
)


@dataclass(frozen=True)
class Timing:
    step_s: float = 0.005  # between reads while watching a lock release
    switch_step_s: float = 0.01  # between reads while watching a switch
    # how long a lock may take to re-engage: the access machine's (RELOCK_GRACE_S), not ours


@dataclass(frozen=True)
class LockSpec:
    pulse_s: float
    rearm_s: float
    feedback: bool


def lock_spec(profile: Profile, point: str) -> LockSpec:
    device = profile.devices[PointRef.parse(point).device]
    solenoid = device.solenoid  # type: ignore[union-attr]
    return LockSpec(
        solenoid.pulse_ms / 1000, solenoid.rearm_ms / 1000, isinstance(device, LockboardCU16)
    )


def drawer_door(drawer: Drawer) -> Door:
    return Door(drawer.id, f"drawer {drawer.id}", drawer.lock, drawer.switch)


def pocket_doors(drawer: Drawer) -> list[tuple[str, Door | None, bool]]:
    """(pocket id, its own door or None, whether it opens without the drawer) per pocket."""
    out: list[tuple[str, Door | None, bool]] = []
    for pocket in drawer.pockets:
        door = None
        if pocket.lid_lock and pocket.lid_switch:
            door = Door(pocket.id, f"lid of {pocket.id}", pocket.lid_lock, pocket.lid_switch)
        elif pocket.lock and pocket.switch:
            door = Door(pocket.id, f"door of {pocket.id}", pocket.lock, pocket.switch)
        out.append((pocket.id, door, pocket.kind is PocketKind.RETURN_BIN))
    return out


def find_drawers(profile: Profile, wanted: list[str] | None) -> list[Drawer]:
    if not wanted:
        return list(profile.layout.drawers)
    known = {d.id: d for d in profile.layout.drawers}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise BadInput(
            f"{profile.name} has no drawer {', '.join(unknown)}; its drawers: {', '.join(known)}"
        )
    return [known[w] for w in wanted]


@dataclass
class DoorTest:
    """One door's cycle; `checks()` turns what was seen into a lock and a switch verdict."""

    bench: Bench
    door: Door
    drawer: str  # the drawer the door belongs to (the access log's and a failure's drawer)
    timing: Timing = field(default_factory=Timing)
    lock_problems: list[str] = field(default_factory=list)
    lock_flags: list[str] = field(default_factory=list)
    lock_notes: list[str] = field(default_factory=list)
    switch_problems: list[str] = field(default_factory=list)
    switch_flags: list[str] = field(default_factory=list)
    switch_skipped: str | None = None
    data: dict[str, float] = field(default_factory=dict)
    aborted: str | None = None
    is_open: bool = False
    saw_open: bool = False
    saw_closed_after: bool = False
    pulsed_at: float | None = None  # when the pulse started
    pulse_started: float = 0.0
    closed_at: float | None = None

    def __post_init__(self) -> None:
        self.spec = lock_spec(self.bench.profile, self.door.lock)
        assert self.bench.gate is not None, "exercise_drawer refuses a bench without a gate"
        pocket = None if self.door.target == self.drawer else self.door.target
        self.cycle = self.bench.gate.cycle(self.bench.driver, self.drawer, pocket, self.door.lock)

    # ----------------------------------------------------------------------------- reading
    def _engaged(self) -> bool:
        return self.bench.driver.lock_engaged(self.door.lock)

    def _closed(self) -> bool:
        return self.bench.driver.input_active(self.door.switch)

    def _switch_step(self) -> float:
        """Watch a switch about a hundred times over the person's reaction time, no faster than
        the timing allows (a prompted engineer takes seconds; the bus need not be hammered)."""
        return max(self.timing.switch_step_s, self.bench.person.reaction_s / 100)

    def _abort(self, err: DriverError) -> None:
        self.aborted = err.message
        self.lock_flags.append("offline" if isinstance(err, DeviceOffline) else "error")

    # ------------------------------------------------------------------------------- steps
    def open(self) -> bool:
        """Steps 1-4; True when the door is open now (a hand can reach in)."""
        bench, door, waiter = self.bench, self.door, self.bench.waiter
        try:
            if not self._engaged():
                self.lock_problems.append("released before the pulse")
            if not self._closed():
                self.switch_problems.append(f"reads open before the test (is {door.label} shut?)")
            bench.person.before_pulse(door)
            jammed = not self._pulse()
            if self.spec.feedback:
                # A driver may confirm the bolt itself before pulse() returns: time from the
                # pulse's start.
                in_pulse = waiter.now() - self.pulse_started
                released = False
                if not jammed:
                    _, took, released = poll_until(
                        waiter,
                        self._engaged,
                        lambda engaged: not engaged,
                        timeout_s=max(self.spec.pulse_s - in_pulse, 0.0),
                        step_s=self.timing.step_s,
                    )
                if released:
                    self.data["actuation_ms"] = round((in_pulse + took) * 1000, 1)
                else:
                    self.lock_problems.append(
                        f"feedback stayed engaged through the {self.spec.pulse_s * 1000:.0f} ms "
                        "pulse (jammed lock?)"
                    )
                    self.lock_flags.append("jammed")
            else:
                self.lock_notes.append("no lock feedback: release inferred from the coil")
            if not bench.person.present:
                self.switch_skipped = f"nobody at the cabinet to open {door.label}"
                return False
            pulled = bench.person.pull(door, waiter, self.spec.pulse_s)
            _, _, self.saw_open = poll_until(
                waiter,
                self._closed,
                lambda closed: not closed,
                timeout_s=bench.person.reaction_s,
                step_s=self._switch_step(),
            )
        except DriverError as err:
            self._abort(err)
            return False
        if self.saw_open:
            self.is_open = True
            return True
        observed = pulled if pulled is not None else bench.person.saw_open(door)
        if observed:
            self.is_open = True
            self.switch_problems.append(
                f"did not read open while {door.label} was open (stuck closed?)"
            )
            self.switch_flags.append("stuck")
        elif observed is False:
            self.lock_problems.append(
                f"{door.label} did not open when pulled during the pulse (jammed lock?)"
            )
            self.lock_flags.append("jammed")
            self.switch_skipped = f"{door.label} never opened"
        else:
            self.switch_skipped = f"nobody said whether {door.label} opened"
        return self.is_open

    def _pulse(self) -> bool:
        """Pulse the lock through the access machine's service cycle (the access on record
        first), waiting out a re-arm; False when the driver found the bolt never came out
        (LockNotReleased: a lock board confirming by its feedback)."""
        self.pulse_started = self.bench.waiter.now()
        try:
            try:
                self.cycle.unlock()
            except RearmRefused as refused:
                self.lock_notes.append(f"waited {refused.remaining_ms:.0f} ms for re-arm")
                self.bench.waiter.sleep(refused.remaining_ms / 1000 + 0.01)
                self.pulse_started = self.bench.waiter.now()
                self.cycle.unlock()
        except LockNotReleased:
            self.pulsed_at = self.pulse_started
            return False
        self.pulsed_at = self.pulse_started
        return True

    def close(self) -> None:
        """Step 6: shut it, then the switch must read closed and the lock re-engage (the access
        machine's relock judgement); the cycle then ends on record."""
        try:
            if self.aborted is None and self.pulsed_at is not None:
                self._close()
        finally:
            self.end()

    def end(self) -> None:
        """End the service cycle, however the test ended (a lock pulsed and not yet seen engaged
        is judged now: fail closed). Idempotent."""
        self.cycle.finish("aborted" if self.aborted is not None else None)

    def _close(self) -> None:
        from adc.controller.access import RELOCK_GRACE_S

        bench, door, waiter = self.bench, self.door, self.bench.waiter
        assert self.pulsed_at is not None
        try:
            if self.is_open:
                bench.person.close(door)
                _, _, self.saw_closed_after = poll_until(
                    waiter,
                    self._closed,
                    bool,
                    timeout_s=max(bench.person.reaction_s, self.timing.switch_step_s),
                    step_s=self._switch_step(),
                )
                self.closed_at = waiter.now()
                self.cycle.shut()
                if not self.saw_closed_after:
                    self.switch_problems.append(
                        f"still reads open after {door.label} was closed (stuck open?)"
                    )
                    self.switch_flags.append("stuck")
            left = self.pulsed_at + self.spec.pulse_s - waiter.now()
            if left > 0:
                waiter.sleep(left + 0.01)
            held, _, judged = poll_until(
                waiter,
                self.cycle.relock,
                lambda verdict: verdict is not None,
                timeout_s=RELOCK_GRACE_S + self.timing.step_s,
                step_s=self.timing.step_s,
            )
            if not judged:
                held = self.cycle.relock(final=True)
            if held:
                ended = max(self.pulsed_at + self.spec.pulse_s, self.closed_at or 0.0)
                self.data["relock_ms"] = round(max(waiter.now() - ended, 0.0) * 1000, 1)
            else:
                inferred = "" if self.spec.feedback else " (inferred: coil off and door shut)"
                recorded = self.cycle.alarms[-1].event_id if self.cycle.alarms else None
                self.lock_problems.append(
                    f"not re-engaged {RELOCK_GRACE_S:.1f} s after the pulse ended{inferred}"
                    + (f" (maintenance event {recorded}, relock-failed)" if recorded else "")
                )
                self.lock_flags.append("no-relock")
            if self.is_open and bench.person.pull_locked(door, waiter):
                self.lock_problems.append(
                    f"{door.label} opened without a pulse: the lock does not re-engage"
                )
                self.lock_flags.append("no-relock")
        except DriverError as err:
            self._abort(err)

    # ----------------------------------------------------------------------------- verdicts
    def checks(self) -> list[Check]:
        door = self.door
        lock_subject, switch_subject = f"lock of {door.label}", f"switch of {door.label}"
        data = dict(self.data)
        if self.aborted is not None:
            return [
                Check(lock_subject, door.lock, Verdict.FAIL, self.aborted, data, self.lock_flags),
                Check(
                    switch_subject,
                    door.switch,
                    Verdict.FAIL if self.switch_problems else Verdict.NOT_EXERCISED,
                    # The lock's row says why: a service engineer reads the cause once.
                    "; ".join(self.switch_problems)
                    or f"not reached: the test of {door.lock} failed",
                    flags=self.switch_flags,
                ),
            ]
        return [self._lock_check(lock_subject, data), self._switch_check(switch_subject)]

    def _lock_check(self, subject: str, data: dict[str, float]) -> Check:
        door, flags = self.door, sorted(set(self.lock_flags))
        if self.lock_problems:
            reason = "; ".join(self.lock_problems + self.lock_notes)
            return Check(subject, door.lock, Verdict.FAIL, reason, data, flags)
        if not self.spec.feedback and not self.is_open:
            return Check(
                subject,
                door.lock,
                Verdict.NOT_EXERCISED,
                "no lock feedback and the door was not opened: pulse accepted, latch not proven",
                data,
            )
        parts = []
        if "actuation_ms" in data:
            parts.append(f"released in {data['actuation_ms']:.0f} ms")
        if self.is_open:
            parts.append("opened when pulled")
        if "relock_ms" in data:
            parts.append("re-engaged after the pulse")
        if self.is_open:
            parts.append("stayed shut when pulled again")
        return Check(subject, door.lock, Verdict.PASS, ", ".join(parts + self.lock_notes), data)

    def _switch_check(self, subject: str) -> Check:
        door = self.door
        if self.switch_problems:
            return Check(
                subject,
                door.switch,
                Verdict.FAIL,
                "; ".join(self.switch_problems),
                flags=sorted(set(self.switch_flags)),
            )
        if self.saw_open and self.saw_closed_after:
            return Check(subject, door.switch, Verdict.PASS, "closed → open → closed")
        return Check(
            subject, door.switch, Verdict.NOT_EXERCISED, self.switch_skipped or "not cycled"
        )


def _refused(door: Door, why: str) -> list[Check]:
    return [
        Check(f"lock of {door.label}", door.lock, Verdict.NOT_EXERCISED, why, flags=["refused"]),
        Check(
            f"switch of {door.label}", door.switch, Verdict.NOT_EXERCISED, why, flags=["refused"]
        ),
    ]


def exercise_drawer(
    bench: Bench,
    drawer: Drawer,
    *,
    refuse: Refuse | None = None,
    visit: Visit | None = None,
    timing: Timing | None = None,
    only: set[str] | None = None,
) -> list[Check]:
    """Cycle a drawer and the doors inside it (see the module docstring); checks in that order.

    `only` limits the pockets whose doors are cycled and visited (calibration needs one)."""
    timing = timing or Timing()
    outer = drawer_door(drawer)
    doors = [d for d in pocket_doors(drawer) if only is None or d[0] in only]
    why = refuse(outer.lock) if refuse else None
    if why is None and bench.gate is None:
        why = NO_RECORD  # fail closed: no lock opens without its access on record
    if why:
        inner = [_refused(door, why) for _, door, _ in doors if door is not None]
        return _refused(outer, why) + [c for pair in inner for c in pair]
    test = DoorTest(bench, outer, drawer.id, timing)
    try:
        drawer_open = test.open()
        checks: list[Check] = []
        for pocket, door, outside in doors:
            if door is None:
                continue
            why = refuse(door.lock) if refuse else None
            if why:
                checks += _refused(door, why)
                continue
            if bench.person.present and not drawer_open and not outside:
                reason = f"{outer.label} did not open, so {door.label} could not be reached"
                checks += [
                    Check(f"lock of {door.label}", door.lock, Verdict.NOT_EXERCISED, reason),
                    Check(f"switch of {door.label}", door.switch, Verdict.NOT_EXERCISED, reason),
                ]
                continue
            inner_test = DoorTest(bench, door, drawer.id, timing)
            try:
                if inner_test.open() and visit:
                    visit(pocket)
                inner_test.close()
            finally:
                inner_test.end()
            checks += inner_test.checks()
        if drawer_open and visit:
            for pocket, door, _ in doors:
                if door is None:
                    visit(pocket)
        test.close()
    finally:
        test.end()
    return test.checks() + checks


def selftest(
    bench: Bench,
    drawers: list[str] | None = None,
    *,
    refuse: Refuse | None = None,
    timing: Timing | None = None,
) -> Report:
    """Cycle the chosen drawers (all by default); one lock and one switch check per door."""
    report = Report("selftest", bench.target)
    report.notes.append(f"person at the cabinet: {bench.person.name}")
    for drawer in find_drawers(bench.profile, drawers):
        report.checks += exercise_drawer(bench, drawer, refuse=refuse, timing=timing)
    return report
