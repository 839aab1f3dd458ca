"""Scripted restock sessions: a TOML file of scans and quantities, run without a terminal.

    # restock script: one [[line]] per refill line, in the order they are to be done
    cabinet = "W1"                 # optional: refused if the session is for another cabinet

    [[line]]                       # no pocket: the next line of the refill list (critical first)
    scans = [
      "(01)00363323047016(17)271231(10)H1",          # refused: wrong drug — the next scan is tried
      "]d20100304094755038172706301" + ...,          # (TOML has no +: one string per scan)
    ]
    quantity = 10                  # optional where the pocket has a scale: the scale's count

    [[line]]
    pocket = "D6-P1"               # this pocket (checked: it must exist and hold an item)
    scan = "(01)00309046722618(17)271231(10)AC1"    # one scan: `scan`; several: `scans`
    quantity = 30                  # required: D6-P1 has no scale
    accept_short_dated = true      # stock a short-dated lot (otherwise it is refused)
    confirm_discrepancy = true     # record `quantity` even where the scale counts differently

    [[line]]
    pocket = "D3-P1"               # a controlled substance: its count on access is due
    scan = "(01)00309040911103(17)271231(10)MO1"
    count = 0                      # what is in the pocket when it opens, before adding (blind)
    recount = 0                    # optional: the one recount, where the first count differed
    quantity = 5

    [[line]]
    skip = "out of stock"          # mark the next line out of stock (pharmacists notified)

    [[line]]
    pocket = "D2-P1"
    scan = "(01)00363323047016(17)271231(10)H2"
    abandon = "scale disagrees, cannot recount"   # opened, loaded, closed, then given up:
                                   # nothing recorded, the drawer flagged for a blind recount

    [[line]]
    pocket = "D4-P1"
    scan = "(01)00300080841815(17)271231(10)IN1"
    stuck = true                   # if it does not open (not opened in time), say it stayed
                                   # shut: open-failed, the drawer out of service

Where a pocket's count on access is due (controlled substances always; others per the cabinet's
count mode) the line gives `count`, entered once the pocket is open and before the packs go in;
where it differs and the cabinet allows one recount, `recount` is entered (without one the line
fails). A line naming such a pocket without `count` is a problem of the script; a line that reaches
one through the refill list fails before anything is unlocked, naming the script line.

`abandon` gives the line up once the pocket was opened and closed again, instead of recording it
(what a person does when the scale disagrees and they cannot recount): nothing is recorded as
stock, the drawer is flagged for a blind recount (out of service until `adc diag recover`), the
script goes on with its next line, and the exit code is 1 (a drawer needs service). A line that
cannot be recorded (the scale contradicts `quantity`, the count on access was not completed) is
abandoned the same way, with the reason it could not be recorded.

`stuck = true` is the technician's "it did not open": where the unlock times out with the pocket
never opened, the controller's access records it (open-failed: a maintenance event with its
audit entry, the drawer out of service until `adc diag recover`), the line is left and the exit
code is 1. Where the pocket does open, `stuck` is not used (a note says so) and the line goes on.

Scans are tried in order until one is accepted; the refused ones are reported with the reason
(that is how a script shows a wrong-drug or expired-lot refusal). The GS separator is written
`\\u001d` (a TOML escape) or `<GS>`. Where the backend has simulated hands (a `sim:` backend)
they open the pocket, put `quantity` (else the quantity the line needs) in and close it; on real
hardware a person does, and the session waits for the switches as it would for anyone.

A step the database cannot take (busy: another process holds the cabinet's writer lock past the
lock wait; or the connection to a central database is lost) is reported (a `database` event,
the database's one line) and tried again: `DB_TRIES` times in all, `DB_PAUSE_S` apart (each try
also waits the lock wait, ADC_DB_LOCK_TIMEOUT). The step is the unlock (nothing is unlocked
before its access is on record), the record (with the same quantity), a skip, an abandon, the
count on access, a flag for recount. When every try fails the script stops there with exit 1:
what earlier lines recorded stays recorded, no later line is run, and the line in hand is left
(nothing was unlocked) or, where its pocket was unlocked, its access stays open on record and
the next start at the cabinet, with the database back, flags the drawer for a blind recount.
The pocket is shut and relocked either way (a pulsed lock latches again by itself).

Everything that can be checked before the first unlock is checked first, and every problem is
listed with its line number (`parse_script`, then `check_against`): a script with any error
changes nothing and exits 2.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adc.controller.dberrors import DatabaseUnavailable
from adc.errors import AdcError, BadInput
from adc.session.events import scanner_text
from adc.tomlfile import TomlFileError, read_toml

if TYPE_CHECKING:
    from adc.controller.context import Controller
    from adc.session.runner import AccessStatus, Runner

LINE_KEYS = {
    "pocket",
    "scan",
    "scans",
    "quantity",
    "skip",
    "accept_short_dated",
    "confirm_discrepancy",
    "count",
    "recount",
    "abandon",
    "stuck",
}
TOP_KEYS = {"cabinet", "line"}
MAX_COUNT = 100_000  # a count on access above this is a typing error, whatever the pocket
DB_TRIES = 3  # a step the database does not take is tried this many times in all,
DB_PAUSE_S = 2.0  # this far apart (each try waits the lock wait as well)
LOADING_S = 4.0  # and take this long to put the packs in and close (a restock line takes 11–21 s)


@dataclass(frozen=True)
class ScriptScan:
    text: str  # as the scanner sends it (GS as 0x1D)
    line: int | None  # where it is written


@dataclass
class ScriptLine:
    """One `[[line]]` block."""

    number: int | None  # line of its `[[line]]` header
    pocket: str | None = None
    scans: list[ScriptScan] = field(default_factory=list)
    quantity: int | None = None
    skip: str | None = None
    accept_short_dated: bool = False
    confirm_discrepancy: bool = False
    count: int | None = None  # the count on access, where one is due
    recount: int | None = None  # the one recount, where the count differed
    abandon: str | None = None  # give the line up after the access, with this reason
    stuck: bool = False  # not opened in time: the person says it stayed shut (open-failed)
    quantity_line: int | None = None  # where `quantity` is written


@dataclass
class Script:
    path: Path
    cabinet: str | None
    lines: list[ScriptLine]


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ScriptError(BadInput):
    """Every problem of a script, each with its line; nothing was run."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.line or 0, p.message))
        super().__init__(
            f"{len(problems)} problem(s) in restock script {path}: nothing was done",
            details=[
                f"{path}:{p.line}: {p.message}" if p.line else f"{path}: {p}" for p in ordered
            ],
        )
        self.problems = ordered


