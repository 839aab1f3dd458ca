"""What every command shares: consoles, the `--db` option, error rendering, JSON output.

The database URL is resolved here and nowhere else: `--db URL`, else `ADC_DATABASE_URL`, else a
SQLite file in the user's data directory.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from rich.console import Console

    from adc.errors import AdcError

DB_ENV = "ADC_DATABASE_URL"


class _PlainOption(TyperOption):
    """An option as it reads in help: a flag takes no value, so it shows no `<bool>` type."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return super().display_type_rich(ctx)


class _PlainArgument(TyperArgument):
    """An argument as it reads in a usage line: `SCENARIO`, `[NAME]` (typer 0.29 writes
    `{scenario}` for a required one)."""

    def _usage_display_name(self) -> str:
        name = self.metavar if self.metavar is not None else (self.name or "").upper()
        if not self.required:
            name = f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def _plain(param: Any) -> Any:
    if type(param) is TyperOption:
        param.__class__ = _PlainOption
    elif type(param) is TyperArgument:
        param.__class__ = _PlainArgument
    return param


class _PlainCommand(TyperCommand):
    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        return _plain(option) if option is not None else None


def plain_help(command: Any) -> Any:
    """A command (or group) whose help reads plainly (`_PlainOption`, `_PlainArgument`)."""
    for param in command.params:
        _plain(param)
    if type(command) is TyperCommand:
        command.__class__ = _PlainCommand
    return command


class FastHelpGroup(TyperGroup):
    """A typer group whose `--help` flag defaults to False instead of None, and whose help reads
    plainly (`plain_help`: no `<bool>` after a flag, `SCENARIO` in a usage line).

    typer 0.29 coerces a None flag value through a pydantic TypeAdapter, which imports pydantic
    (~60 ms) on every sub-command call, `--help` included; a bool default skips that path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return _plain(option) if option is not None else None

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:  # typer's completion options: flags defaulting to None, as --help
            if isinstance(param, TyperOption) and param.is_flag and param.default is None:
                param.default = False
            _plain(param)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return plain_help(command) if command is not None else None


def command_group(help: str) -> typer.Typer:
    """A sub-command group of `adc` (use this, not `typer.Typer`, so `--help` stays fast)."""
    return typer.Typer(cls=FastHelpGroup, help=help, no_args_is_help=True)


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="Database URL: sqlite:///FILE, or a postgresql+psycopg:// URL. "
        "Default: a SQLite file in the user's data directory.",
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

# Bounds of the numbers a person can type. Every integer that reaches the database is checked
# against one of these when the command line is parsed (typer's `min=`/`max=`, or `parse_count`),
# so an oversized number is one line naming its option, never an OverflowError from the driver.
ID_MAX = 2_147_483_647  # a record id: PostgreSQL's INTEGER (SQLite's holds 64 bits)
QTY_MAX = 100_000  # units in one count, waste, return or pocket setting
SEED_MAX = 2**32 - 1  # a simulation seed
DAYS_MAX = 3660  # a simulated run: ten years
TEXT_MAX = 500  # characters of a recorded reason or note


def id_option(*decls: str, help: str) -> Any:
    """A record id option: a whole number from 1 to ID_MAX."""
    return typer.Option(*decls, min=1, max=ID_MAX, help=help, show_default=False)


def id_argument(help: str) -> Any:
    """A record id argument: a whole number from 1 to ID_MAX."""
    return typer.Argument(min=1, max=ID_MAX, help=help, show_default=False)


def qty_option(*decls: str, help: str, min: int = 1) -> Any:
    """A number of units: from `min` (1, or 0 for a count) to QTY_MAX."""
    return typer.Option(*decls, min=min, max=QTY_MAX, help=help, show_default=False)


def parse_count(text: str, where: str) -> int:
    """A count typed as text (`POCKET=N`, a prompt): ASCII digits only, 0 to QTY_MAX.

    `str.isdigit()` is not enough: it accepts superscripts and other scripts' digits, some of
    which `int()` then refuses.
    """
    from adc.errors import BadInput

    value = text.strip()
    if not value or not value.isascii() or not value.isdigit():
        raise BadInput(
            f"{where}: a count is a whole number from 0 to {QTY_MAX}, got {_short(value)!r}"
        )
    number = int(value)
    if number > QTY_MAX:
        raise BadInput(f"{where}: a count is at most {QTY_MAX}, got {_short(value)}")
    return number


def require_text(value: str, option: str, *, max_len: int = TEXT_MAX) -> str:
    """A reason or note that will be recorded: not blank, printable, at most `max_len` characters.
    Returns it stripped."""
    from adc.errors import BadInput

    text = value.strip()
    if not text:
        raise BadInput(f"{option} cannot be empty or blank: say why")
    if len(text) > max_len:
        raise BadInput(f"{option} is {len(text)} characters long; at most {max_len}")
    if not text.isprintable():
        raise BadInput(f"{option} contains control or invisible characters: {_short(text)!r}")
    return text


def _short(text: str, limit: int = 40) -> str:
    """A value as it may be echoed in an error line: at most `limit` characters."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


SIMULATED_BACKENDS = {"sim"}  # backend URI schemes whose cabinet is a simulation, not hardware


def is_simulated(uri: str | None) -> bool:
    """Whether a `--backend` URI names a simulated cabinet: what it measures is the model's own
    value, which the controller writes to no real cabinet's master data
    (`controller.cabinets.check_measurement_source`)."""
    scheme, _, _ = (uri or "").partition(":")
    return scheme in SIMULATED_BACKENDS


def user_data_dir() -> Path:
    """Where adc keeps its default database: $ADC_HOME, else the XDG data directory."""
    if home := os.environ.get("ADC_HOME"):
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "adc"


def resolve_db_url(db: str | None) -> str:
    """The one place that decides which database a command talks to."""
    if db:
        return db
    path = user_data_dir() / "adc.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@cache
def console() -> Console:
    from rich.console import Console

    return Console()


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def error_label(err: AdcError) -> str:
    """What kind of failure it is: "check failed" (a verification found a problem, e.g. a broken
    audit chain), "refused" (a rule said no, nothing changed), else "error" (bad input)."""
    from adc.errors import CheckFailed

    if isinstance(err, CheckFailed):
        return "check failed"
    return "refused" if err.exit_code == 1 else "error"


def print_error(err: AdcError) -> None:
    """One line naming what is wrong (and where), then any details, on stderr."""
    from rich.markup import escape

    con = err_console()
    label = error_label(err)
    con.print(f"[bold red]{label}:[/] {escape(err.message)}", highlight=False, soft_wrap=True)
    for line in err.details:
        con.print(f"  {escape(line)}", highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """JSON on stdout, bypassing rich so that it can be piped."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
