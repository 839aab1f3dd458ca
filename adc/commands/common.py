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
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.console import Console

    from adc.errors import AdcError

DB_ENV = "ADC_DATABASE_URL"


class FastHelpGroup(TyperGroup):
    """A typer group whose `--help` flag defaults to False instead of None.

    typer 0.29 coerces a None flag value through a pydantic TypeAdapter, which imports pydantic
    (~60 ms) on every sub-command call, `--help` included; a bool default skips that path.
    """

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


def command_group(help: str) -> typer.Typer:
    """A sub-command group of `adc` (use this, not `typer.Typer`, so `--help` stays fast)."""
    return typer.Typer(cls=FastHelpGroup, help=help, no_args_is_help=True)


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="Database URL (sqlite:///FILE or postgresql+psycopg://...). "
        "Default: a SQLite file in the user's data directory.",
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


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