# ---------------------------------------------------------------------------------- locating
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*line\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')\s*=")


def _locate(text: str) -> tuple[dict[tuple[Any, ...], int], list[int]]:
    """Line numbers of keys ((key,) or (block, key)) and of each `[[line]]` header.

    tomllib keeps no positions; the forms a restock script is written in are few (top-level keys,
    `[[line]]` blocks of plain keys), so following them line by line is enough.
    """
    keys: dict[tuple[Any, ...], int] = {}
    headers: list[int] = []
    block: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if _ARRAY_HEADER.match(raw):
            headers.append(number)
            block = len(headers) - 1
            continue
        match = _KEY.match(raw)
        if match:
            key = match.group(1).strip("\"'")
            keys.setdefault((key,) if block is None else (block, key), number)
    return keys, headers


def _element_lines(text: str, start_line: int) -> list[int]:
    """The line of each string element of the array that starts after `=` on `start_line`."""
    lines = text.splitlines()
    found: list[int] = []
    depth = 0
    started = False
    number = start_line
    while number <= len(lines):
        raw = lines[number - 1]
        i = raw.index("=") + 1 if number == start_line and "=" in raw else 0
        while i < len(raw):
            ch = raw[i]
            if ch == "#":
                break
            if ch == "[":
                depth, started = depth + 1, True
            elif ch == "]":
                depth -= 1
                if started and depth == 0:
                    return found
            elif ch in "\"'":
                if depth == 1:
                    found.append(number)
                quote = raw[i : i + 3] if raw[i : i + 3] in ('"""', "'''") else ch
                end = _string_end(raw, i + len(quote), quote)
                if end is None:  # a multi-line string: skip to the line that closes it
                    number += 1
                    while number <= len(lines) and quote not in lines[number - 1]:
                        number += 1
                    if number > len(lines):
                        return found
                    raw, i = lines[number - 1], lines[number - 1].index(quote) + len(quote)
                    continue
                i = end
                continue
            i += 1
        if not started and number > start_line:
            return found
        number += 1
    return found


