"""`adc report quarantine`: stock blocked for removal until a pharmacist releases or pulls it
(a cold-chain excursion), with the reason; it adds itself to adc.commands.reports.app."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.common import DbOption, JsonOption
from adc.commands.reports import (
    CabinetList,
    CsvOption,
    app,
    cabinet_list,
    escape,
    report_controller,
    show_rows,
)


@app.command("quarantine")
def quarantine_report(
    cabinet: CabinetList = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also those released or pulled (the history).")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Quarantined stock: pocket, units, since when and why (open ones; --all: every one)."""
    from adc.controller.quarantine import QuarantineView, list_quarantines

    names = cabinet_list(cabinet)
    ctl = report_controller(db, names)
    rows = list_quarantines(ctl, names, open_only=not all_)
    show_rows(
        rows,
        QuarantineView,
        as_json=as_json,
        as_csv=as_csv,
        title="quarantined stock",
        empty="no quarantined stock" + ("" if all_ else " (open)"),
        columns=["id", "cabinet", "pocket", "units", "since", "status", "reason"],
        cells=lambda q: [
            str(q.id),
            q.cabinet,
            q.pocket,
            str(q.qty),
            q.placed_at[:16],
            q.status + (f" by {q.resolved_by}" if q.resolved_by else ""),
            escape(q.reason),
        ],
        priority=[1, 2, 1, 1, 2, 1, 1],
    )
