"""`adc report refill|expiring|shortages|recalls`: what needs doing, as tables, --json or --csv.

Every report prints its rows through `show_rows`: a report command only fetches its rows and says
how a row reads in the table (its columns, title and cells), and gets `--json` (a JSON array, as the
controller's rows say it) and `--csv` (one header row from the row type's fields, then one row per
line, for spreadsheets) from `emit_rows`. A new report takes `as_json: JsonOption` and
`as_csv: CsvOption` and ends with `show_rows(rows, RowType, ...)`; one with a table of its own (the
discrepancies) calls `if emit_rows(rows, RowType, as_json=as_json, as_csv=as_csv): return` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields, is_dataclass
from typing import Annotated, Any

import typer

from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group(
    "Refill list, expiring stock, shortages, recalled stock, discrepancies, controlled-substance"
    " activity, diversion scores, quarantined stock, study accountability, fleet status."
)

CabinetFilter = Annotated[str | None, typer.Option("--cabinet", "-c", help="Only this cabinet.")]
# every `adc report` with cabinets takes a list: --cabinet W1,W2 (or -c W1 -c W2); cabinet_list()
CabinetList = Annotated[
    list[str] | None,
    typer.Option(
        "--cabinet",
        "-c",
        help="Only these cabinets: one, or a list (W1,W2, or repeat -c).",
        show_default=False,
    ),
]
# a report period (cs-activity, diversion): [--from, --to] in the site's days
PeriodFrom = Annotated[
    str | None,
    typer.Option(
        "--from", help="First day (YYYY-MM-DD); default 30 days before --to.", show_default=False
    ),
]
PeriodTo = Annotated[
    str | None,
    typer.Option(
        "--to", help="Last day (YYYY-MM-DD), included; default today.", show_default=False
    ),
]
# the discrepancies' period: when they were opened
OpenedFrom = Annotated[
    str | None,
    typer.Option("--from", help="Opened on or after (YYYY-MM-DD).", show_default=False),
]
OpenedTo = Annotated[
    str | None,
    typer.Option("--to", help="Opened on or before (YYYY-MM-DD).", show_default=False),
]
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


def escape(text: str) -> str:
    """`text` shown as it is in a table cell (a `[` in a name or note is not rich markup)."""
    from rich.markup import escape as escape_markup

    return escape_markup(text)


def show_rows(
    rows: Sequence[Any],
    row_type: type,
    *,
    as_json: bool,
    as_csv: bool,
    title: str,
    columns: Sequence[str],
    cells: Callable[[Any], Sequence[str]],
    empty: str = "",
    priority: Sequence[int] | None = None,
) -> None:
    """`rows` as JSON or CSV if asked, else as a rich table: `columns`, then `cells(row)` a row;
    no rows: the line `empty` (else "no " + title) instead of an empty table. The table fits the
    terminal (`adc.commands.fit`): a narrow one leaves out the columns of the lowest `priority`
    (1 = keep; default: the rightmost go first) and says which."""
    if emit_rows(rows, row_type, as_json=as_json, as_csv=as_csv):
        return
    if not rows:
        console().print(empty or f"no {title}", highlight=False)
        return
    from adc.commands.fit import print_fitted

    table_rows = [list(cells(row)) for row in rows]
    print_fitted(console(), columns, table_rows, title=title, priority=priority)


def cabinet_list(given: list[str] | None) -> tuple[str, ...] | None:
    """The cabinets of a report's --cabinet (each value one id or several separated by commas),
    each once; None when not given (every cabinet). A blank entry (`W1,,W2`) is bad input."""
    from adc.errors import BadInput

    if given is None:
        return None
    names: list[str] = []
    for text in given:
        for part in text.split(","):
            name = part.strip()
            if not name:
                raise BadInput(
                    f"--cabinet {text!r} has a blank entry: give cabinet ids separated by "
                    "commas, e.g. --cabinet W1,W2"
                )
            names.append(name)
    return tuple(dict.fromkeys(names))


def report_controller(db: str | None, cabinet: str | Sequence[str] | None) -> Any:
    """The controller for a report, once its --cabinet filter (one id, or a list of them from
    `cabinet_list`) names registered cabinets only: a misspelt cabinet is an error naming it, not
    an empty report (one query for the whole list)."""
    from adc.commands.access import open_controller
    from adc.controller.cabinet_scope import check_known
    from adc.controller.cabinets import get_cabinet

    ctl = open_controller(db)
    if cabinet is not None:
        with ctl.read() as session:
            if isinstance(cabinet, str):
                get_cabinet(session, cabinet)
            else:
                check_known(session, cabinet)
    return ctl


def _period(ctl: Any, start: str | None, end: str | None) -> tuple[Any, Any]:
    """The controller's (since, until) of --from/--to days (either may be missing)."""
    from adc.controller.csreport import period

    return period(ctl, report_day(start, "--from"), report_day(end, "--to"))


