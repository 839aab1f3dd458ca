"""`adc user add|list|disable|unlock`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("Users, roles and PINs.")


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="technician, pharmacist, nurse, service or admin.")],
    full_name: Annotated[str, typer.Option(help="Name shown in reports.")] = "",
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Add a user. The new PIN comes from ADC_NEW_PIN, else it is asked for twice.

    On an empty database the first user, an admin, is added without logging in.
    """
    from adc.commands.access import login, open_controller, read_pin
    from adc.controller import users

    ctl = open_controller(db)
    actor = None if not users.list_users(ctl) else login(ctl, user)
    pin = read_pin(f"PIN for {name}", "ADC_NEW_PIN", confirm=True)
    view = users.add_user(ctl, actor, name, role, pin, full_name)
    console().print(f"added {view.role} {view.username}", highlight=False)


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List users with their role and whether they are disabled or locked out."""
    from rich.table import Table

    from adc.commands.access import open_controller
    from adc.controller import users

    views = users.list_users(open_controller(db))
    if as_json:
        print_json([asdict(v) for v in views])
        return
    table = Table("user", "name", "role", "status")
    for v in views:
        status = "disabled" if not v.active else "locked out" if v.locked else "active"
        table.add_row(v.username, v.full_name, v.role, status)
    console().print(table)


@app.command()
def disable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Disable a user (records stay; the user can no longer log in)."""
    from adc.commands.access import login, open_controller
    from adc.controller import users

    ctl = open_controller(db)
    view = users.disable_user(ctl, login(ctl, user), name)
    console().print(f"disabled {view.username}", highlight=False)


@app.command()
def unlock(
    name: Annotated[str, typer.Argument(help="Login name.")],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Unlock a user locked out after failed PIN attempts."""
    from adc.commands.access import login, open_controller
    from adc.controller import users

    ctl = open_controller(db)
    view = users.unlock_user(ctl, login(ctl, user), name)
    console().print(f"unlocked {view.username}", highlight=False)
