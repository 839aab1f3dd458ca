"""The `adc` command line: a thin typer app that parses, calls one function and renders.

Only typer is imported here. Each command group lives in `adc/commands/` and imports its heavy
libraries (sqlmodel, pymodbus, simpy, biip) inside the command functions, so `adc --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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
    """Every failure a person can cause ends here as one line on stderr and its exit code, never a
    traceback: an `AdcError` from below; a usage error of the command line (typer would draw a
    boxed panel); a known database condition (locked, read-only: `adc.controller.db.known_failure`).
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        def make() -> Any:
            _check_text(args)
            return super(_AdcGroup, self).make_context(info_name, args, parent, **extra)

        return _one_line(make)

    def invoke(self, ctx: Any) -> Any:
        return _one_line(lambda: super(_AdcGroup, self).invoke(ctx))


def _one_line(call: Callable[[], Any]) -> Any:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        return call()
    except NoArgsIsHelpError:
        raise  # `adc` or `adc user` alone: the help, as typer prints it
    except ClickException as err:
        _print_line("error", _usage_message(err))
        raise typer.Exit(err.exit_code) from None
    except typer.Abort:  # a prompt met the end of its input
        _print_line("aborted", "no answer: the input ended; nothing more was recorded")
        raise typer.Exit(1) from None
    except typer.Exit:
        raise
    except AdcError as err:
        from adc.commands.common import print_error

        print_error(err)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        from adc.commands.common import err_console

        err_console().print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as err:
        known = _known_failure(err)
        if known is None:
            raise
        from adc.commands.common import print_error

        print_error(known)
        raise typer.Exit(known.exit_code) from None


def _check_text(args: list[str]) -> None:
    """Refuse an argument that is not text: bytes that are not UTF-8 reach Python as lone
    surrogates, which no database, file or terminal accepts."""
    from adc.errors import BadInput

    for number, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "backslashreplace").decode("ascii", "replace")[:60]
            raise BadInput(f"argument {number} is not valid UTF-8 text: {shown}") from None


def _known_failure(err: Exception) -> AdcError | None:
    """A database condition a person should read about (only when a database was opened: the
    check imports sqlalchemy), or a number too large that slipped past parsing."""
    if "adc.controller.db" in sys.modules:
        from adc.controller.db import known_failure

        return known_failure(err)
    if isinstance(err, OverflowError):
        from adc.errors import BadInput

        return BadInput(f"a number is too large ({err})")
    return None


# typer's number checks speak pydantic; a person reads these instead
_PLAIN_WORDS = [
    ("Input should be greater than or equal to", "must be at least"),
    ("Input should be less than or equal to", "must be at most"),
    ("Input should be greater than", "must be more than"),
    ("Input should be less than", "must be less than"),
    (
        "Input should be a valid integer, unable to parse string as an integer",
        "not a valid integer",
    ),
    ("Input should be a valid number, unable to parse string as a number", "not a valid number"),
    ("Input should be a finite number", "must be a finite number"),
]


def _usage_message(err: Any) -> str:
    """typer's message on one line, with where to find help: `no such option: --foo (adc restock
    --help)`. A value echoed back is cut short (an argument may be 5,000 characters)."""
    text = " ".join(err.format_message().split())
    text = text.rstrip(".")
    for theirs, ours in _PLAIN_WORDS:
        text = text.replace(theirs, ours)
    if len(text) > 300:
        text = text[:300] + "…"
    text = text[:1].lower() + text[1:]
    ctx = getattr(err, "ctx", None)
    if ctx is not None:
        text += f" ({ctx.command_path} --help)"
    return text


def _print_line(label: str, message: str) -> None:
    from rich.markup import escape

    from adc.commands.common import err_console

    err_console().print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
