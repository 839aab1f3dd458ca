"""`adc report refill|expiring|shortages|recalls`: what needs doing, as tables, --json or --csv.

Every report prints its rows through `emit_rows`: a report command only builds its rich table, and
gets `--json` (a JSON array, as the controller's rows say it) and `--csv` (one header row from the
row type's fields, then one row per line, for spreadsheets) from there. A new report (controlled
substance activity, discrepancies) takes `as_json: JsonOption` and `as_csv: CsvOption` and calls
`if emit_rows(rows, RowType, as_json=as_json, as_csv=as_csv): return` before drawing its table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, fields, is_dataclass
from typing import Annotated, Any

import typer

from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group(
    "Refill list, expiring stock, shortages, recalled stock, discrepancies, controlled-substance"
    " activity."
)

CabinetFilter = Annotated[str | None, typer.Option("--cabinet", "-c", help="Only this cabinet.")]
CsvOption = Annotated[
    bool, typer.Option("--csv", help="Print CSV: a header row, then one row per line.")
]


def _row_dict(row: Any) -> dict[str, Any]:
    if hasattr(row, "as_json"):
        return dict(row.as_json())
    if is_dataclass(row) and not isinstance(row, type):
        return asdict(row)
    return dict(row)


def _csv_cell(value: Any) -> str:
    """CSV text of one value: empty for None, true/false, JSON for nested data."""
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def emit_rows(rows: Sequence[Any], row_type: type, *, as_json: bool, as_csv: bool) -> bool:
    """Print `rows` as JSON or CSV if asked (True), else leave the table to the caller (False).

    `row_type` is the rows' dataclass: its fields are the CSV columns, so an empty report still
    prints its header (a spreadsheet or a script reading it sees the columns either way).
    """
    import csv
    import sys

    from adc.errors import BadInput

    if as_json and as_csv:
        raise BadInput("choose one of --json and --csv")
    if as_json:
        print_json([_row_dict(row) for row in rows])
        return True
    if not as_csv:
        return False
    columns = [f.name for f in fields(row_type)] if is_dataclass(row_type) else []
    dicts = [_row_dict(row) for row in rows]
    for extra in (key for d in dicts for key in d if key not in columns):
        columns.append(extra)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for d in dicts:
        writer.writerow([_csv_cell(d.get(column)) for column in columns])
    sys.stdout.flush()
    return True


def parse_days(text: str) -> int:
    """`30d`, `2w` or `30` → days."""
    from adc.errors import BadInput

    match = re.fullmatch(r"\s*(\d{1,4})\s*([dw]?)\s*", text.lower())
    if not match:
        raise BadInput(f"--within takes days like 30d or weeks like 2w, not {text!r}")
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


@app.command()
def refill(
    cabinet: CabinetFilter = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Pockets below par: critical-low first, then by drawer and pocket."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.reports import RefillLine, refill_list

    lines = refill_list(open_controller(db), cabinet)
    if emit_rows(lines, RefillLine, as_json=as_json, as_csv=as_csv):
        return
    table = Table("cabinet", "pocket", "item", "on hand", "par", "need", "", title="refill list")
    for line in lines:
        flag = "CRITICAL" if line.critical else ""
        if line.blocked:
            flag = f"{flag} pull {line.blocked} first".strip()
        table.add_row(
            line.cabinet,
            line.pocket,
            line.item,
            str(line.on_hand),
            str(line.par),
            str(line.need),
            flag,
        )
    console().print(table)


@app.command()
def expiring(
    within: Annotated[str, typer.Option(help="Window: 30d, 2w, 90.")] = "30d",
    cabinet: CabinetFilter = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Stock expiring within the window (expired lots included: they block their pocket)."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.reports import ExpiringLot
    from adc.controller.reports import expiring as expiring_lots

    lots = expiring_lots(open_controller(db), parse_days(within), cabinet)
    if emit_rows(lots, ExpiringLot, as_json=as_json, as_csv=as_csv):
        return
    table = Table(
        "expiry", "cabinet", "pocket", "item", "lot", "qty", "", title=f"expiring within {within}"
    )
    for lot in lots:
        note = "EXPIRED: pull" if lot.expired else f"{lot.days_left} d"
        table.add_row(lot.expiry, lot.cabinet, lot.pocket, lot.item, lot.lot, str(lot.qty), note)
    console().print(table)


@app.command()
def shortages(
    include_closed: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    cabinet: CabinetFilter = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Shortage notifications for pharmacists (open and acknowledged; --all for every one)."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.shortages import ShortageView, list_shortages

    notes = list_shortages(open_controller(db), include_closed=include_closed, cabinet=cabinet)
    if emit_rows(notes, ShortageView, as_json=as_json, as_csv=as_csv):
        return
    table = Table(
        "id",
        "since",
        "kind",
        "status",
        "cabinet",
        "pocket",
        "item",
        "on hand",
        "par",
        title="shortages",
    )
    for n in notes:
        table.add_row(
            str(n.id),
            n.created_at,
            n.kind,
            n.status,
            n.cabinet,
            n.pocket,
            n.item,
            str(n.on_hand),
            str(n.par),
        )
    console().print(table)


@app.command()
def recalls(
    cabinet: CabinetFilter = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Pockets holding recalled lots: blocked for removal until pulled."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.recalls import RecalledStock, recalled_stock

    rows = recalled_stock(open_controller(db), cabinet)
    if emit_rows(rows, RecalledStock, as_json=as_json, as_csv=as_csv):
        return
    table = Table(
        "cabinet", "pocket", "item", "GTIN", "lot", "qty", "reason", title="recalled stock"
    )
    for r in rows:
        table.add_row(r.cabinet, r.pocket, r.item, r.gtin, r.lot, str(r.qty), r.reason)
    console().print(table)


@app.command()
def discrepancies(
    open_only: Annotated[bool, typer.Option("--open", help="Only open ones.")] = False,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Opened on or after (YYYY-MM-DD).", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Opened on or before (YYYY-MM-DD).", show_default=False),
    ] = None,
    cabinet: CabinetFilter = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Count discrepancies: overdue first (flagged, escalated to pharmacists), then open, closed."""
    from adc.commands.access import open_controller
    from adc.commands.discrepancy import discrepancy_table
    from adc.controller.csreport import parse_day, period
    from adc.controller.discrepancies import DiscrepancyRow, escalate_overdue, list_discrepancies

    ctl = open_controller(db)
    since = until = None
    if start or end:
        since, until = period(
            ctl,
            parse_day(start, "--from") if start else None,
            parse_day(end, "--to") if end else None,
        )
    escalate_overdue(ctl)
    rows = list_discrepancies(ctl, open_only=open_only, cabinet=cabinet, since=since, until=until)
    if emit_rows(rows, DiscrepancyRow, as_json=as_json, as_csv=as_csv):
        return
    discrepancy_table(rows, "discrepancies")


