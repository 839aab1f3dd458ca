"""How diagnostics look on a terminal (rich): one table per report, the watch screen, the port list.

Kept apart from the procedures so they stay free of presentation, and apart from the CLI module so
the table layout is one function a test can render to text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adc.diag.results import Report, Verdict

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from adc.drivers.base import Snapshot
    from adc.profiles.models import Profile

STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.NOT_EXERCISED: "yellow"}
LABEL = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.NOT_EXERCISED: "NOT EXERCISED"}


def report_table(report: Report) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"adc diag {report.command}: {escape(report.target)}", title_justify="left")
    table.add_column("result", no_wrap=True)
    table.add_column("what")
    table.add_column("point", no_wrap=True)
    table.add_column("why")
    for check in report.checks:
        label = LABEL[check.verdict] + (f" ({', '.join(check.flags)})" if check.flags else "")
        table.add_row(
            f"[{STYLE[check.verdict]}]{escape(label)}[/]",
            escape(check.subject),
            escape(check.point or ""),
            escape(check.reason),
        )
    return table


def print_report(console: Console, report: Report, recorded: str | None = None) -> None:
    from rich.markup import escape

    if report.checks:
        console.print(report_table(report))
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


def watch_screen(profile: Profile, snap: Snapshot, now: float, title: str) -> RenderableType:
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    from adc.diag.watch import UNKNOWN, device_rows, rows

    cabinet = Table(title=f"{escape(title)} at {snap.time:.1f} s", title_justify="left")
    for column in ("drawer / pocket", "lock", "switch", "sensor", "light"):
        cabinet.add_column(column)
    for row in rows(profile, snap):
        cells = [row.where, row.lock, row.switch, row.sensor, row.light]
        cabinet.add_row(
            *(f"[red]{c}[/]" if c == UNKNOWN else escape(c) for c in cells),
            style="bold" if not row.where.startswith(" ") else None,
        )
    health = Table(title="bus health", title_justify="left")
    for column in (
        "device",
        "bus",
        "addr",
        "online",
        "requests",
        "timeouts",
        "errors",
        "retries",
        "last seen",
        "last error",
    ):
        health.add_column(column)
    for d in device_rows(profile, snap.health, now):
        online = {"yes": "[green]yes[/]", "no": "[bold red]no[/]"}.get(d.online, d.online)
        health.add_row(
            d.device,
            d.bus,
            str(d.address),
            online,
            str(d.requests),
            str(d.timeouts),
            str(d.errors),
            str(d.retries),
            d.last_seen,
            escape(d.last_error),
        )
    return Group(cabinet, health)
