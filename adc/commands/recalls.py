"""`adc recall add|import`: recalled lots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, command_group, console

app = command_group(
    "Recalls: a product's lot (GTIN or NDC + lot), blocking every pocket that holds it."
)


@app.command()
def add(
    lot: Annotated[str, typer.Option(help="Recalled lot (case and surrounding spaces ignored).")],
    gtin: Annotated[
        str | None,
        typer.Option(help="GTIN of the recalled product: the recall covers all its GTINs."),
    ] = None,
    ndc: Annotated[
        str | None, typer.Option(help="NDC of the recalled product, instead of --gtin.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, as the notice says.")] = "",
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Record a recall: pockets holding the lot, under any GTIN, are blocked until pulled."""
    from adc.commands.access import login, open_controller
    from adc.controller import recalls

    ctl = open_controller(db)
    blocked = recalls.add_recall(ctl, login(ctl, user), gtin, lot, reason, ndc=ndc)
    console().print(
        f"recall recorded; {len(blocked)} pocket(s) blocked"
        + (f": {', '.join(blocked)}" if blocked else ""),
        highlight=False,
    )


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="CSV with columns gtin (or ndc), lot and optionally reason.")
    ],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Import recalls from a CSV; if any row is bad, every bad row is listed and nothing is imported."""
    from adc.commands.access import login, open_controller
    from adc.controller import recalls

    ctl = open_controller(db)
    result = recalls.import_recalls(ctl, login(ctl, user), file)
    console().print(
        f"{file}: {result.added} recall(s) added, {result.already} known already; "
        f"{len(result.blocked_pockets)} pocket(s) blocked",
        highlight=False,
    )
