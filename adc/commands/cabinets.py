"""`adc cabinet add|list`: cabinets registered from hardware profiles."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("Cabinets and their drawers and pockets.")


@app.command()
def add(
    profile: Annotated[str, typer.Option(help="Hardware profile: a path or a shipped name.")],
    cabinet_id: Annotated[str, typer.Option("--id", help="The cabinet's id, e.g. ICU-3.")],
    simulated: Annotated[
        bool,
        typer.Option(
            "--simulated",
            help="A virtual cabinet for practice or tests: the only kind whose master data "
            "(calibration) a simulated backend (sim:) may write.",
        ),
    ] = False,
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Register a cabinet with the drawers, pockets and device points of its profile."""
    from adc.commands.access import login, open_controller
    from adc.controller import cabinets

    ctl = open_controller(db)
    view = cabinets.add_cabinet(ctl, login(ctl, user), cabinet_id, profile, simulated=simulated)
    kind = ", simulated" if view.simulated else ""
    console().print(
        f"cabinet {view.id} ({view.profile}{kind}): {view.drawers} drawers, {view.pockets} pockets",
        highlight=False,
    )


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List registered cabinets."""
    from adc.commands.access import open_controller
    from adc.controller import cabinets

    views = cabinets.list_cabinets(open_controller(db))
    if as_json:
        print_json([asdict(v) for v in views])
        return
    if not views:
        console().print("no cabinets registered (adc cabinet add)", highlight=False)
    for v in views:
        kind = " (simulated)" if v.simulated else ""
        console().print(
            f"{v.id}{kind}: {v.profile}, {v.drawers} drawers, {v.pockets} pockets", highlight=False
        )