def _string_end(raw: str, i: int, quote: str) -> int | None:
    while i < len(raw):
        if quote == '"' and raw[i] == "\\":
            i += 2
            continue
        if raw.startswith(quote, i):
            return i + len(quote)
        i += 1
    return None


# ----------------------------------------------------------------------------------- parsing
def parse_script(path: Path) -> Script:
    """Read and check a script on its own (syntax, keys, types, every barcode); ScriptError lists
    every problem with its line."""
    from adc.controller.gs1 import parse_scan

    try:
        data, text = read_toml(path)
    except TomlFileError as err:
        if err.unreadable:
            raise BadInput(f"restock script {path}: {err.reason}") from None
        raise ScriptError(path, [Problem(err.line, err.reason)]) from None
    keys, headers = _locate(text)
    problems: list[Problem] = []

    def where(*key: Any) -> int | None:
        return keys.get(key)

    for key in sorted(set(data) - TOP_KEYS):
        problems.append(
            Problem(where(key), f"unknown key {key!r} (known: cabinet, [[line]] blocks)")
        )
    cabinet = data.get("cabinet")
    if cabinet is not None and not isinstance(cabinet, str):
        problems.append(Problem(where("cabinet"), 'cabinet must be a string, e.g. "W1"'))
        cabinet = None
    blocks = data.get("line", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        problems.append(Problem(where("line"), "line must be written as [[line]] blocks"))
        blocks = []
    if not blocks and not problems:
        problems.append(Problem(None, "the script has no [[line]] blocks: nothing to do"))
    lines: list[ScriptLine] = []
    for index, block in enumerate(blocks):
        header = headers[index] if index < len(headers) else None
        lines.append(_parse_block(text, block, index, header, keys, problems, parse_scan))
    if problems:
        raise ScriptError(path, problems)
    return Script(path, cabinet, lines)


def _parse_block(
    text: str,
    block: dict[str, Any],
    index: int,
    header: int | None,
    keys: dict[tuple[Any, ...], int],
    problems: list[Problem],
    parse_scan: Any,
) -> ScriptLine:
    def at(key: str) -> int | None:
        return keys.get((index, key), header)

    line = ScriptLine(number=header)
    for key in sorted(set(block) - LINE_KEYS):
        problems.append(
            Problem(
                at(key), f"unknown key {key!r} in [[line]] (known: {', '.join(sorted(LINE_KEYS))})"
            )
        )
    pocket = block.get("pocket")
    if pocket is not None:
        if isinstance(pocket, str) and pocket.strip():
            line.pocket = pocket.strip()
        else:
            problems.append(Problem(at("pocket"), 'pocket must be a pocket id, e.g. "D1-P1"'))
    if "scan" in block and "scans" in block:
        problems.append(Problem(at("scans"), "give either scan or scans, not both"))
    raw_scans: list[tuple[Any, int | None]] = []
    if "scan" in block:
        raw_scans = [(block["scan"], at("scan"))]
    elif "scans" in block:
        values = block["scans"]
        if not isinstance(values, list) or not values:
            problems.append(Problem(at("scans"), "scans must be a non-empty list of barcodes"))
        else:
            start = at("scans")
            element_lines = _element_lines(text, start) if start else []
            raw_scans = [
                (value, element_lines[i] if i < len(element_lines) else start)
                for i, value in enumerate(values)
            ]
    for value, number in raw_scans:
        if not isinstance(value, str):
            problems.append(Problem(number, f"a scan is barcode text, not {value!r}"))
            continue
        data = scanner_text(value)
        try:
            parse_scan(data)
        except AdcError as err:
            problems.append(Problem(number, err.message))
            continue
        line.scans.append(ScriptScan(data, number))
    skip = block.get("skip")
    if skip is not None:
        if not isinstance(skip, str) or not skip.strip():
            problems.append(Problem(at("skip"), 'skip takes the reason, e.g. "out of stock"'))
        else:
            line.skip = skip.strip()
        if raw_scans:
            problems.append(Problem(at("skip"), "a skipped line has no scans"))
    elif not raw_scans:
        problems.append(Problem(header, "a [[line]] needs scan (or scans), or skip"))
    abandon = block.get("abandon")
    if abandon is not None:
        if not isinstance(abandon, str) or not abandon.strip():
            problems.append(
                Problem(
                    at("abandon"),
                    'abandon takes the reason, e.g. "scale disagrees, cannot recount"',
                )
            )
        else:
            line.abandon = " ".join(abandon.split())
        if skip is not None:
            problems.append(
                Problem(at("abandon"), "a skipped line opens nothing: there is nothing to abandon")
            )
        if block.get("confirm_discrepancy") is True:
            problems.append(
                Problem(
                    at("confirm_discrepancy"),
                    "an abandoned line records nothing: confirm_discrepancy has no effect",
                )
            )
    quantity = block.get("quantity")
    if quantity is not None:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            problems.append(
                Problem(at("quantity"), f"quantity must be a whole number ≥ 1, not {quantity!r}")
            )
        else:
            line.quantity, line.quantity_line = quantity, at("quantity")
    for key in ("count", "recount"):
        value = block.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(Problem(at(key), f"{key} must be a whole number ≥ 0, not {value!r}"))
        elif value > MAX_COUNT:
            problems.append(
                Problem(
                    at(key), f"{key} {value} is more than any pocket holds (at most {MAX_COUNT})"
                )
            )
        else:
            setattr(line, key, value)
    if "recount" in block and "count" not in block:
        problems.append(Problem(at("recount"), "recount needs count (the first count)"))
    if skip is not None and ("count" in block or "recount" in block):
        problems.append(Problem(at("count"), "a skipped line opens nothing: no count"))
    if block.get("stuck") is True and skip is not None:
        problems.append(Problem(at("stuck"), "a skipped line unlocks nothing: it cannot be stuck"))
    for flag in ("accept_short_dated", "confirm_discrepancy", "stuck"):
        value = block.get(flag, False)
        if not isinstance(value, bool):
            problems.append(Problem(at(flag), f"{flag} is true or false, not {value!r}"))
        else:
            setattr(line, flag, value)
    return line


def check_against(script: Script, ctl: Controller, cabinet: str) -> None:
    """Check the script against the cabinet's pockets (read only), before anything is unlocked:
    each named pocket exists, holds an item, is not blocked (expired or recalled stock) and its
    drawer is in service; each line's quantity fits the pocket's max (named pocket), or some
    refill line's room (a line that takes the next refill line). ScriptError if anything is
    off."""
    from adc.controller.counts import count_prompt
    from adc.controller.maintenance import out_of_service
    from adc.controller.reports import pockets, refill_list

    problems: list[Problem] = []
    if script.cabinet is not None and script.cabinet != cabinet:
        problems.append(
            Problem(None, f"the script is for cabinet {script.cabinet}, the session for {cabinet}")
        )
    known = {view.pocket: view for view in pockets(ctl, cabinet)}
    failed = out_of_service(ctl, cabinet)
    loaded: dict[str, int] = {}  # units the script's earlier lines put in each named pocket
    for line in script.lines:
        if line.pocket is None:
            _check_next_line_quantity(line, ctl, cabinet, failed, problems, refill_list)
            continue
        view = known.get(line.pocket)
        if view is None:
            problems.append(
                Problem(line.number, f"cabinet {cabinet} has no pocket {line.pocket!r}")
            )
        elif view.item is None:
            problems.append(Problem(line.number, f"pocket {line.pocket} has no item assigned"))
        else:
            unrecorded = line.skip is not None or line.abandon is not None
            if view.sensor != "weight" and line.quantity is None and not unrecorded:
                problems.append(
                    Problem(
                        line.number,
                        f"pocket {line.pocket} has no scale ({view.sensor} sensor): "
                        "give the quantity",
                    )
                )
            if line.skip is None and line.count is None:
                prompt = count_prompt(ctl, cabinet, line.pocket)
                if prompt.mode.value != "none":
                    problems.append(Problem(line.number, _count_missing(line.pocket, prompt)))
            if line.skip is None:
                _check_opens(line, view, failed, problems)
                _check_quantity(line, view, loaded, problems)
    if problems:
        raise ScriptError(script.path, problems)


def _check_opens(line: ScriptLine, view: Any, failed: dict[str, Any], problems: list) -> None:
    """The pocket can be opened for a refill at all (the session refuses these when it selects
    the line; the script is refused whole instead)."""
    if view.drawer in failed:
        problems.append(
            Problem(
                line.number,
                f"drawer {view.drawer} is out of service: {failed[view.drawer][-1].describe()}; "
                f"recover it first (adc diag recover --drawer {view.drawer})",
            )
        )
    if view.blocked is not None:
        problems.append(
            Problem(
                line.number,
                f"pocket {view.pocket} holds {view.blocked} stock: pull it before restocking",
            )
        )


def _check_quantity(
    line: ScriptLine, view: Any, loaded: dict[str, int], problems: list[Problem]
) -> None:
    """The line's quantity fits the pocket's max, after what earlier lines of the script record
    in it."""
    if line.quantity is None:
        return
    before = view.on_hand + loaded.get(view.pocket, 0)
    room = max(view.max - before, 0)
    if line.quantity > room:
        if line.quantity > view.max:
            why = f"more than pocket {view.pocket} holds (max {view.max})"
        else:
            holds = (
                f"it will hold {before} of max {view.max} after the script's earlier lines"
                if loaded.get(view.pocket)
                else f"it holds {before} of max {view.max}"
            )
            why = f"more than pocket {view.pocket} has room for: {holds}, at most {room} more"
        problems.append(Problem(line.quantity_line, f"quantity {line.quantity} is {why}"))
    elif line.abandon is None:  # an abandoned line records nothing
        loaded[view.pocket] = loaded.get(view.pocket, 0) + line.quantity


def _check_next_line_quantity(
    line: ScriptLine,
    ctl: Controller,
    cabinet: str,
    failed: dict[str, Any],
    problems: list[Problem],
    refill_list: Any,
) -> None:
    """A line without `pocket` takes the next refill line, known only as the script runs: its
    quantity must at least fit one of the lines it could take (the runner checks the line it
    took again before unlocking)."""
    if line.quantity is None or line.skip is not None:
        return
    rooms = [
        entry.max - entry.on_hand
        for entry in refill_list(ctl, cabinet)
        if entry.blocked is None and entry.drawer not in failed
    ]
    if rooms and line.quantity > max(rooms):
        problems.append(
            Problem(
                line.quantity_line,
                f"quantity {line.quantity} is more than any refill line of cabinet {cabinet} "
                f"has room for (at most {max(rooms)})",
            )
        )


def _count_missing(pocket: str, prompt: Any) -> str:
    why = "holds a controlled substance" if prompt.controlled else "is counted on access"
    return (
        f"pocket {pocket} {why}: its {prompt.mode.value} count on access is due; "
        "give count = N (what is in the pocket when it opens)"
    )


# ----------------------------------------------------------------------------------- running
def run_script(runner: Runner, script: Script) -> int:
    """Run the checked script; returns the exit code (1 if a line was left, flagged or
    abandoned: a drawer then needs a blind recount before it is used again)."""
    runner.start()
    trouble = False
    for block in script.lines:
        try:
            trouble |= not _run_line(runner, block)
        except DatabaseUnavailable as err:  # every try failed: stop here (see the module doc)
            line = runner.session.line
            runner.report(
                "error",
                line.pocket if line else block.pocket,
                f"script stopped: {err.message} (tried {DB_TRIES} times)",
                script_line=block.number,
            )
            runner.end_unrecorded()
            trouble = True
            break
    summary = runner.finish()
    return 1 if trouble or summary["flagged"] or summary["pending"] else 0


def _again(do: Callable[[], Any]) -> Any:
    """Run a step; where the database does not take it, try again (`DB_TRIES` in all,
    `DB_PAUSE_S` apart); the last refusal is raised."""
    for attempt in range(1, DB_TRIES + 1):
        try:
            return do()
        except DatabaseUnavailable:
            if attempt == DB_TRIES:
                raise
            time.sleep(DB_PAUSE_S)
    raise AssertionError("unreachable")


def _flag(runner: Runner, why: str, what: str) -> None:
    """Flag the line for recount; where the database does not take it, try again; raised when
    it never does (the access is then left for the next start)."""
    if runner.flag(why, what):
        return
    _after_halt(runner)


def _after_halt(runner: Runner) -> None:
    """A flag the database refused (`runner.halted`): try it again, or raise its refusal."""
    for _ in range(DB_TRIES - 1):
        if runner.halted is None:
            return
        time.sleep(DB_PAUSE_S)
        runner.retry_flag()
    if runner.halted is not None:
        raise DatabaseUnavailable(runner.halted)


def _unlock(runner: Runner) -> bool:
    """Unlock, again where the database did not take the access (nothing was unlocked)."""
    for attempt in range(1, DB_TRIES + 1):
        if runner.unlock():
            return True
        if runner.halted is not None:  # the database failed mid-unlock: its flag, again
            _after_halt(runner)
            return False
        if runner.database_refused is None:
            return False
        if attempt == DB_TRIES:
            raise DatabaseUnavailable(runner.database_refused)
        time.sleep(DB_PAUSE_S)
    return False


def _run_line(runner: Runner, block: ScriptLine) -> bool:
    from adc.errors import Refused

    try:
        line = _again(lambda: runner.next_line(block.pocket))
    except DatabaseUnavailable:
        raise
    except (Refused, BadInput) as err:
        runner.report("error", block.pocket, err.message, script_line=block.number)
        return False
    if line is None:
        runner.report("error", None, "no refill line is left", script_line=block.number)
        return False
    if block.skip is not None:
        _again(lambda: runner.skip(block.skip or ""))
        return True
    room = _room(runner, line.pocket)
    if block.quantity is not None and room is not None and block.quantity > room:
        # a line taken from the refill list, known only now: never unlock for what cannot fit
        runner.report(
            "error",
            line.pocket,
            f"quantity {block.quantity} is more than pocket {line.pocket} has room for "
            f"(at most {room} more): not unlocked",
            script_line=block.quantity_line,
        )
        runner.leave("quantity does not fit")
        return False
    if runner.count_pending() and block.count is None:
        runner.report(
            "error",
            line.pocket,
            _count_missing(line.pocket, runner.count_prompt()),
            script_line=block.number,
        )
        runner.leave("no count in the script")
        return False
    accepted = False
    for scan in block.scans:
        if accepted:
            runner.report(
                "note", line.pocket, "scan not used: one was accepted", script_line=scan.line
            )
            continue
        outcome = _again(lambda text=scan.text: runner.scan(text))
        if outcome.status == "accepted":
            accepted = True
        elif outcome.status == "confirm":
            if block.accept_short_dated:
                runner.accept_short_dated()
                accepted = True
            else:
                runner.report(
                    "refused",
                    line.pocket,
                    "short-dated lot not accepted (the script may say accept_short_dated = true)",
                    script_line=scan.line,
                )
    if not accepted:
        runner.leave("no scan accepted")
        return False
    if not _unlock(runner):
        if runner.session.line is not None:
            runner.leave("could not unlock")
        return False
    counting = _Counting(runner, block)
    outcome = runner.access(_hands_tick(runner, block, counting))
    if outcome == "timeout" and block.stuck:
        _again(runner.not_opened)  # the controller records it; the line is left
        return False
    if outcome == "timeout":
        runner.leave("not opened in time")
        return False
    if outcome == "failed":
        _after_halt(runner)  # flagged (switches lost), or its flag tried again
        return False
    if block.stuck:
        runner.report(
            "note", line.pocket, "stuck not used: the pocket opened", script_line=block.number
        )
    if block.count is not None and not counting.tried and not runner.count_pending():
        runner.report(
            "note",
            line.pocket,
            "count not used: no count on access is due",
            script_line=block.number,
        )
    if runner.count_pending() and not counting.tried:
        counting.run()  # closed before the count was made (no tick while open): count now
    if block.abandon is not None:
        reason = block.abandon
        _again(lambda: runner.abandon(reason))  # flagged: the exit code says so
        return True
    if runner.count_pending():
        _flag(runner, "could not be recorded", "the count on access was not completed")
        return False
    try:
        _again(lambda: runner.record(block.quantity, accept_discrepancy=block.confirm_discrepancy))
    except DatabaseUnavailable:
        raise
    except (Refused, BadInput) as err:
        runner.report("refused", line.pocket, err.message, script_line=block.number)
        _flag(runner, "could not be recorded", err.message)
        return False
    return True


def _room(runner: Runner, pocket: str) -> int | None:
    """Units the pocket can still take (its max less what it holds), None if it is not found."""
    from adc.controller.reports import pockets

    session = runner.session
    for view in pockets(session.ctl, session.cabinet):
        if view.pocket == pocket:
            return max(view.max - view.on_hand, 0)
    return None


class _Counting:
    """The script's count on access (and its recount), made once the pocket is open."""

    def __init__(self, runner: Runner, block: ScriptLine) -> None:
        self.runner, self.block, self.tried = runner, block, False

    def run(self) -> None:
        from adc.controller.counts import Outcome
        from adc.errors import Refused

        self.tried = True
        runner, block = self.runner, self.block
        pocket = runner.session.line.pocket if runner.session.line else None
        try:
            assert block.count is not None
            first = block.count
            result = _again(lambda: runner.count(first))
            if result.outcome is not Outcome.RECOUNT:
                return
            if block.recount is None:
                runner.report(
                    "refused",
                    pocket,
                    "the count differed and a recount is asked: the script gives no recount",
                    script_line=block.number,
                )
                return
            again = block.recount
            _again(lambda: runner.count(again))
        except DatabaseUnavailable:
            return  # never taken: the line cannot be recorded (flagged after the access)
        except (Refused, BadInput) as err:
            runner.report("refused", pocket, err.message, script_line=block.number)


def _hands_tick(runner: Runner, block: ScriptLine, counting: _Counting | None = None) -> Any:
    """What the script's simulated hands do while the pocket is unlocked (nothing without hands):
    pull while the latch is released, count what is there where a count is due, put the packs
    in, close after a while."""
    from adc.controller.restock import State

    done = {"pulled": False, "put": False}

    def tick(status: AccessStatus) -> None:
        pending = counting is not None and not counting.tried and runner.count_pending()
        if status.state is State.OPEN and pending:
            assert counting is not None
            counting.run()
        if not runner.hands.acts:
            return
        if status.state is State.UNLOCKED and not done["pulled"]:
            done["pulled"] = True
            runner.pull()
        elif status.state is State.OPEN and not done["put"]:
            units = block.quantity if block.quantity is not None else (status.line.need or 0)
            if units > 0:
                runner.hand("put", units)
            done["put"] = True
        elif status.state is State.OPEN and (status.open_s or 0.0) >= LOADING_S:
            runner.hand("close")

    return tick
