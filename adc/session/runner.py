"""The restock round as a person (or a script) goes through it, over the controller's state machine.

`Runner` wraps one `RestockSession` (adc/controller/restock.py) and adds what the state machine
leaves to its caller: waiting (the pocket is unlocked: poll the switches, show the countdown, let
the hands act), retrying an unlock the lock board refuses while it re-arms, the board of refill
lines with what became of each, the events every renderer draws from, and the clean-up after an
interrupt. It decides nothing the controller decides: every refusal comes from the controller.

The count on access: where `line.count_due` is not NONE (controlled items always, blind) the person
counts what is in the pocket once it is open, before adding anything (`count(n)`); the outcome is
an event (`count`: match, recount, discrepancy with its id). While a blind count is pending, the
board and the `line` event carry no on-hand and no need (par − need would give the on-hand away):
`BoardRow.hidden`.

After an interrupt (Ctrl-C, a lost terminal) no pocket is left unlocked without a record:
- nothing was unlocked yet (or the unlock timed out and relatched): the line is dropped;
- unlocked but never opened: wait for the pulse to end and check the latches hold again;
- the pocket was opened: if it is closed and the scale counted a whole number of packs, that
  count is recorded (what is known); otherwise the line is abandoned (`RestockSession.abandon`):
  the drawer is flagged for a blind recount and out of service until `adc diag recover` recounts it.

A line the person (or the script) gives up after the pocket was opened — the scale disagrees and
they cannot recount, the drawer will not close — is abandoned the same way with their reason
(`abandon`); a line that could not be recorded or lost its switches is too (`flag`). Either way
the session is IDLE afterwards and the round goes on with the next line (the flagged drawer's
lines are no longer offered).

A partial unlock (the drawer's and the pocket's own lock not released together; the controller
records it) is an `error` event naming each lock; `retry_unlock` says whether the drawer stayed
locked (the person may unlock again) or left service (only leaving the line remains).

A step the database cannot take (busy: another process holds the cabinet's writer lock past the
lock wait; or the connection is lost) is a `database` event with the one line the controller
gives, and the line stays where it was, so the step can be tried again (fail closed):
- the unlock: the access could not be put on record, so nothing was unlocked; `unlock` returns
  False with `database_refused` set: unlock again (or skip, or leave the line);
- the record, the count on access, a skip, an abandon, a not-opened: refused with
  `DatabaseUnavailable` (a `Refused`); nothing of it was written; the same call may be repeated;
- what the cabinet noticed during the access (a relock failure, a left-open alarm): the access
  goes on being watched and the record is tried again at the next read of the switches;
- a flag for recount (`flag`, also from `interrupt`): False, and `halted` says why; the line
  stays current (no next line is offered: the session cannot go on past an access it could not
  end on record); `retry_flag` tries again; ending the session instead leaves the access open on
  the access log, and the next start at the cabinet (a restock, a count, diagnostics), once the
  database is back, flags the drawer for a blind recount (access_log.py).
An access ends relocked whatever the database does: the locks are pulsed, they latch again by
themselves, and nothing is unlocked before its access is on record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adc.controller.access import RELOCK_GRACE_S, UnlockIncomplete
from adc.controller.access_log import DatabaseUnwritable
from adc.controller.audit import format_time
from adc.controller.dberrors import DatabaseUnavailable
from adc.controller.restock import Line, RestockSession, State
from adc.drivers.base import DriverError, RearmRefused
from adc.errors import AdcError, BadInput, Refused
from adc.session.events import Event, Listener, scanner_text, shown_scan
from adc.session.hands import Done, Hands

if TYPE_CHECKING:
    from adc.controller.inventory import Movement
    from adc.controller.reports import RefillLine
    from adc.waiting import Waiter

STEP_S = 0.1  # how often the switches are read while a pocket is unlocked or open
REARM_TRIES = 3  # unlock attempts while a lock re-arms after its last pulse
PULSE_WAIT_S = 3.0  # after an interrupt, once the pulse is over: how long a latch may take
SWITCH_ERRORS_S = 5.0  # switches unreadable this long during an access: give up on the line
PULL_WINDOW_S = 1.5  # hands holding the handle keep pulling this long after the unlock
PULL_STEP_S = 0.02


@dataclass
class BoardRow:
    """One refill line on the screen and what became of it in this session."""

    pocket: str
    drawer: str
    item: str
    on_hand: int
    par: int
    need: int
    critical: bool
    blocked: str | None
    out_of_service: str | None = None  # why it cannot be served now, and what to do
    status: str = "to do"  # to do · current · done · skipped · left · flagged
    result: str = ""
    count: str = "none"  # the count on access due: none · verify · blind
    counted: bool = False  # counted in this session (a blind row may show numbers again)

    @property
    def hidden(self) -> bool:
        """A blind count is still to be made: on-hand and need must not be shown."""
        return self.count == "blind" and not self.counted and self.status != "done"

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if self.hidden:
            out["on_hand"] = out["need"] = None
        return out


@dataclass(frozen=True)
class AccessStatus:
    """What the waiting loop knows at one tick: shown as the countdown, given to the hands."""

    state: State
    line: Line
    waited_s: float  # since the unlock
    remaining_s: float | None  # until the unlock times out (while not yet opened)
    open_s: float | None  # how long it has been open


@dataclass(frozen=True)
class ScanOutcome:
    status: str  # accepted · confirm (short-dated) · refused
    message: str


class Quit(Exception):
    """Raised by an access tick when the person asks to stop (handled like an interrupt)."""


class NotOpened(Exception):
    """Raised by an access tick when the person says the pocket stayed shut when pulled."""


class Abandon(Exception):
    """Raised by an access tick when the person gives the line up (once it was opened)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Runner:
    """See the module docstring. `emit` receives every event; `hands` act where they can."""

    session: RestockSession
    waiter: Waiter
    hands: Hands
    emit: Listener
    backend: str = ""
    critical: Callable[[], AbstractContextManager[Any]] = nullcontext  # holds Ctrl-C (CLI)
    board: list[BoardRow] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)
    _notes_seen: int = 0
    _opened_at: float | None = None
    _unlocked_at: float | None = None
    retry_unlock: bool = False  # the last unlock was partial and the drawer stayed locked
    database_refused: str | None = None  # the last unlock: the access could not be put on record
    halted: str | None = None  # the current line could not be flagged: the database's line
    pending: list[dict[str, Any]] = field(default_factory=list)  # accesses left for the next start
    _pending_flag: Callable[[], bool] | None = None  # the flag the database refused, again
    _unclosed: list[tuple[Any, str]] = field(default_factory=list)  # (access, outcome) to close
    _database_said: str | None = None  # the last database line during an access (said once)

    # ------------------------------------------------------------------------------- the round
    def start(self) -> None:
        self.refresh_board()
        s = self.session
        self._event(
            "session",
            session=s.id,
            cabinet=s.cabinet,
            profile=s.driver.profile.name,
            backend=self.backend,
            user=s.actor.username,
            hands=self.hands.name,
            lines=[row.as_json() for row in self.board],
        )
        for found in s.recovered:
            where = f"pocket {found.pocket}" if found.pocket else f"drawer {found.drawer}"
            self._event(
                "note",
                pocket=found.pocket,
                text=(
                    f"drawer {found.drawer} flagged for a blind recount: a {found.purpose} of "
                    f"{where} by {found.user}, opened {format_time(found.opened_at)}, was "
                    "interrupted (its process ended); recover it with "
                    f"adc diag recover --drawer {found.drawer}"
                ),
                maintenance_event=found.maintenance_event,
            )

    def refresh_board(self) -> None:
        """Merge the controller's current refill list into the board (new lines are appended)."""
        with self._database_step("select"):
            self._refresh_board()

    def _refresh_board(self) -> None:
        rows = {row.pocket: row for row in self.board}
        for entry in self.session.refill_list():
            row = rows.get(entry.pocket)
            if row is None:
                row = _row(entry)
                row.count = self._count_mode(entry.pocket)
                self.board.append(row)
            elif row.status == "to do":
                row.on_hand, row.need, row.critical, row.blocked = (
                    entry.on_hand,
                    entry.need,
                    entry.critical,
                    entry.blocked,
                )
                row.out_of_service = entry.out_of_service

    def progress(self) -> tuple[int, int]:
        """(lines done or marked out of stock, lines on the board); a flagged line is not done."""
        finished = sum(row.status in ("done", "skipped") for row in self.board)
        return finished, len(self.board)

    def next_line(self, pocket: str | None = None) -> Line | None:
        """Select a pocket, or the next refill line (critical first); None when none is left."""
        self._close_accesses()
        with self._database_step("select"):
            line = self.session.select(pocket) if pocket else self.session.next_line()
        if line is None:
            return None
        row = self._row(line)
        row.status = "current"
        row.count, row.counted = line.count_due.value, False
        self._notes_seen = 0
        blind = row.hidden
        self._event(
            "line",
            pocket=line.pocket,
            drawer=line.drawer,
            item=line.item,
            on_hand=None if blind else line.on_hand,
            need=None if blind else line.need,
            sensor=line.points.sensor_kind,
            count=line.count_due.value,
        )
        return line

    def _count_mode(self, pocket: str) -> str:
        from adc.controller.counts import count_prompt

        return count_prompt(self.session.ctl, self.session.cabinet, pocket).mode.value

    # ------------------------------------------------------------------------ count on access
    def count_pending(self) -> bool:
        """The current line needs its count on access (or its recount) before it is recorded."""
        from adc.controller.cabinet_policy import CountMode
        from adc.controller.counts import Outcome

        line = self.session.line
        if line is None or line.count_due is CountMode.NONE:
            return False
        return line.counted is None or line.counted.outcome is Outcome.RECOUNT

    def count_prompt(self) -> Any:
        """What the screen may show before the count (`expected` only for a verify count)."""
        from adc.controller.counts import count_prompt

        line = self._line()
        return count_prompt(self.session.ctl, self.session.cabinet, line.pocket)

    def count(self, counted: int) -> Any:
        """The count on access of the open (or closed) pocket; an event says how it came out.
        Refused/BadInput (not open, negative) keep the line as it was."""
        from adc.controller.counts import Outcome

        line = self._line()
        recount = line.counted is not None
        with self._database_step("count"), self.critical():
            result = self.session.count(counted)
        row = self._row(line)
        if result.outcome is not Outcome.RECOUNT:
            # on-hand follows the count that stands; what the line needs follows it
            row.counted = True
            line.on_hand = row.on_hand = counted
            if line.need is not None:
                line.need = row.need = max(row.par - counted, 0)
        self._event(
            "count",
            pocket=line.pocket,
            mode=line.count_due.value,
            counted=counted,
            outcome=result.outcome.value,
            recount=recount,
            discrepancy=result.discrepancy_id,
            txn=result.txn_id,
            audit_seq=result.audit_seq,
        )
        return result

    def _row(self, line: Line) -> BoardRow:
        for row in self.board:
            if row.pocket == line.pocket:
                return row
        row = BoardRow(
            line.pocket,
            line.drawer,
            line.item or "",
            line.on_hand,
            line.on_hand + (line.need or 0),
            line.need or 0,
            False,
            None,
        )
        self.board.append(row)
        return row

    # ---------------------------------------------------------------------------------- scanning
    def scan(self, typed: str) -> ScanOutcome:
        """One scan as the scanner typed it; a refusal is reported and the line stays."""
        raw = scanner_text(typed)
        line = self._line()
        try:
            with self._database_step("scan"):
                verdict = self.session.scan(raw)
        except DatabaseUnavailable:
            raise  # not the scan's fault: the `database` event says it; scan again
        except (Refused, BadInput) as err:
            self._event("refused", pocket=line.pocket, reason=err.message, scan=shown_scan(raw))
            return ScanOutcome("refused", err.message)
        scan = line.scan
        assert scan is not None
        self._event(
            "scan",
            pocket=line.pocket,
            item=verdict.item,
            gtin=scan.gtin,
            lot=scan.lot,
            expiry=scan.expiry.isoformat(),
            serial=scan.serial,
            days_left=verdict.days_left,
            short_dated=verdict.short_dated,
        )
        if verdict.short_dated:
            message = (
                f"short-dated: lot {scan.lot} expires {scan.expiry.isoformat()} "
                f"({verdict.days_left} days): stock it only if nothing longer-dated is available"
            )
            self._event("warning", pocket=line.pocket, reason=message)
            return ScanOutcome("confirm", message)
        return ScanOutcome("accepted", f"lot {scan.lot}, expires {scan.expiry.isoformat()}")

    def accept_short_dated(self) -> None:
        self.session.confirm_short_dated()

    # -------------------------------------------------------------------------------- the access
    def unlock(self) -> bool:
        """Pulse the pocket's locks; a lock still re-arming is waited for. False: hardware error,
        or a refusal (the drawer went out of service).

        A partial unlock (one of the drawer's and the pocket's locks released, the other not) was
        recorded by the controller; the `error` event names each lock and what to do, and
        `retry_unlock` says whether the person may try again (the drawer stayed locked) or must
        leave the line (the drawer is out of service)."""
        line = self._line()
        self.retry_unlock = False
        self.database_refused = None
        for attempt in range(REARM_TRIES):
            try:
                with self._database_step("unlock"), self.critical():  # never half a pulse
                    self.session.unlock()
                break
            except DatabaseUnavailable as err:  # the `database` event says it
                if isinstance(err, DatabaseUnwritable) or line.access_id is None:
                    self.database_refused = err.message  # not on record: nothing was pulsed
                    return False
                # on record, then the database failed mid-unlock (recording a partial unlock):
                # a lock may have been released: fail closed, the drawer is flagged for recount
                self._flag_unlock(err.message)
                return False
            except RearmRefused as busy:
                if attempt == REARM_TRIES - 1:
                    self._event("error", pocket=line.pocket, reason=busy.message)
                    return False
                self.waiter.sleep(busy.remaining_ms / 1000 + 0.05)
            except UnlockIncomplete as partial:
                self._partial_unlock(line, partial)
                return False
            except Refused as err:
                self._event("refused", pocket=line.pocket, reason=err.message)
                return False
            except DriverError as err:
                self._event("error", pocket=line.pocket, reason=f"unlock failed: {err.message}")
                return False
        self._unlocked_at, self._opened_at = self.waiter.now(), None
        self._event(
            "unlocked",
            pocket=line.pocket,
            drawer=line.drawer,
            locks=list(line.points.locks),
            timeout_s=self.session.ctl.policy.unlock_timeout_s,
        )
        return True

    def _partial_unlock(self, line: Line, err: UnlockIncomplete) -> None:
        unsure = set(err.unconfirmed)
        self.retry_unlock = not err.out_of_service
        self._event(
            "error",
            pocket=line.pocket,
            drawer=line.drawer,
            reason=err.message,
            partial_unlock=True,
            released=list(err.released),
            not_released=[p for p in err.not_released if p not in unsure],
            unconfirmed=list(err.unconfirmed),
            out_of_service=err.out_of_service,
            maintenance_event=err.alarm.event_id,
            maintenance_kind=err.alarm.kind,
            retry=self.retry_unlock,
        )

    def access(self, tick: Callable[[AccessStatus], None]) -> str:
        """Wait for the pocket to be opened and closed again: 'closed', 'timeout' or 'failed'
        (the switches stopped answering: the line was flagged for recount).

        `tick` runs at every step (the screen's countdown, the script's hands); it may raise
        `Quit`. Waiting is the waiter's: simulated time on a sim backend, wall time otherwise.
        """
        line = self._line()
        timeout = self.session.ctl.policy.unlock_timeout_s
        failing_since: float | None = None
        while True:
            before = self.session.state
            try:
                state = self.session.poll()
                failing_since = None
                self._database_said = None
            except DatabaseUnavailable as err:
                # what the cabinet noticed could not be recorded: said once, tried again at the
                # next read (the access is still watched; the person can close it)
                if self._database_said != err.message:
                    self._database_said = err.message
                    self._database("alarm", err)
                state = before
            except DriverError as err:
                now = self.waiter.now()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since > SWITCH_ERRORS_S:
                    self.flag("lost contact with the cabinet", err.message)
                    return "failed"
                self._event("note", pocket=line.pocket, text=f"switches unreadable: {err.message}")
                state = before
            now = self.waiter.now()
            waited = now - self._unlocked_at if self._unlocked_at is not None else 0.0
            if before is State.UNLOCKED and state is State.READY_TO_UNLOCK:
                self._notes_seen = len(line.notes)  # the controller's note says it: not twice
                self._event(
                    "timeout",
                    pocket=line.pocket,
                    reason=f"not opened within {timeout} s: the latch holds again",
                )
                return "timeout"
            self._new_notes(line)
            if before is State.UNLOCKED and state is not State.UNLOCKED:
                self._opened_at = now
                self._event("opened", pocket=line.pocket, after_s=round(waited, 1))
            if state is State.CLOSED:
                self._closed(line)
                return "closed"
            remaining = max(timeout - waited, 0.0) if state is State.UNLOCKED else None
            open_s = now - self._opened_at if self._opened_at is not None else None
            tick(AccessStatus(state, line, waited, remaining, open_s))
            self.waiter.sleep(STEP_S)

    def _closed(self, line: Line) -> None:
        measured = line.measured
        if measured is not None:
            verdict = f"the scale counts {abs(measured)} added"
        elif line.sensor_detail.get("present") is not None:
            seen = "a pack" if line.sensor_detail["present"] else "nothing"
            verdict = f"the presence sensor sees {seen}"
        else:
            verdict = "no scale count: enter the quantity"
        self._event(
            "closed",
            pocket=line.pocket,
            measured=measured,
            sensor=dict(line.sensor_detail),
            verdict=verdict,
        )

    def _new_notes(self, line: Line) -> None:
        for text in line.notes[self._notes_seen :]:
            self._event("note", pocket=line.pocket, text=text)
        self._notes_seen = len(line.notes)

    def hand(self, action: str, units: int = 0) -> Done:
        """Let the hands do `action` (open, put, take, close) on the current line."""
        line = self._line()
        do = {
            "open": lambda: self.hands.open(line),
            "put": lambda: self.hands.put(line, units),
            "take": lambda: self.hands.take(line, units),
            "close": lambda: self.hands.close(line),
        }[action]
        done = do()
        self._hands_event(action, units, done)
        return done

    def pull(self, window_s: float = PULL_WINDOW_S) -> Done:
        """The hands hold the handle and pull while the unlock pulse releases the latch.

        A pulsed latch is released for about half a second, so a person at a real cabinet holds
        the handle when the lock clicks; simulated hands do the same: they pull at every step of
        the window until the drawer (and the pocket's own door) opens.
        """
        line = self._line()
        deadline = self.waiter.now() + window_s
        while True:
            done = self.hands.open(line)
            if done.ok or self.waiter.now() >= deadline:
                self._hands_event("open", 0, done)
                return done
            self.waiter.sleep(PULL_STEP_S)

    def _hands_event(self, action: str, units: int, done: Done) -> None:
        self._event(
            "hands",
            pocket=self._line().pocket,
            action=action,
            units=units,
            ok=done.ok,
            message=done.message,
        )

    # -------------------------------------------------------------------------------- recording
    def record(self, qty: int | None, *, accept_discrepancy: bool = False) -> Movement:
        """Record the closed line; Refused/BadInput (scale disagrees, no count) keep it closed."""
        line = self._line()
        scan = line.scan
        with self._database_step("record"), self.critical():
            movement = self.session.confirm_quantity(qty, accept_discrepancy=accept_discrepancy)
        self._ended(line, "recorded")
        self._new_notes(line)
        row = self._row(line)
        row.status, row.on_hand = "done", movement.on_hand
        row.result = f"+{movement.qty} → {movement.on_hand}"
        if movement.discrepancy_id:
            row.result += f" (discrepancy {movement.discrepancy_id})"
        self._event(
            "recorded",
            pocket=movement.pocket,
            kind=movement.kind,
            qty=movement.qty,
            on_hand=movement.on_hand,
            lot=scan.lot if scan else None,
            expiry=scan.expiry.isoformat() if scan else None,
            discrepancy=movement.discrepancy_id,
            shortages=movement.shortages,
            audit_seq=movement.audit_seq,
        )
        return movement

    def skip(self, reason: str = "out of stock") -> None:
        """Mark the line out of stock: pharmacists get a shortage notification."""
        line = self._line()
        with self._database_step("skip"), self.critical():
            self.session.skip(reason, out_of_stock=True)
        self._ended(line, "skipped")
        row = self._row(line)
        row.status, row.result = "skipped", reason
        self._event("skipped", pocket=line.pocket, reason=reason, shortage=True)

    def not_opened(self) -> dict[str, Any]:
        """The person pulled and the pocket stayed shut (while it was unlocked, or after it
        relatched unopened). Recorded the one way, by the controller's access
        (`PocketAccess.not_opened`): open-failed, a maintenance event with its audit entry, the
        drawer out of service until `adc diag recover`. The line is then left without a record
        (nothing was reached). Refused (the line stays) once the pocket was opened, or before
        anything was unlocked."""
        line = self._line()
        with self._database_step("not-opened"), self.critical():
            alarm = self.session.not_opened()
        failed = {
            "pocket": line.pocket,
            "drawer": line.drawer,
            "kind": alarm.kind,
            "maintenance_event": alarm.event_id,
            "detail": alarm.detail,
        }
        self._event("not-opened", **failed)
        self.leave("did not open: the drawer is out of service")
        return failed

    def leave(self, reason: str) -> bool:
        """Drop the line without a record. One whose pocket was opened (earlier in the line,
        then unlocked again and relatched unopened) cannot be dropped: it is flagged for a
        recount instead, and False says so."""
        line = self._line()
        if self.halted is not None:
            return False  # its flag for recount is pending: never dropped without it
        try:
            self.session.cancel()
        except Refused:
            if not line.opened or self.session.state in (State.OPEN, State.SETTLING):
                raise
            self.flag(reason, "the pocket was opened in this line and nothing recorded")
            return False
        self._ended(line, "left")
        row = self._row(line)
        row.status, row.result = "left", reason
        self.left.append((line.pocket, reason))
        self._event("unfinished", pocket=line.pocket, reason=reason)
        return True

    # ------------------------------------------------------------------------------- interrupts
    def interrupt(self, why: str = "interrupted") -> None:
        """Leave the cabinet safe and the record complete; see the module docstring. Where the
        database cannot take the line's end, the access is left for the next start to flag
        (`end_unrecorded`)."""
        self._interrupt(why)
        if self.halted is not None and self.session.line is not None:
            self.end_unrecorded()

    def _interrupt(self, why: str) -> None:
        line = self.session.line
        if line is None:
            return
        state = self.session.state
        if line.unlocked_at is None or state in (
            State.AWAITING_SCAN,
            State.NEEDS_CONFIRMATION,
            State.READY_TO_UNLOCK,
        ):
            never = "nothing was unlocked" if line.unlocked_at is None else "it relatched unopened"
            if self.leave(f"{why}: {never}"):
                self._event("interrupted", pocket=line.pocket, state=state.value, action="left")
            return
        if state is State.UNLOCKED:
            state = self._watch_relock(line)
            if state is State.READY_TO_UNLOCK:  # the controller saw it time out, unopened
                if self.leave(f"{why}: it relatched unopened"):
                    self._event("interrupted", pocket=line.pocket, state="unlocked", action="left")
                return
            if state is State.UNLOCKED:
                if self._latched(line):
                    if self.leave(f"{why}: never opened, relocked"):
                        self._event(
                            "interrupted", pocket=line.pocket, state="unlocked", action="relocked"
                        )
                    return
                self.flag(why, "unlocked, the latch did not re-engage")
                return
        if state is State.SETTLING:
            state = self._settle(line)
        if state is State.CLOSED and line.measured:
            try:
                self.record(None)
            except AdcError as err:
                self.flag(why, f"closed; the scale's count could not be recorded: {err.message}")
                return
            self._event("interrupted", pocket=line.pocket, state="closed", action="recorded")
            return
        what = {
            State.OPEN: "the pocket was open",
            State.SETTLING: "closed, the scale still settling",
            State.CLOSED: "closed without a count",
        }.get(state, state.value)
        self.flag(why, what)

    def _watch_relock(self, line: Line) -> State:
        """Poll to the end of the unlock pulse and until the latches hold again; returns the
        state (OPEN if someone opened it meanwhile).

        A latch that reads engaged before the pulse is over proves nothing: the bolt retracts a
        moment after the pulse starts (a lock board's feedback still reads it out until then), so
        an interrupt right after the unlock would otherwise leave the line while the drawer is
        about to open for the rest of the pulse.
        """
        pulse_end = line.pulse_end()
        pulse_left = 0.0
        if pulse_end is not None:
            pulse_left = max(0.0, (pulse_end - self.session.ctl.now()).total_seconds())
        judged_from = self.waiter.now() + pulse_left
        deadline = judged_from + PULSE_WAIT_S
        while self.waiter.now() < deadline:
            try:
                state = self.session.poll()
            except (DriverError, DatabaseUnavailable):
                state = State.UNLOCKED
            if state is not State.UNLOCKED:
                return state
            if self.waiter.now() >= judged_from and self._latched(line):
                return state
            self.waiter.sleep(STEP_S)
        return self.session.state

    def _settle(self, line: Line) -> State:
        # the scale's settle time, and the relock judged only after the unlock pulse
        bound = self.session.ctl.policy.settle_timeout_s + line.pulse_s + RELOCK_GRACE_S
        deadline = self.waiter.now() + bound + 1
        state = self.session.state
        while state is State.SETTLING and self.waiter.now() < deadline:
            self.waiter.sleep(STEP_S)
            try:
                state = self.session.poll()
            except (DriverError, DatabaseUnavailable):
                break
        return state

    def _latched(self, line: Line) -> bool:
        """Shut, the pulse over, every lock engaged (the line's access reads it)."""
        return line._access().latched() is True

    def flag(self, why: str, what: str) -> bool:
        """An access that cannot be finished (interrupted, not recordable, switches lost): the
        line is abandoned, the drawer flagged for a blind recount and out of service.

        False where the database cannot take the flag (a `database` event says it): the line
        stays current and `halted` says why; `retry_flag` tries again. A session that ends
        instead leaves the access open on record: the next start flags the drawer."""
        state = self.session.state.value
        try:
            with self._database_step("flag"):
                flag = self._abandon(f"{why}: {what}")
        except DatabaseUnavailable as err:
            self._pending_flag = lambda: self.flag(why, what)
            self.halted = err.message
            return False
        self._pending_flag, self.halted = None, None
        self._event("interrupted", state=state, action="flagged-for-recount", **flag)
        return True

    def _flag_unlock(self, said: str) -> bool:
        """The database failed in the middle of an unlock whose access was on record (while
        recording a partial unlock): a lock may have been released, so the drawer is flagged
        for a blind recount (a `failed` maintenance event, out of service until recovered) and
        the line is left. False where the database refuses that too (`halted`)."""
        line = self._line()
        try:
            with self._database_step("flag"):
                alarm = line._access().unlock_not_on_record(said)  # the access decides
        except DatabaseUnavailable as err:
            self._pending_flag = lambda: self._flag_unlock(said)
            self.halted = err.message
            return False
        self._pending_flag, self.halted = None, None
        flag = {
            "pocket": line.pocket,
            "drawer": line.drawer,
            "reason": f"the database failed during the unlock: {said}",
            "maintenance_event": alarm.event_id,
            "locked": self._latched(line),
            "detail": alarm.detail,
            "audit_seq": None,
        }
        self.flagged.append(flag)
        self._event("interrupted", state=self.session.state.value, action="flagged-for-recount",
                    **flag)  # fmt: skip
        self.leave("the database failed during the unlock: flagged for recount")
        self._row(line).status = "flagged"
        return True

    def retry_flag(self) -> bool:
        """Try the flag the database refused again (True once it is on record)."""
        if self._pending_flag is None:
            return True
        return self._pending_flag()

    def end_unrecorded(self) -> None:
        """End the session with the current line's end not on record (the database cannot take
        it): where its pocket was unlocked, its access stays open on the access log and the next
        start at this cabinet, with the database back, flags the drawer for a blind recount; an
        access never unlocked is simply left. Nothing is written here."""
        line = self.session.line
        if line is None:
            return
        if line.access_id is None:  # never on record, so never pulsed
            self.halted = None
            self.leave("the database could not take it")
            return
        row = self._row(line)
        row.status, row.result = "flagged", "recount at the next start"
        pending = {
            "pocket": line.pocket,
            "drawer": line.drawer,
            "access": line.access_id,
            "reason": self.halted or self.database_refused or "the database could not take it",
        }
        self.pending.append(pending)
        self._event(
            "interrupted",
            state=self.session.state.value,
            action="flag-at-next-start",
            locked=self._latched(line) if self.session.state is not State.OPEN else False,
            **pending,
        )

    def abandon(self, reason: str) -> dict[str, Any]:
        """The person gives up a line whose pocket was unlocked or opened (their reason is
        recorded): nothing is recorded as stock, the drawer is flagged for a blind recount and
        the round goes on. Refused for a line nothing was unlocked for (skip it instead),
        BadInput without a reason; either way the line stays."""
        with self._database_step("abandon"):
            flag = self._abandon(reason)
        self._event("abandoned", **flag)
        return flag

    def _abandon(self, reason: str) -> dict[str, Any]:
        line = self._line()
        with self.critical():
            done = self.session.abandon(reason)  # the access ends: light off, closed on record
        self._ended(line, "abandoned")
        row = self._row(line)
        row.status, row.result = "flagged", "recount required"
        flag = {
            "pocket": done.pocket,
            "drawer": done.drawer,
            "reason": done.reason,
            "maintenance_event": done.maintenance_event,
            "locked": done.locked,
            "detail": done.detail,
            "audit_seq": done.audit_seq,
        }
        self.flagged.append(flag)
        return flag

    # ------------------------------------------------------------------------------------- end
    def finish(self) -> dict[str, Any]:
        """End the session and sum it up (a line still open is left to the caller's clean-up)."""
        s = self.session
        self._close_accesses()
        if s.line is None:
            s.end()
        done, total = self.progress()
        summary = {
            "session": s.id,
            "lines_done": done,
            "lines_total": total,
            "recorded": [
                {"pocket": m.pocket, "qty": m.qty, "on_hand": m.on_hand} for m in s.recorded
            ],
            "skipped": [{"pocket": p, "reason": r} for p, r in s.skipped],
            "left": [{"pocket": p, "reason": r} for p, r in self.left],
            "flagged": [f["pocket"] for f in self.flagged],
            "pending": list(self.pending),  # accesses the next start flags for recount
            "not_served": self.not_served(),
            "lines": [row.as_json() for row in self.board],
        }
        self._event("summary", **summary)
        return summary

    def not_served(self) -> list[dict[str, str]]:
        """Lines still to do that the round could not offer, and why (a drawer out of service,
        stock to pull first)."""
        return [
            {
                "pocket": row.pocket,
                "reason": row.out_of_service or f"pull {row.blocked} stock first",
            }
            for row in self.board
            if row.status == "to do" and (row.out_of_service or row.blocked)
        ]

    # --------------------------------------------------------------------------------- helpers
    def report(self, kind: str, pocket: str | None, reason: str, /, **extra: Any) -> None:
        """An event the driving code has to tell (a script step that could not be done)."""
        self._event(kind, pocket=pocket, reason=reason, **extra)

    def _line(self) -> Line:
        if self.session.line is None:
            raise Refused("no line selected")
        return self.session.line

    def _ended(self, line: Line, outcome: str) -> None:
        """The line ended; where its access could not be closed on record (the database failed
        just then: the controller's note says the next start would flag it), close it later."""
        access = line.access
        if access is not None and access.access_id is not None:
            self._unclosed.append((access, outcome))

    def _close_accesses(self) -> None:
        """Close on record the accesses of ended lines the database did not take at the time,
        so the next start does not flag a drawer whose line was recorded. Where it still fails,
        the next start flags it (fail closed)."""
        for access, outcome in list(self._unclosed):
            if access.finish(outcome):  # with any failure it could not record at the time
                self._unclosed.remove((access, outcome))
                self._event(
                    "note",
                    pocket=access.pocket,
                    text=f"the access to {access.pocket} is now closed on record ({outcome}): "
                    "its drawer will not be flagged at the next start",
                )

    @contextmanager
    def _database_step(self, step: str) -> Iterator[None]:
        """A step the database may not take: its refusal (or a driver's error saying the
        database is locked or gone, as one) is a `database` event, then raised as
        `DatabaseUnavailable`; nothing of the step was written and the line stays."""
        try:
            yield
        except DatabaseUnavailable as err:
            self._database(step, err)
            raise
        except Exception as err:
            refusal = _as_refusal(err)
            if refusal is None:
                raise
            self._database(step, refusal)
            raise refusal from None

    def _database(self, step: str, err: DatabaseUnavailable) -> None:
        line = self.session.line
        self._event(
            "database",
            pocket=line.pocket if line else None,
            step=step,
            reason=err.message,
            accessed=bool(line and line.unlocked_at is not None),
            retry=True,
        )

    def _event(self, kind: str, /, **data: Any) -> None:
        self.emit(Event(kind, {"at": format_time(self.session.ctl.now()), **data}))


def _row(entry: RefillLine) -> BoardRow:
    return BoardRow(
        entry.pocket,
        entry.drawer,
        entry.item,
        entry.on_hand,
        entry.par,
        entry.need,
        entry.critical,
        entry.blocked,
        entry.out_of_service,
    )


def _as_refusal(err: BaseException) -> DatabaseUnavailable | None:
    """A database driver's error that says the database cannot take a step now (locked, read
    only, connection lost: a read outside `Controller.write`), as the controller's refusal."""
    from adc.controller.dberrors import database_unavailable, is_unavailable

    orig = getattr(err, "orig", None) or err
    if is_unavailable(err) or is_unavailable(orig):
        return database_unavailable(orig)
    return None
