"""`adc scan BARCODE`: what a barcode says and which formulary item it is (scanner check)."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.common import DbOption, JsonOption, console, print_json


def scan(
    barcode: Annotated[
        str, typer.Argument(help="Raw DataMatrix data, (01)…(17)…(10)… or a Digital Link URI.")
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Parse a pack's barcode as a restock would, and look its GTIN up in the formulary."""
    from sqlalchemy import select

    from adc.commands.access import open_controller
    from adc.controller.gs1 import parse_scan
    from adc.controller.lots import recall_covers
    from adc.controller.models import Item, ItemGtin, Recall
    from adc.controller.stock import item_label

    parsed = parse_scan(barcode)  # it normalises every spelling of the GS separator
    ctl = open_controller(db)
    with ctl.read() as session:
        mapped = session.get(ItemGtin, parsed.gtin)
        item = session.get(Item, mapped.item_id) if mapped else None
        recalled = session.execute(
            select(Recall.reason).where(
                recall_covers(parsed.gtin, mapped.item_id if mapped else None, parsed.lot)
            )
        ).first()
    days = (parsed.expiry - ctl.today()).days
    result = {
        "gtin": parsed.gtin,
        "lot": parsed.lot,
        "expiry": parsed.expiry.isoformat(),
        "serial": parsed.serial,
        "form": parsed.form,
        "item": item_label(item) if item else None,
        "days_left": days,
        "expired": days < 0,
        "short_dated": 0 <= days <= ctl.policy.short_dated_days,
        "recalled": recalled is not None,
    }
    if as_json:
        print_json(result)
        return
    status = (
        "RECALLED"
        if result["recalled"]
        else "EXPIRED"
        if result["expired"]
        else "short-dated"
        if result["short_dated"]
        else "ok"
    )
    console().print(
        f"GTIN {parsed.gtin} lot {parsed.lot} expiry {parsed.expiry} ({days} d): "
        f"{result['item'] or 'not in the formulary'} — {status}",
        highlight=False,
        markup=False,
    )
