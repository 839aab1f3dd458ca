"""The interactive restock screen: a technician at a terminal with a keyboard-wedge scanner.

A scanner types each barcode as one line (the GS1 separator as the control character 0x1D, or
`<GS>` typed by hand), so the screen is line-based: it redraws one frame — the refill list
(critical first), the current line, what was just scanned, refusals and warnings, progress — and
reads a line. While a pocket is unlocked it shows a live countdown and reads keys without
blocking (the terminal in cbreak mode, restored on every exit), so the operator can type `quit`,
or drive simulated hands (`open`, `add 10`, `close`) on a `sim:` backend.

The count on access (controlled items always, blind): once the pocket is open the screen asks to
"count what is in the pocket now" and a number typed is the count (`add` waits for it). While a
blind count is pending neither the refill list nor the line panel shows that pocket's on-hand or
need (par − need would give it away); a verify count shows the record and asks to confirm it.

A line that cannot be finished once its pocket was opened (the scale disagrees and the person
cannot recount, the drawer will not close) is given up with `abandon REASON`, typed while the
pocket is open or closed, at the count or the quantity prompt: nothing is recorded as stock, the
drawer is flagged for a blind recount (out of service until `adc diag recover`), and the next line
comes up. Before anything was opened there is nothing to abandon: `skip` marks it out of stock.

A pocket that stays shut when pulled is answered `stuck`, typed during the countdown or at the
"not opened in time" prompt: the controller's access records it (open-failed: a maintenance event
with its audit entry, the drawer out of service until `adc diag recover`), and the next line
comes up.

A step the database cannot take (busy: another process holds the cabinet's writer lock past the
lock wait; or the connection to a central database is lost) shows the database's one line and
keeps the line: nothing was unlocked, or the pocket stays as it is (shut, relocked by its latch).
Enter tries the step again (the unlock, the record with the same quantity, the skip, the flag);
a count or an abandon is simply typed again; `quit` ends the session instead, and an access
that was unlocked but not recorded stays open on record: the next start at the cabinet, with the
database back, flags its drawer for a blind recount.

Nothing here decides anything: refusals and counts come from the controller through the runner.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from adc.controller.cabinet_policy import CountMode
from adc.controller.db import lock_wait
from adc.controller.dberrors import DatabaseUnavailable
from adc.controller.restock import State
from adc.errors import BadInput, Refused
from adc.session.events import Event
from adc.session.runner import Abandon, AccessStatus, BoardRow, NotOpened, Quit, Runner
from adc.session.text import describe

if TYPE_CHECKING:
    from adc.controller.restock import Line

HELP = (
    "scan a pack · skip \\[reason] = out of stock (pharmacists notified) · quit = end the session · "
    "abandon REASON = give up a line once its pocket was opened (flagged for recount) · "
    "stuck = the unlocked pocket stayed shut when pulled (its drawer goes out of service) · "
    "Ctrl-C = stop now (an opened pocket is flagged for recount)"
)
ABANDON_HINT = "abandon REASON = give the line up (the drawer is flagged for recount)"
MESSAGES = 5  # how many recent messages the frame keeps


@dataclass
class Screen:
    """The frame: built from the runner's board and line, plus the recent messages."""

    runner: Runner
    console: Console
    messages: deque[str] = field(default_factory=lambda: deque(maxlen=MESSAGES))
    outcomes: deque[str] = field(default_factory=lambda: deque(maxlen=1))
    summary: str = ""
    clear: bool = True
    not_opened: str | None = None  # the pocket the last event said did not open

    def listen(self, event: Event) -> None:
        """Keep what the person should read: this line's messages, and the last line's result."""
        if event.kind == "line":
            self.messages.clear()
            self.messages.extend(self.outcomes)
            return
        if event.kind in ("session", "unlocked", "opened"):
            return  # shown by the frame itself
        if event.kind == "unfinished" and self.not_opened == event.data.get("pocket"):
            return  # left because it did not open: the not-opened line says it
        self.not_opened = event.data.get("pocket") if event.kind == "not-opened" else None
        text = describe(event)
        if not text:
            return
        if event.kind == "summary":
            self.summary = text
            return
        self.messages.append(text.strip())
        if event.kind in (
            "recorded",
            "skipped",
            "unfinished",
            "interrupted",
            "abandoned",
            "not-opened",
        ):
            self.outcomes.append(text.strip())

    # ------------------------------------------------------------------------------- drawing
    def frame(self, hint: str = "", extra: RenderableType | None = None) -> Group:
        parts: list[RenderableType] = [self._header(), self._board()]
        line = self.runner.session.line
        if line is not None:
            parts.append(self._line_panel(line))
        if self.messages:
            parts.append(Text.from_markup("\n".join(self.messages)))
        if extra is not None:
            parts.append(extra)
        if self.summary:
            parts.append(Text.from_markup(self.summary))
        if hint:
            parts.append(Text.from_markup(hint))
        return Group(*parts)

    def draw(self, hint: str = "") -> None:
        if self.clear:
            self.console.clear()
        self.console.print(self.frame(hint))

    def _header(self) -> Text:
        s = self.runner.session
        done, total = self.runner.progress()
        width = 20
        filled = round(width * done / total) if total else width
        bar = "▰" * filled + "▱" * (width - filled)
        header = Text.from_markup(
            f"[bold]adc restock[/] · cabinet [bold]{escape(s.cabinet)}[/] "
            f"({escape(s.driver.profile.name)}) · {escape(s.actor.username)} · "
            f"{escape(self.runner.backend)}"
        )
        header.append(f"\n{bar} {done} of {total} lines done", style="bold green")
        return header

    def _board(self) -> Table:
        table = Table(title="refill list — critical first", title_justify="left", expand=False)
        for name, justify in (
            ("", "left"),
            ("pocket", "left"),
            ("item", "left"),
            ("on hand", "right"),
            ("par", "right"),
            ("need", "right"),
            ("status", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        rows, hidden_done, hidden_todo = self._visible_rows()
        if hidden_done:
            table.add_row("✓", "", f"[dim]{hidden_done} more finished[/]", "", "", "", "")
        for row in rows:
            mark, status, style = _status(row)
            hidden = row.hidden  # a blind count is due: no on-hand, no need (par − need)
            table.add_row(
                mark,
                row.pocket,
                escape(row.item),
                "[dim]blind[/]" if hidden else str(row.on_hand),
                str(row.par),
                "[dim]—[/]" if hidden else str(_need(row)),
                status,
                style=style,
            )
        if hidden_todo:
            table.add_row("", "", f"[dim]… {hidden_todo} more to do[/]", "", "", "", "")
        return table

    def _visible_rows(self) -> tuple[list[BoardRow], int, int]:
        """The rows that fit: the current and next lines first, finished ones summed up."""
        board = self.runner.board
        budget = max(4, self.console.size.height - 22)
        if len(board) <= budget:
            return board, 0, 0
        finished = [r for r in board if r.status not in ("to do", "current")]
        open_rows = [r for r in board if r.status in ("to do", "current")]
        shown_finished = finished[-1:] if finished else []
        room = budget - len(shown_finished) - 2
        shown = set(map(id, shown_finished + open_rows[:room]))
        rows = [r for r in board if id(r) in shown]
        return rows, len(finished) - len(shown_finished), max(len(open_rows) - room, 0)

    def _line_panel(self, line: Line) -> Panel:
        need = line.need or 0
        body = Text()
        body.append(f"{line.item}\n", style="bold")
        pending = self.runner.count_pending()
        if pending and line.count_due is CountMode.BLIND:
            body.append("blind count on access", style="bold yellow")
            body.append(
                " — count what is in the pocket when it opens (no number is shown) · sensor: "
                f"{line.points.sensor_kind}\n"
            )
        else:
            body.append(f"load {need}", style="bold cyan")
            body.append(
                f"   (on hand {line.on_hand}, par {line.on_hand + need}) · sensor: "
                f"{line.points.sensor_kind}\n"
            )
            if pending:
                body.append(
                    f"verify count on access: check the pocket holds {line.on_hand}\n",
                    style="yellow",
                )
        if line.scan is not None:
            days = line.verdict.days_left if line.verdict else None
            body.append("scanned: ", style="dim")
            body.append(f"lot {line.scan.lot} · expires {line.scan.expiry.isoformat()}")
            if days is not None:
                body.append(
                    f" ({days} days)", style="yellow" if line.verdict.short_dated else "green"
                )  # type: ignore[union-attr]
        else:
            body.append("scan a pack of this item", style="dim")
        title = f"pocket {line.pocket} · drawer {line.drawer}"
        return Panel(body, title=title, title_align="left", border_style="cyan", expand=False)


def end_of_round(not_served: list[dict[str, str]]) -> str:
    """`Refill list done.` only when every line was offered; else which were not, and why."""
    if not not_served:
        return "[bold green]Refill list done.[/]"
    lines = "".join(f"\n  {escape(d['pocket'])}: {escape(d['reason'])}" for d in not_served)
    return f"[bold yellow]Refill round over, {len(not_served)} line(s) not served:[/]{lines}"


def _need(row: BoardRow) -> int:
    """What the line still needs: once it is done, what par wants beyond the new on-hand (0 when
    it was filled), not what it needed before."""
    return max(row.par - row.on_hand, 0) if row.status == "done" else row.need


def _status(row: BoardRow) -> tuple[str, str, str]:
    if row.status == "current":
        return "▶", "[bold]now[/]" + (" · [bold red]CRITICAL[/]" if row.critical else ""), "bold"
    if row.status == "done":
        return "✓", f"[green]done {escape(row.result)}[/]", ""
    if row.status == "skipped":
        return "⤼", "[yellow]out of stock[/]", "dim"
    if row.status == "flagged":
        return "⚑", "[red]recount required[/]", ""
    if row.status == "left":
        return "·", "[yellow]left, not done[/]", ""
    if row.out_of_service:
        return "✗", f"[red]cannot serve: {escape(row.out_of_service)}[/]", ""
    if row.blocked:
        return "!", f"[red]pull {row.blocked} stock first[/]", ""
    if row.critical:
        return "", "[bold red]CRITICAL[/]", ""
    return "", "", ""


# ------------------------------------------------------------------------------------ keyboard
@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys one by one without echo (Ctrl-C still interrupts); the terminal restored after."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        new = termios.tcgetattr(fd)
        new[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, new)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class KeyBuffer:
    """A line typed during the countdown, read without blocking."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.text = ""

    def poll(self) -> str | None:
        """A finished line if Enter was pressed, else None (what was typed so far is kept)."""
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 256).decode("utf-8", "replace")
            if not data:
                return None
            for ch in data:
                if ch in "\r\n":
                    line, self.text = self.text, ""
                    return line
                if ch in "\x7f\x08":
                    self.text = self.text[:-1]
                elif ch == "\x15":  # Ctrl-U
                    self.text = ""
                elif ch.isprintable() or ch == "\x1d":
                    self.text += ch
        return None


# ------------------------------------------------------------------------------------- session
class TerminalSession:
    """The interactive loop; `read` reads one line (the console's input by default)."""

    def __init__(
        self,
        runner: Runner,
        screen: Screen,
        read: Callable[[str], str] | None = None,
        fd: int | None = None,
    ) -> None:
        self.runner = runner
        self.screen = screen
        self.console = screen.console
        self.read = read or (lambda prompt: self.console.input(prompt))
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.quit = False
        self.moved = 0  # units the simulated hands put in (minus taken out) in this access

    def run(self) -> None:
        """Go through the refill list until it is done or the person quits."""
        self.runner.start()
        while not self.quit:
            try:
                self.runner.refresh_board()
                line = self.runner.next_line()
            except DatabaseUnavailable:  # its line is on screen; nothing was selected
                if not self._database_retry("The refill list"):
                    self.quit = True
                continue
            if line is None:
                self.screen.messages.append(end_of_round(self.runner.not_served()))
                break
            self._work(line)
            self._until_flagged()
        self.runner.finish()
        self.screen.draw()

    def _work(self, line: Line) -> None:
        if not self._scan_until_accepted():
            return
        hands = self.runner.hands
        while True:
            if hands.acts and not self._ready_to_pull(line):
                return
            if not self.runner.unlock():
                if self.runner.retry_unlock and self._retry_after_partial_unlock(line):
                    continue  # the drawer stayed locked: unlock again
                if self.runner.database_refused is not None:
                    if self._retry_after_database(line):
                        continue  # nothing was unlocked: unlock again
                    return
                if self.runner.halted is not None:
                    return  # flagged for recount, or its flag is tried again (run)
                if self.runner.session.line is not None:
                    self.runner.leave("could not unlock")
                return
            if hands.acts:
                self.runner.pull()  # simulated hands hold the handle: they pull as it clicks
            outcome = self._wait_access()
            if outcome == "closed":
                self._confirm_quantity()
                return
            if outcome in ("failed", "abandoned", "not-opened"):
                return  # flagged or out of service; the message says so; the next line comes up
            if outcome == "quit":
                self.runner.interrupt("quit")
                self.quit = True
                return
            if hands.acts:
                continue  # _ready_to_pull asks again
            answer = self._ask(
                "[yellow]Not opened in time — the drawer is locked again.[/] "
                "Enter = unlock again · stuck = it stayed shut when pulled · skip = out of stock "
                "· quit",
            )
            if not self._after_timeout(answer):
                return

    def _retry_after_partial_unlock(self, line: Line) -> bool:
        """Only one of the drawer's and the pocket's locks released, the drawer stayed locked (the
        error line says which): True to unlock again; skip, leave or quit end the line."""
        if self.runner.hands.acts:
            return True  # _ready_to_pull asks: open, skip or quit
        answer = self._ask(
            f"[yellow]Pocket {escape(line.pocket)} was not unlocked; drawer "
            f"{escape(line.drawer)} stayed locked.[/] Enter = unlock again · "
            "leave = go on without this line · skip = out of stock · quit"
        )
        if answer.strip().lower() == "leave":
            self.runner.leave("could not unlock: partial unlock")
            return False
        return self._after_timeout(answer)

    def _retry_after_database(self, line: Line) -> bool:
        """The database did not take the access (its line is on screen): nothing was unlocked.
        True to unlock again; leave, skip or quit end the line."""
        if self.runner.hands.acts:
            return True  # _ready_to_pull asks: open (unlock again), skip or quit
        answer = self._ask(
            f"[bold red]Nothing was unlocked:[/] the database did not take the access to "
            f"{escape(line.pocket)}. Enter = try again · leave = go on without this line · "
            "skip = out of stock · quit"
        )
        if answer.strip().lower() == "leave":
            self.runner.leave("could not unlock: the database did not take the access")
            return False
        return self._after_timeout(answer)

    def _database_retry(self, what: str) -> bool:
        """The database did not take `what` (its line is on screen): True to try again (Enter),
        False to end the session (quit)."""
        while True:
            answer = self._ask(
                f"[bold red]{what}: the database did not take it.[/] Enter = try again · "
                "quit = end the session (an opened drawer is flagged for recount at the next "
                "start)"
            )
            word = answer.strip().lower()
            if word == "":
                # the retry may wait for another process's lock: say so, or the screen sits still
                self.console.print(
                    f"[dim]trying again: waiting up to {lock_wait():g} s for the database…[/]",
                    highlight=False,
                )
                return True
            if word == "quit":
                return False
            self.screen.messages.append(
                f"[yellow]'{escape(answer.strip())}': Enter tries again, quit ends the session[/]"
            )

    def _until_flagged(self) -> None:
        """A line the runner could not flag for recount (the database): try again until it is
        on record, or end the session (the next start flags it)."""
        while self.runner.halted is not None and not self.quit:
            if self._database_retry("The flag for recount"):
                self.runner.retry_flag()
            else:
                self.runner.end_unrecorded()
                self.quit = True

    def _skip(self, reason: str) -> None:
        """Mark the line out of stock; where the database does not take it, try again, or end
        the session (nothing was opened: the line is left)."""
        while True:
            try:
                self.runner.skip(reason)
                return
            except DatabaseUnavailable:
                if not self._database_retry("The skip"):
                    self.runner.end_unrecorded()
                    self.quit = True
                    return

    def _record(self, qty: int | None, accept: bool = False) -> None:
        """Record the line; where the database does not take it, try again with the same
        quantity, or end the session (the drawer is flagged for recount at the next start)."""
        while True:
            try:
                self.runner.record(qty, accept_discrepancy=accept)
                return
            except DatabaseUnavailable:
                if not self._database_retry("The record"):
                    self.runner.end_unrecorded()
                    self.quit = True
                    return

    def _ready_to_pull(self, line: Line) -> bool:
        """With simulated hands: unlock when the operator says `open` (the hands then pull)."""
        while True:
            answer = self._ask(
                f"Type [bold]open[/] (or Enter) to unlock drawer {escape(line.drawer)} and pull "
                "it with the simulated hands · skip = out of stock · quit"
                + (" · stuck = it stayed shut" if line.unlocked_at is not None else "")
            )
            word = answer.strip().lower()
            if word in ("", "open"):
                return True
            if not self._after_timeout(answer):
                return False
            if word == "stuck":
                continue  # refused (nothing unlocked yet): the message says why
            if _abandon_reason(answer) is not None:
                self._nothing_to_abandon()
                continue
            self.screen.messages.append(f"[yellow]'{escape(answer.strip())}': type open[/]")

    def _after_timeout(self, answer: str) -> bool:
        """skip, stuck or quit typed instead of unlocking: False when the line was left."""
        word = answer.strip().lower()
        if word == "stuck":
            return not self._not_opened()
        if word == "quit":
            self.runner.leave("quit")
            self.quit = True
            return False
        if word.split(" ", 1)[0] == "skip":
            self._skip(answer.strip()[4:].strip() or "out of stock")
            return False
        return True

    def _scan_until_accepted(self) -> bool:
        """Read scans and commands until a scan is accepted (True) or the line is left."""
        while True:
            state = self.runner.session.state
            if state is State.NEEDS_CONFIRMATION:
                hint = "[yellow]Short-dated: stock it anyway?[/] y = yes · or scan another pack"
            else:
                hint = "Scan a pack (the scanner types it; type <GS> for the separator)"
            typed = self._ask(hint)
            word = typed.strip().lower()
            if word == "quit":
                self.runner.leave("quit")
                self.quit = True
                return False
            if word == "help":
                self.screen.messages.append(HELP)
                continue
            if word.split(" ", 1)[0] == "skip":
                self._skip(typed.strip()[4:].strip() or "out of stock")
                return False
            if _abandon_reason(typed) is not None:
                self._nothing_to_abandon()
                continue
            if state is State.NEEDS_CONFIRMATION and word in ("y", "yes"):
                self.runner.accept_short_dated()
                return True
            if state is State.NEEDS_CONFIRMATION and word in ("", "n", "no"):
                line = self.runner.session.line
                lot = line.scan.lot if line is not None and line.scan is not None else ""
                self.runner.session.reject_short_dated()  # the pack is dropped, not the line
                self.screen.messages.clear()  # what was said about the declined pack
                self.screen.messages.extend(self.screen.outcomes)
                self.screen.messages.append(
                    f"Not stocked: lot {escape(lot)} declined (short-dated): scan another pack"
                )
                continue
            if not word:
                continue
            try:
                outcome = self.runner.scan(typed)
            except DatabaseUnavailable:
                continue  # the database's line is on screen: scan again

            if outcome.status == "accepted":
                return True

    def _wait_access(self) -> str:
        """The countdown while the pocket is unlocked or open: 'closed', 'timeout', 'failed'
        (lost contact: flagged), 'not-opened' (`stuck`: out of service) or 'quit'."""
        from rich.live import Live

        keys = KeyBuffer(self.fd)
        hands = self.runner.hands
        self.moved = 0
        hint = (
            f"[dim]{escape(hands.help)} · quit · abandon REASON[/]"
            if hands.acts
            else "[dim]quit = stop · stuck = it stayed shut when pulled · abandon REASON = give "
            "the line up once opened[/]"
        )

        def tick(status: AccessStatus) -> None:
            typed = keys.poll()
            if typed is not None:
                self._command(typed, status)
            text = _access_text(status, keys.text, hint, self._count_hint(status), self.moved)
            live.update(self.screen.frame(text), refresh=True)

        with (
            cbreak(self.fd),
            Live(
                self.screen.frame(), console=self.console, auto_refresh=False, transient=True
            ) as live,
        ):
            if self.screen.clear:
                self.console.clear()
            while True:
                try:
                    return self.runner.access(tick)
                except Quit:
                    return "quit"
                except Abandon as stop:
                    if self._abandon(stop.reason):
                        return "abandoned"
                    # refused: the line stays as it was; go on waiting for the pocket
                except NotOpened:
                    if self._not_opened(ask=False):
                        return "not-opened"

    def _not_opened(self, ask: bool = True) -> bool:
        """The person says the pocket stayed shut: the runner has the controller record it (the
        drawer out of service) and leaves the line. False (and why) when that is refused; where
        the database does not take it, try again or end the session (`ask`; during the
        countdown the person types `stuck` again)."""
        while True:
            try:
                self.runner.not_opened()
                return True
            except DatabaseUnavailable:  # its line is on screen
                if not ask:
                    return False
                if not self._database_retry("That it stayed shut"):
                    self.runner.end_unrecorded()  # the access stays open: flagged next start
                    self.quit = True
                    return True
            except (Refused, BadInput) as err:
                self.screen.messages.append(f"[red]✗ refused:[/] {escape(err.message)}")
                return False

    def _abandon(self, reason: str | None) -> bool:
        """Give the line up with the person's reason; False (and why) when that is refused."""
        if not reason:
            self.screen.messages.append(
                "[yellow]Say why:[/] abandon REASON (e.g. abandon scale disagrees, cannot recount)"
            )
            return False
        try:
            self.runner.abandon(reason)
        except DatabaseUnavailable:
            return False  # the database's line is on screen: abandon again to retry
        except (Refused, BadInput) as err:
            self.screen.messages.append(f"[red]✗ refused:[/] {escape(err.message)}")
            return False
        return True

    def _nothing_to_abandon(self) -> None:
        self.screen.messages.append(
            "[yellow]Nothing was opened on this line:[/] skip \\[reason] marks it out of stock, "
            "quit ends the session"
        )

    def _command(self, typed: str, status: AccessStatus) -> None:
        words = typed.strip().lower().split()
        if not words:
            return
        verb, args = words[0], words[1:]
        line = status.line
        if verb == "abandon":
            if status.state is State.UNLOCKED:
                self.screen.messages.append(
                    "[yellow]Not opened yet:[/] quit relocks the drawer and stops; or open it"
                )
                return
            reason = _abandon_reason(typed)
            if not reason:
                self._abandon(reason)  # says a reason is needed
                return
            raise Abandon(reason)
        if verb == "stuck" and not args:
            if status.state is State.UNLOCKED:
                raise NotOpened
            self.screen.messages.append(
                "[yellow]It did open:[/] close it; abandon REASON gives the line up"
            )
            return
        if verb == "quit":
            if status.state is State.UNLOCKED:
                raise Quit
            self.screen.messages.append(
                "[yellow]Close the drawer first[/] (abandon REASON gives the line up: the "
                "drawer is flagged for recount)"
            )
            return
        if (
            status.state is State.OPEN
            and self.runner.count_pending()
            and verb.isdigit()
            and not args
        ):
            self._count(int(verb))
            return
        hands = self.runner.hands
        if verb in ("add", "put", "load", "take") and self.runner.count_pending():
            self.screen.messages.append(
                "[yellow]Count what is in the pocket first[/] (type the number), then add"
            )
            return
        if verb in ("open", "close", "add", "put", "load", "take") and not hands.acts:
            self.screen.messages.append(escape(hands.open(line).message))
            return
        if verb == "open":
            self.runner.pull()
        elif verb == "close":
            self.runner.hand("close")
        elif verb in ("add", "put", "load", "take"):
            left = (line.need or 0) - self.moved
            default = 1 if verb == "take" else (left if left > 0 else line.need or 0)
            try:
                units = int(args[0]) if args else default
            except ValueError:
                self.screen.messages.append(f"[red]{escape(verb)} takes a number of packs[/]")
                return
            done = self.runner.hand("take" if verb == "take" else "put", units)
            if done.ok:
                self.moved += -units if verb == "take" else units
        elif verb == "help":
            self.screen.messages.append(escape(hands.help or "open and close the drawer"))
        else:
            self.screen.messages.append(
                f"[yellow]'{escape(typed.strip())}' is not a command now[/] (finish this line first)"
            )

    def _count_hint(self, status: AccessStatus) -> str:
        """The count prompt while the pocket is open and its count on access is pending."""
        if status.state is not State.OPEN or not self.runner.count_pending():
            return ""
        line = status.line
        again = "recount" if line.counted is not None else "count"
        if line.count_due is CountMode.VERIFY:
            return (
                f"[bold yellow]{again} what is in the pocket now[/] — the record says "
                f"{line.on_hand}: type the number you find, then Enter"
            )
        return (
            f"[bold yellow]{again} what is in the pocket now[/] (blind: before you put anything "
            "in) — type the number, then Enter"
        )

    def _count(self, counted: int) -> None:
        try:
            self.runner.count(counted)
        except DatabaseUnavailable:
            pass  # the database's line is on screen: the count is asked again
        except (Refused, BadInput) as err:
            self.screen.messages.append(f"[red]✗ refused:[/] {escape(err.message)}")

    def _count_after_close(self) -> bool:
        """Closed before the count on access was made: ask for it before the quantity.
        False when the person abandoned the line instead."""
        while self.runner.count_pending():
            line = self.runner.session.line
            assert line is not None
            shown = (
                f" (the record says {line.on_hand})" if line.count_due is CountMode.VERIFY else ""
            )
            again = "recount" if line.counted is not None else "count"
            typed = self._ask(
                f"[bold yellow]{again} what is in the pocket now[/]: how many were in it before "
                f"you put any in?{shown} · {ABANDON_HINT}"
            ).strip()
            if _abandon_reason(typed) is not None:
                if self._abandon(_abandon_reason(typed)):
                    return False
                continue
            try:
                counted = int(typed)
            except ValueError:
                self.screen.messages.append(f"[red]'{escape(typed)}' is not a number[/]")
                continue
            self._count(counted)
        return True

    def _confirm_quantity(self) -> None:
        """Ask for the count (the scale's by default) until the line is recorded or abandoned."""
        if not self._count_after_close():
            return
        while True:
            line = self.runner.session.line
            if line is None:
                return
            measured = line.measured
            need = line.need or 0
            if measured is not None:
                hint = (
                    f"[bold]The scale counts {measured} added.[/] Enter = record {measured}, "
                    "or type the number you put in"
                )
            else:
                hint = f"[bold]How many did you put in?[/] (the line needs {need})"
            typed = self._ask(f"{hint}\n[dim]{ABANDON_HINT}[/]").strip()
            if _abandon_reason(typed) is not None:
                if self._abandon(_abandon_reason(typed)):
                    return
                continue
            if typed.lower() == "quit":
                self.screen.messages.append(
                    "[yellow]Record the quantity first[/], or abandon REASON (the drawer is "
                    "flagged for recount)"
                )
                continue
            if not typed and measured is not None:
                qty: int | None = None
            else:
                try:
                    qty = int(typed)
                except ValueError:
                    self.screen.messages.append(f"[red]'{escape(typed)}' is not a number[/]")
                    continue
            try:
                self._record(qty)
                return
            except Refused as err:
                if "scale counts" not in err.message:
                    self.screen.messages.append(f"[red]✗ refused:[/] {escape(err.message)}")
                    continue
                self.screen.messages.append(f"[yellow]⚠ {escape(err.message)}[/]")
                answer = self._ask(
                    f"Record {qty} anyway and open a discrepancy for review? y = yes · "
                    f"n = recount · {ABANDON_HINT}"
                )
                if _abandon_reason(answer) is not None:
                    if self._abandon(_abandon_reason(answer)):
                        return
                    continue
                if answer.strip().lower() in ("y", "yes"):
                    try:
                        self._record(qty, accept=True)
                        return
                    except (Refused, BadInput) as again:
                        self.screen.messages.append(f"[red]✗ refused:[/] {escape(again.message)}")
            except BadInput as err:
                self.screen.messages.append(f"[red]✗[/] {escape(err.message)}")

    def _ask(self, hint: str) -> str:
        self.screen.draw(hint)
        typed = self.read("[bold]> [/]")
        sync = getattr(self.runner.waiter, "sync", None)
        if callable(sync):
            sync()  # a simulated cabinet catches up with the time the person took
        return typed


def _abandon_reason(typed: str) -> str | None:
    """The reason of an `abandon REASON` command ("" without one); None for anything else."""
    text = typed.strip()
    word, _, rest = text.partition(" ")
    if word.lower() != "abandon":
        return None
    return rest.strip()


def _put_text(line: Line, moved: int) -> str:
    """What to put in, given what the hands put in so far in this access."""
    need = line.need or 0
    pocket = f"pocket [bold]{line.pocket}[/]"
    if moved == 0:
        return f"put {need} into {pocket} and close the drawer"
    if moved < need:
        return f"{moved} put in: put {need - moved} more into {pocket} and close the drawer"
    extra = f" ({moved - need} more than the line needs)" if moved > need else ""
    return f"{moved} put into {pocket}{extra}: close the drawer, the scale counts them"


def _access_text(
    status: AccessStatus, typed: str, hint: str, count: str = "", moved: int = 0
) -> str:
    line = status.line
    if status.state is State.UNLOCKED:
        left = status.remaining_s or 0.0
        bar = "▰" * int(left / 3) if left > 0 else ""
        where = f"drawer {line.drawer}" + (
            f" and pocket {line.pocket}" if len(line.points.locks) > 1 else ""
        )
        what = f"[bold yellow]⏱ {where} unlocked — open it: {left:4.0f} s left[/] [yellow]{bar}[/]"
    elif status.state is State.OPEN and count:
        what = f"[bold green]open[/] — {count}"
    elif status.state is State.OPEN:
        what = f"[bold green]open[/] — {_put_text(line, moved)} (open {status.open_s or 0:.0f} s)"
    else:
        what = "[bold]closed[/] — the scale is settling…"
    return f"{what}\n{hint}\n[bold]> [/]{escape(typed)}"
