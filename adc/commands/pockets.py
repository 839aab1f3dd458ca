"""`adc pocket assign|list`: which item a pocket holds, and its levels."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import (
    DbOption,
    JsonOption,
    command_group,
    console,
    print_json,
    qty_option,
)

app = command_group("Pockets: assigned item, par, critical-low, max, stock.")

CabinetOption = Annotated[str, typer.Option("--cabinet", "-c", help="Cabinet id.")]


@app.command()
def assign(
    pocket: Annotated[str, typer.Argument(help="Pocket id, e.g. D1-P2.")],
    cabinet: CabinetOption,
    item: Annotated[str, typer.Option(help="Item id, NDC or GTIN.")],
    par: Annotated[int, qty_option("--par", min=0, help="Desired quantity after a refill.")],
    critical_low: Annotated[
        int,
        qty_option(
            "--critical-low", min=0, help="At or below this: urgent refill, pharmacists notified."
        ),
    ],
    max_qty: Annotated[int, qty_option("--max", min=0, help="Most units the pocket may hold.")],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Assign an item and its levels to a pocket (another item only when the pocket is empty)."""
    from adc.commands.access import login, open_controller
    from adc.controller import cabinets

    ctl = open_controller(db)
    done = cabinets.assign_pocket(
        ctl,
        login(ctl, user),
        cabinet,
        pocket,
        item,
        par=par,
        critical_low=critical_low,
        max_qty=max_qty,
    )
    console().print(
        f"{cabinet}/{done.pocket}: {done.item}, par {done.par}, critical-low {done.critical_low}, "
        f"max {done.max}",
        highlight=False,
    )


@app.command("list")
def list_(cabinet: CabinetOption, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every pocket of a cabinet: item, on-hand, levels, earliest expiry, block."""
    from rich.markup import escape

    from adc.commands.access import open_controller
    from adc.commands.fit import print_fitted
    from adc.controller import reports
    from adc.controller.cabinets import get_cabinet

    ctl = open_controller(db)
    with ctl.read() as session:
        get_cabinet(session, cabinet)
    views = reports.pockets(ctl, cabinet)
    if as_json:
        print_json([v.as_json() for v in views])
        return
    columns = ("pocket", "kind", "sensor", "item", "on hand", "par", "crit", "max", "expires")
    columns += ("blocked",)
    priority = (1, 8, 9, 1, 2, 4, 5, 6, 3, 2)  # at 80 columns: which pocket, what, how many, block
    cells = [
        [
            escape(v.pocket),
            escape(v.kind),
            escape(v.sensor),
            escape(v.item or ""),
            str(v.on_hand),
            str(v.par),
            str(v.critical_low),
            str(v.max),
            v.earliest_expiry or "",
            escape(v.blocked or ""),
        ]
        for v in views
    ]
    print_fitted(console(), columns, cells, priority=priority)
