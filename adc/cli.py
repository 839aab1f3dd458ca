"""The `adc` command line: a thin typer app that parses, calls one function and renders.

Only typer is imported here. Each command group lives in `adc/commands/` and imports its heavy
libraries (sqlmodel, pymodbus, simpy, biip) inside the command functions, so `adc --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from adc.commands.common import FastHelpGroup, plain_help
from adc.errors import AdcError

# Every command of `adc`, in the order `adc --help` lists them: name, "module:attribute" (a
# command function, or a sub-group's `app`), and the line `adc --help` shows for it. Modules are
# imported only when their command runs (or its help is asked for), so `adc --help` imports none
# of them; tests/test_cli_basics.py checks each line against the command's own help.
COMMANDS: list[tuple[str, str, str]] = [
    (
        "demo",
        "adc.commands.demo:demo",
        "The main job on a virtual cabinet: hardware, restock with refusals, recall, reports.",
    ),
    (
        "init",
        "adc.commands.db:init",
        "Create the database, or upgrade it to this adc's schema (safe to run again).",
    ),
    (
        "restock",
        "adc.commands.restock:restock",
        "Restock a cabinet: refill list, scan, load the unlocked pocket, close, record.",
    ),
    (
        "scan",
        "adc.commands.scan:scan",
        "Parse a pack's barcode as a restock would, and look its GTIN up in the formulary.",
    ),
    (
        "count",
        "adc.commands.count:count",
        "Cycle count: a blind count of each selected pocket; differences open discrepancies.",
    ),
    (
        "waste",
        "adc.commands.waste:waste",
        "Record units wasted (a controlled substance needs a witness).",
    ),
    (
        "return",
        "adc.commands.waste:return_",
        "Return units of a removal to the cabinet's return bin, or clear the bin out.",
    ),
    ("profile", "adc.commands.profile:app", "Validate, show and describe hardware profiles."),
    ("user", "adc.commands.users:app", "Users, roles and PINs."),
    ("item", "adc.commands.items:app", "The formulary: items, NDCs, GTINs."),
    ("cabinet", "adc.commands.cabinets:app", "Cabinets and their drawers and pockets."),
    (
        "pocket",
        "adc.commands.pockets:app",
        "Pockets: assigned item, par, critical-low, max, stock.",
    ),
    (
        "recall",
        "adc.commands.recalls:app",
        "Recalls: a product's lot (GTIN or NDC + lot), blocking every pocket that holds it.",
    ),
    (
        "discrepancy",
        "adc.commands.discrepancy:app",
        "Count discrepancies: list them, resolve them with a witness.",
    ),
    (
        "report",
        "adc.commands.reports:app",
        "Refill list, expiring stock, shortages, recalled stock, discrepancies, "
        "controlled-substance activity, diversion scores, quarantined stock, study accountability,"
        " fleet status.",
    ),
    (
        "quarantine",
        "adc.commands.quarantine:app",
        "Quarantined stock: list it, release it or pull it (pharmacists).",
    ),
    (
        "shortage",
        "adc.commands.shortages:app",
        "Shortage notifications: delivery and acknowledgement.",
    ),
    (
        "settings",
        "adc.commands.settings:app",
        "Site policy values (and per-cabinet policy with --cabinet).",
    ),
    ("audit", "adc.commands.audit:app", "The audit trail."),
    (
        "study",
        "adc.commands.study:app",
        "Investigational drugs: studies, their items, authorized users.",
    ),
    (
        "sim",
        "adc.commands.sim:app",
        "Run the virtual cabinet: serve it on the wire, or run scenarios of simulated ward "
        "activity.",
    ),
    (
        "diag",
        "adc.commands.diag:app",
        "Service diagnostics: find buses and devices, cycle locks, check and calibrate sensors, "
        "watch the cabinet, recover a failed drawer.",
    ),
    (
        "station",
        "adc.commands.station:app",
        "The cabinet station: own the hardware, watch the cabinet, serve clients.",
    ),
]
_WHERE = {name: where for name, where, _ in COMMANDS}
_LISTED = {name: line for name, _, line in COMMANDS}


def load_command(name: str) -> Any:
    """The click command of one `adc` command, built from its module (imported now)."""
    import importlib

    module, _, attr = _WHERE[name].partition(":")
    target = getattr(importlib.import_module(module), attr)
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)  # completion is `adc --install-completion`
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return plain_help(command)


class _LazyCommands(dict):  # type: ignore[type-arg]
    """`adc`'s sub-commands by name, each built the first time it is looked up by value."""

    def __init__(self) -> None:
        super().__init__((name, None) for name in _WHERE)

    def __getitem__(self, name: str) -> Any:
        command = super().__getitem__(name)
        if command is None:
            command = load_command(name)
            super().__setitem__(name, command)
        return command

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        if name not in self:
            return default
        return self[name]

    def values(self) -> Any:  # type: ignore[override]
        return [self[name] for name in self]

    def items(self) -> Any:  # type: ignore[override]
        return [(name, self[name]) for name in self]

    def loaded(self, name: str) -> Any:
        return super().get(name)


class _AdcGroup(FastHelpGroup):
    """Every failure a person can cause ends here as one line on stderr and its exit code, never a
    traceback: an `AdcError` from below; a usage error of the command line (typer would draw a
    boxed panel); a known database condition (locked, read-only: `adc.controller.db.known_failure`).

    Its sub-commands are loaded lazily (`COMMANDS`): listing them (`adc --help`, completion of a
    command name) shows each one's line without importing its module; running one, or its help,
    imports just that module.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands()
        self._resolving = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(_WHERE)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _WHERE:
            return None
        if self._resolving:
            return self.commands[cmd_name]
        loaded = self.commands.loaded(cmd_name)
        if loaded is not None:
            return loaded
        from typer.core import TyperCommand

        return TyperCommand(cmd_name, help=_LISTED[cmd_name])  # its line in a listing

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        self._resolving = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._resolving = False

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


def _version(value: bool) -> None:
    if value:
        from adc import __version__

        print(f"adc {__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=_AdcGroup,
    name="adc",
    help="Run a hospital automated dispensing cabinet: restock, counts, scenarios, diagnostics.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _adc(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Show adc's version and exit."
        ),
    ] = False,
) -> None:
    pass


def _quiet_library_logs() -> None:
    """A library's own log records never reach the person as a traceback.

    SQLAlchemy logs "Error closing cursor" with the traceback when a stop signal lands inside a
    row fetch (the command itself then cleans up and exits 130); with no handler configured,
    Python's last-resort handler would print it on stderr. What a person needs to know comes
    from our own error lines."""
    import logging

    quiet = logging.getLogger("sqlalchemy")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False


def main() -> None:
    """Console-script entry point."""
    from adc.session.interrupts import terminate_as_interrupt

    terminate_as_interrupt()  # `kill PID` and a closed terminal clean up as Ctrl-C does
    _quiet_library_logs()
    app(prog_name="adc")  # `python -m adc` too: its usage lines, its completion variable


if __name__ == "__main__":
    main()
