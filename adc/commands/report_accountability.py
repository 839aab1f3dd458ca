"""`adc report accountability`: a study's drug accountability record (DARF style).

The only report that shows subject ids: it needs a login (pharmacists and the protocol's
authorized users), and every view is audited with who saw which protocol and lot, in which form.
"""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, console, print_json
from adc.commands.reports import CsvOption, app, emit_rows


@app.command("accountability")
def accountability(
    protocol: Annotated[str, typer.Option("--protocol", help="The study's protocol number.")],
    lot: Annotated[
        str | None, typer.Option("--lot", help="Only this lot.", show_default=False)
    ] = None,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """A study's accountability record: receipts, dispenses, returns, running balance per lot."""
    from adc.commands.access import login, open_controller
    from adc.controller.study_report import Row
    from adc.controller.study_report import accountability as record_of
    from adc.errors import BadInput

    if as_json and as_csv:
        raise BadInput("choose one of --json and --csv")
    ctl = open_controller(db)
    actor = login(ctl, user)
    output = "json" if as_json else "csv" if as_csv else "table"
    record = record_of(ctl, actor, protocol, lot=lot.strip() if lot else None, output=output)
    if as_json:
        print_json(record.as_json())
        return
    if emit_rows(record.rows, Row, as_json=False, as_csv=as_csv):
        return
    from rich.markup import escape

    from adc.commands.fit import print_fitted

    out = console()
    title = f"accountability record {record.protocol}" + (f", lot {lot}" if lot else "")
    if not record.rows:
        out.print(f"no movements on record for {record.protocol}" + (f" lot {lot}" if lot else ""))
    else:
        columns = ("date", "kind", "pocket", "lot", "expiry", "subject", "dose", "in", "out")
        columns += ("returned", "balance", "by", "record")
        priority = (1, 1, 3, 1, 6, 2, 4, 2, 2, 3, 1, 5, 7)  # at 80 columns: the DARF's core
        cells = [
            [
                r.at[:16].replace("T", " "),
                escape(r.kind),
                escape(f"{r.cabinet}/{r.pocket}"),
                escape(r.lot),
                escape(r.expiry),
                escape(r.subject or ""),
                escape(r.dose or ""),
                str(r.qty_in or ""),
                str(r.qty_out or ""),
                str(r.qty_returned or ""),
                str(r.balance),
                escape(r.recorder),
                escape(r.record),
            ]
            for r in record.rows
        ]
        print_fitted(out, columns, cells, title=title, priority=priority)
    for b in record.lots:
        mark = "reconciles" if b.reconciled else "[bold red]DOES NOT RECONCILE[/]"
        out.print(
            f"lot {b.lot} ({b.item}, expires {b.expiry}): balance {b.balance}, on hand "
            f"{b.on_hand} {mark}",
            highlight=False,
        )
    out.print(f"[dim]this view is audited (entry {record.audit_seq})[/]", highlight=False)
