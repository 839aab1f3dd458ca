"""`adc item import|list`: the formulary."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("The formulary: items, NDCs, GTINs.")


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with the columns name, strength, form, ndc, gtins, schedule, high_alert, "
            "unit_weight_g."
        ),
    ],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Import items from a CSV; if any row is bad, every bad row is listed and nothing is imported."""
    from adc.commands.access import login, open_controller
    from adc.controller import formulary

    ctl = open_controller(db)
    result = formulary.import_items(ctl, login(ctl, user), file)
    console().print(
        f"{file}: {result.added} added, {result.updated} updated, {result.unchanged} unchanged",
        highlight=False,
    )


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the formulary."""
    from rich.markup import escape

    from adc.commands.access import open_controller
    from adc.commands.fit import print_fitted
    from adc.controller import formulary

    views = formulary.list_items(open_controller(db))
    if as_json:
        print_json([asdict(v) for v in views])
        return
    columns = ("id", "item", "NDC", "GTINs", "CS", "high alert", "unit g")
    cells = [
        [
            str(v.id),
            escape(f"{v.name} {v.strength} {v.form}"),
            escape(v.ndc or ""),
            "\n".join(v.gtins),
            escape(str(v.schedule or "")),
            "yes" if v.high_alert else "",
            f"{v.unit_weight_g:g}" if v.unit_weight_g else "",
        ]
        for v in views
    ]
    print_fitted(console(), columns, cells, priority=(2, 1, 4, 3, 2, 5, 6))
