"""`adc report refill|expiring|shortages|recalls`: what needs doing, as tables or --json."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated

import typer

from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("Refill list, expiring stock, shortages, recalled stock.")

CabinetFilter = Annotated[str | None, typer.Option("--cabinet", "-c", help="Only this cabinet.")]


def parse_days(text: str) -> int:
    """`30d`, `2w` or `30` → days."""
    from adc.errors import BadInput

    match = re.fullmatch(r"\s*(\d{1,4})\s*([dw]?)\s*", text.lower())
    if not match:
        raise BadInput(f"--within takes days like 30d or weeks like 2w, not {text!r}")
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


@app.command()
def refill(cabinet: CabinetFilter = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Pockets below par: critical-low first, then by drawer and pocket."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.reports import refill_list

    lines = refill_list(open_controller(db), cabinet)
    if as_json:
        print_json([line.as_json() for line in lines])
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
) -> None:
    """Stock expiring within the window (expired lots included: they block their pocket)."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.reports import expiring as expiring_lots

    lots = expiring_lots(open_controller(db), parse_days(within), cabinet)
    if as_json:
        print_json([lot.as_json() for lot in lots])
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
) -> None:
    """Shortage notifications for pharmacists (open and acknowledged; --all for every one)."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.shortages import list_shortages

    notes = list_shortages(open_controller(db), include_closed=include_closed, cabinet=cabinet)
    if as_json:
        print_json([n.as_json() for n in notes])
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
    cabinet: CabinetFilter = None, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Pockets holding recalled lots: blocked for removal until pulled."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller.recalls import recalled_stock

    rows = recalled_stock(open_controller(db), cabinet)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    table = Table(
        "cabinet", "pocket", "item", "GTIN", "lot", "qty", "reason", title="recalled stock"
    )
    for r in rows:
        table.add_row(r.cabinet, r.pocket, r.item, r.gtin, r.lot, str(r.qty), r.reason)
    console().print(table)