FIRST_DAY, LAST_DAY = "1900-01-01", "2999-12-31"  # the days a report period may name


def report_day(text: str | None, option: str) -> Any:
    """A report's --from/--to day, between FIRST_DAY and LAST_DAY: far enough for any record,
    and far from the ends of Python's calendar, where the period's arithmetic (a day after --to,
    30 days before --from, the site's time zone) would overflow."""
    from datetime import date

    from adc.controller.csreport import parse_day
    from adc.errors import BadInput

    if text is None:
        return None
    if len(text) > 40:
        raise BadInput(f"{option} takes a date like 2026-03-01, got {len(text)} characters")
    day = parse_day(text, option)
    if not date.fromisoformat(FIRST_DAY) <= day <= date.fromisoformat(LAST_DAY):
        raise BadInput(f"{option} {day.isoformat()} is out of range: {FIRST_DAY} to {LAST_DAY}")
    return day


def parse_days(text: str) -> int:
    """`30d`, `2w` or `30` → days."""
    from adc.errors import BadInput

    match = re.fullmatch(r"\s*(\d{1,4})\s*([dw]?)\s*", text.lower(), re.ASCII)
    if not match:
        raise BadInput(f"--within takes days like 30d or weeks like 2w, not {text!r}")
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


@app.command()
def refill(
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Pockets below par: critical-low first, then by drawer and pocket."""
    from adc.controller.reports import RefillLine, refill_list

    def cells(line: RefillLine) -> list[str]:
        flag = "CRITICAL" if line.critical else ""
        if line.blocked:
            flag = f"{flag} pull {line.blocked} first".strip()
        if line.out_of_service:
            flag = f"{flag} · cannot serve: {line.out_of_service}".strip(" ·")
        on_hand, par, need = str(line.on_hand), str(line.par), str(line.need)
        return [line.cabinet, line.pocket, escape(line.item), on_hand, par, need, escape(flag)]

    names = cabinet_list(cabinet)
    show_rows(
        refill_list(report_controller(db, names), names),
        RefillLine,
        as_json=as_json,
        as_csv=as_csv,
        title="refill list",
        columns=("cabinet", "pocket", "item", "on hand", "par", "need", ""),
        cells=cells,
        empty="no pockets below par: nothing to refill",
        priority=(5, 1, 1, 2, 3, 2, 1),
    )


@app.command()
def expiring(
    within: Annotated[str, typer.Option(help="Window: 30d, 2w, 90.")] = "30d",
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Stock expiring within the window (expired lots included: they block their pocket)."""
    from adc.controller.reports import ExpiringLot
    from adc.controller.reports import expiring as expiring_lots

    def cells(lot: ExpiringLot) -> list[str]:
        note = "EXPIRED: pull" if lot.expired else f"{lot.days_left} d"
        item, lot_id = escape(lot.item), escape(lot.lot)
        return [lot.expiry, lot.cabinet, lot.pocket, item, lot_id, str(lot.qty), note]

    days = parse_days(within)
    names = cabinet_list(cabinet)
    show_rows(
        expiring_lots(report_controller(db, names), days, names),
        ExpiringLot,
        as_json=as_json,
        as_csv=as_csv,
        title=f"expiring within {within}",
        columns=("expiry", "cabinet", "pocket", "item", "lot", "qty", ""),
        cells=cells,
        priority=(1, 4, 1, 1, 2, 2, 1),
        empty=f"no lots expiring within {days} days",
    )


@app.command()
def shortages(
    include_closed: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Shortage notifications for pharmacists (open and acknowledged; --all for every one)."""
    from adc.controller.shortages import ShortageView, list_shortages

    names = cabinet_list(cabinet)
    show_rows(
        list_shortages(report_controller(db, names), include_closed=include_closed, cabinet=names),
        ShortageView,
        as_json=as_json,
        as_csv=as_csv,
        title="shortages",
        columns=("id", "since", "kind", "status", "cabinet", "pocket", "item", "on hand", "par"),
        cells=lambda n: [
            *(str(n.id), n.created_at[:16].replace("T", " "), n.kind, n.status, n.cabinet),
            *(n.pocket, escape(n.item), str(n.on_hand), str(n.par)),
        ],
        priority=(1, 4, 3, 3, 5, 1, 1, 2, 2),
    )


@app.command()
def recalls(
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Pockets holding recalled lots: blocked for removal until pulled."""
    from adc.controller.recalls import RecalledStock, recalled_stock

    names = cabinet_list(cabinet)
    show_rows(
        recalled_stock(report_controller(db, names), names),
        RecalledStock,
        as_json=as_json,
        as_csv=as_csv,
        title="recalled stock",
        columns=("cabinet", "pocket", "item", "GTIN", "lot", "qty", "reason"),
        cells=lambda r: [
            *(r.cabinet, r.pocket, escape(r.item), r.gtin, escape(r.lot), str(r.qty)),
            escape(r.reason),
        ],
        priority=(4, 1, 1, 3, 1, 2, 3),
    )


@app.command()
def discrepancies(
    open_only: Annotated[bool, typer.Option("--open", help="Only open ones.")] = False,
    start: OpenedFrom = None,
    end: OpenedTo = None,
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Count discrepancies: overdue first (flagged, escalated to pharmacists), then open, closed."""
    from adc.commands.discrepancy import discrepancy_table
    from adc.controller.discrepancies import DiscrepancyRow, escalate_overdue, list_discrepancies

    names = cabinet_list(cabinet)
    ctl = report_controller(db, names)
    since, until = _period(ctl, start, end) if start or end else (None, None)
    escalate_overdue(ctl)
    rows = list_discrepancies(ctl, open_only=open_only, cabinet=names, since=since, until=until)
    if emit_rows(rows, DiscrepancyRow, as_json=as_json, as_csv=as_csv):
        return
    discrepancy_table(rows, "discrepancies")


@app.command("cs-activity")
def cs_activity(
    start: PeriodFrom = None,
    end: PeriodTo = None,
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Every controlled-substance event with the running balance per pocket (DEA-style record)."""
    from adc.controller.csreport import CsEvent
    from adc.controller.csreport import cs_activity as activity

    def cells(e: CsEvent) -> list[str]:
        note = e.reason or ""
        if e.units is not None and e.kind in ("waste", "count"):
            note = f"{e.units} unit(s) {'wasted' if e.kind == 'waste' else 'counted'}" + (
                f"; {note}" if note else ""
            )
        if e.discrepancy:
            note += f" [discrepancy {e.discrepancy}]"
        when = e.at[:19].replace("T", " ")
        return [
            *(when, e.cabinet, e.pocket, escape(e.item), e.schedule, e.kind, escape(e.lot or "")),
            *(f"{e.change:+d}", str(e.balance), e.user, e.witness or "", escape(note.strip())),
        ]

    names = cabinet_list(cabinet)
    ctl = report_controller(db, names)
    since, until = _period(ctl, start, end)
    show_rows(
        activity(ctl, since, until, names),
        CsEvent,
        as_json=as_json,
        as_csv=as_csv,
        title="controlled-substance activity",
        columns=(
            *("time (UTC)", "cabinet", "pocket", "item", "C", "event", "lot", "change"),
            *("balance", "user", "witness", "note"),
        ),
        cells=cells,
        priority=(1, 6, 1, 2, 5, 1, 4, 1, 1, 2, 3, 3),
    )


# Reports of their own features add themselves to `app` (they import it from here).
from adc.commands import (  # noqa: E402,F401
    report_accountability,
    report_diversion,
    report_fleet,
    report_quarantine,
)
