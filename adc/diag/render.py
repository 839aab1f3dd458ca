"""How diagnostics look on a terminal (rich): one table per report, the watch screen, the port list.

Kept apart from the procedures so they stay free of presentation, and apart from the CLI module so
the table layout is one function a test can render to text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from adc.diag.results import Report, Verdict

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from adc.drivers.base import Snapshot
    from adc.profiles.models import Profile

STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.NOT_EXERCISED: "yellow"}
LABEL = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.NOT_EXERCISED: "NOT EXERCISED"}


# The controller's refusal of a lock that exposes controlled substances without a witness:
# "needs a pharmacist witness: it exposes controlled substances (D3-P1: Morphine ..., C-II);
# give --witness". Every lid's lock and switch row carries one; the table says it once.
_WITNESS = re.compile(r"^(needs an? .+ witness): it exposes controlled substances \((.+)\); (.+)$")
_ENTRY = re.compile(r"(\S+: .+?, C-[IVX0-9]+)(?:, |$)")  # "D3-P1: Morphine ..., C-II"
SEE_BELOW = "no witness: see note"


def witness_note(report: Report) -> str | None:
    """The refusals for want of a witness, merged into one sentence (None if there are none, or
    if one is worded otherwise: then each row keeps its own)."""
    reasons = [c.reason for c in report.checks if "refused" in c.flags]
    matches = [_WITNESS.match(reason) for reason in reasons]
    if not reasons or not all(matches):
        return None
    heads = {m.group(1) for m in matches if m}
    tails = {m.group(3) for m in matches if m}
    if len(heads) != 1 or len(tails) != 1:
        return None
    exposed: list[str] = []
    for m in matches:
        assert m is not None
        for entry in _ENTRY.findall(m.group(2)) or [m.group(2)]:
            if entry not in exposed:
                exposed.append(entry)
    listed = "; ".join(exposed)
    return f"{heads.pop()}: these locks expose controlled substances ({listed}); {tails.pop()}"


def report_table(report: Report, *, merged: bool = False) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"adc diag {report.command}: {escape(report.target)}", title_justify="left")
    table.add_column("result", min_width=13)  # "NOT EXERCISED" whole; flags may go below
    table.add_column("what")
    table.add_column("point", no_wrap=True)
    table.add_column("why")
    for check in report.checks:
        label = LABEL[check.verdict] + (f" ({', '.join(check.flags)})" if check.flags else "")
        reason = SEE_BELOW if merged and "refused" in check.flags else check.reason
        table.add_row(
            f"[{STYLE[check.verdict]}]{escape(label)}[/]",
            escape(check.subject),
            escape(check.point or ""),
            escape(reason),
        )
    return table


def print_report(console: Console, report: Report, recorded: str | None = None) -> None:
    from rich.markup import escape

    note = witness_note(report)
    if report.checks:
        console.print(report_table(report, merged=note is not None))
    if note:
        console.print(f"  [yellow]{escape(note)}[/]", highlight=False)
    for note in report.notes:
        console.print(f"  {escape(note)}", highlight=False, style="dim")
    style = "green" if report.ok else "bold red"
    console.print(f"[{style}]{escape(report.summary())}[/]", highlight=False)
    if recorded:
        console.print(escape(recorded), highlight=False)


def ports_table(ports: list[dict[str, str]]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="serial ports", title_justify="left")
    for column in ("device", "description", "hardware id"):
        table.add_column(column)
    for port in ports:
        table.add_row(escape(port["device"]), escape(port["description"]), escape(port["hwid"]))
    return table


def watch_screen(
    profile: Profile, snap: Snapshot, now: float, title: str, refresh: int = 0
) -> RenderableType:
    """The cabinet table and the bus health table, each fitting an 80-column terminal: names are
    never cut (they wrap), and the four counters share one column."""
    import time

    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from adc.diag.watch import UNKNOWN, device_rows, rows

    when = time.strftime("%H:%M:%S")
    shown = f"{escape(title)} · {when}" + (f" · refresh {refresh}" if refresh else "")
    cabinet = Table(title=shown, title_justify="left")
    cabinet.add_column("drawer / pocket", no_wrap=True)
    for column in ("lock", "switch", "sensor", "light"):
        cabinet.add_column(column, overflow="fold")
    for row in rows(profile, snap):
        cells = [row.where, row.lock, row.switch, row.sensor, row.light]
        cabinet.add_row(
            *(f"[red]{c}[/]" if c == UNKNOWN else escape(c) for c in cells),
            style="bold" if not row.where.startswith(" ") else None,
        )
    health = Table(title="bus health", title_justify="left")
    health.add_column("device", no_wrap=True)
    health.add_column("bus", overflow="fold")
    health.add_column("addr", justify="right")
    health.add_column("online", no_wrap=True)
    health.add_column("req/t-o/err/rty", no_wrap=True, justify="right")
    health.add_column("last seen", overflow="fold")
    errors: dict[str, list[str]] = {}  # the last error, once, below the table (it is long)
    for d in device_rows(profile, snap.health, now):
        online = {"yes": "[green]yes[/]", "no": "[bold red]no[/]"}.get(d.online, d.online)
        health.add_row(
            escape(d.device),
            escape(d.bus),
            str(d.address),
            online,
            f"{d.requests}/{d.timeouts}/{d.errors}/{d.retries}",
            d.last_seen,
        )
        if d.last_error:
            errors.setdefault(d.last_error, []).append(d.device)
    notes = [
        Text.from_markup(f"[red]last error[/] of {escape(', '.join(devs))}: {escape(error)}")
        for error, devs in errors.items()
    ]
    return Group(cabinet, health, *notes)
