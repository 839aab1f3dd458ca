"""`adc settings show|set`: site policy (short-dated window, lock-out, shortage sink, ...)."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("Site policy values.")


@app.command()
def show(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show every policy value in force."""
    from adc.commands.access import open_controller
    from adc.controller.settings import current_settings

    values = current_settings(open_controller(db))
    if as_json:
        print_json(values)
        return
    for key, value in values.items():
        console().print(f"{key} = {value!r}", highlight=False)


@app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="Setting, e.g. short-dated-days or shortage-sink.")],
    value: Annotated[str, typer.Argument(help="New value.")],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Change one policy value (an admin's action, audited)."""
    from adc.commands.access import login, open_controller
    from adc.controller.settings import set_setting

    ctl = open_controller(db)
    typed = set_setting(ctl, login(ctl, user), name, value)
    console().print(f"{name} = {typed!r}", highlight=False)
