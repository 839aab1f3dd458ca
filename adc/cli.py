"""The `adc` command line: a thin typer app that parses, calls one function and renders.

Only typer is imported here. Each command group lives in `adc/commands/` and imports its heavy
libraries (sqlmodel, pymodbus, simpy, biip) inside the command functions, so `adc --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer

from adc.commands import (
    audit,
    cabinets,
    count,
    db,
    demo,
    diag,
    discrepancy,
    items,
    pockets,
    profile,
    recalls,
    reports,
    restock,
    scan,
    settings,
    shortages,
    sim,
    users,
    waste,
)
from adc.commands.common import FastHelpGroup
from adc.errors import AdcError


class _AdcGroup(FastHelpGroup):
    """Turns every `AdcError` raised below into one clear line and its exit code, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AdcError as err:
            from adc.commands.common import print_error

            print_error(err)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            from adc.commands.common import err_console

            err_console().print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_AdcGroup,
    name="adc",
    help="Run a hospital automated dispensing cabinet: restock, counts, scenarios, diagnostics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

app.command("demo")(demo.demo)
app.add_typer(profile.app, name="profile")
app.command("init")(db.init)
app.add_typer(users.app, name="user")
app.add_typer(items.app, name="item")
app.add_typer(cabinets.app, name="cabinet")
app.add_typer(pockets.app, name="pocket")
app.command("restock")(restock.restock)
app.add_typer(recalls.app, name="recall")
app.command("scan")(scan.scan)
app.command("count")(count.count)
app.add_typer(discrepancy.app, name="discrepancy")
app.command("waste")(waste.waste)
app.command("return")(waste.return_)
app.add_typer(reports.app, name="report")
app.add_typer(shortages.app, name="shortage")
app.add_typer(settings.app, name="settings")
app.add_typer(audit.app, name="audit")
app.add_typer(sim.app, name="sim")
app.add_typer(diag.app, name="diag")


def main() -> None:
    """Console-script entry point."""
    from adc.session.interrupts import terminate_as_interrupt

    terminate_as_interrupt()  # `kill PID` and a closed terminal clean up as Ctrl-C does
    app()


if __name__ == "__main__":
    main()
