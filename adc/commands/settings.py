"""`adc settings show|set`: site policy (short-dated window, lock-out, shortage sink, ...), and with
`--cabinet ID` one cabinet's policy (count mode, discrepancy deadline, shift ends, refill witness,
recount: adc/controller/cabinet_policy.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("Site policy values (and per-cabinet policy with --cabinet).")

CabinetSettingOption = Annotated[
    str | None,
    typer.Option(
        "--cabinet",
        "-c",
        help="A cabinet's own policy: count-mode (none|verify|blind), resolve-by (end-of-shift|12h|"
        "24h|...), shift-ends (07:00,19:00), cs-refill-witness (true|false), recount (true|false).",
        show_default=False,
    ),
]


@app.command()
def show(
    cabinet: CabinetSettingOption = None, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Show every policy value in force (the site's, or one cabinet's with --cabinet)."""
    from adc.commands.access import open_controller
    from adc.controller.settings import current_settings

    if cabinet:
        from adc.controller.cabinet_policy import read_cabinet_policy

        values = read_cabinet_policy(open_controller(db), cabinet).as_settings()
    else:
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
    cabinet: CabinetSettingOption = None,
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Change one policy value (an admin's action, audited)."""
    from adc.commands.access import login, open_controller
    from adc.controller.settings import set_setting

    ctl = open_controller(db)
    if cabinet:
        from adc.controller.cabinet_policy import parse_cabinet_setting, set_cabinet_setting

        parse_cabinet_setting(name, value)  # bad input before the PIN is asked for
        policy = set_cabinet_setting(ctl, login(ctl, user), cabinet, name, value)
        shown = policy.as_settings()[name.replace("_", "-")]
        console().print(f"cabinet {cabinet}: {name} = {shown!r}", highlight=False)
        return
    typed = set_setting(ctl, login(ctl, user), name, value)
    console().print(f"{name} = {typed!r}", highlight=False)