@app.command("cs-activity")
def cs_activity(
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day (YYYY-MM-DD); default 30 days before --to.",
            show_default=False,
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to", help="Last day (YYYY-MM-DD), included; default today.", show_default=False
        ),
    ] = None,
    cabinet: CabinetFilter = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Every controlled-substance event with the running balance per pocket (DEA-style record)."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.csreport import CsEvent, parse_day, period
    from adc.controller.csreport import cs_activity as activity

    ctl = open_controller(db)
    since, until = period(
        ctl,
        parse_day(start, "--from") if start else None,
        parse_day(end, "--to") if end else None,
    )
    events = activity(ctl, since, until, cabinet)
    if emit_rows(events, CsEvent, as_json=as_json, as_csv=as_csv):
        return
    table = Table(
        "time (UTC)",
        "cabinet",
        "pocket",
        "item",
        "C",
        "event",
        "lot",
        "change",
        "balance",
        "user",
        "witness",
        "note",
        title="controlled-substance activity",
    )
    for e in events:
        note = e.reason or ""
        if e.units is not None and e.kind in ("waste", "count"):
            note = f"{e.units} unit(s) {'wasted' if e.kind == 'waste' else 'counted'}" + (
                f"; {note}" if note else ""
            )
        if e.discrepancy:
            note += f" [discrepancy {e.discrepancy}]"
        table.add_row(
            e.at[:19].replace("T", " "),
            e.cabinet,
            e.pocket,
            e.item,
            e.schedule,
            e.kind,
            e.lot or "",
            f"{e.change:+d}",
            str(e.balance),
            e.user,
            e.witness or "",
            note.strip(),
        )
    console().print(table)
