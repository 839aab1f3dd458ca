"""What the controller commands share: opening the controller, the system clock, logging in.

The acting user comes from `--user` (or ADC_USER); the PIN from ADC_PIN when set (scripts), else
a hidden prompt. Heavy imports stay inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adc.commands.common import resolve_db_url

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller

USER_ENV, PIN_ENV = "ADC_USER", "ADC_PIN"

UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        envvar=USER_ENV,
        help="Who is acting (the PIN is read from ADC_PIN, else asked for).",
        show_default=False,
    ),
]


class SystemClock:
    """The wall clock, injected by the CLI; the controller itself never reads it."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def open_controller(db: str | None, *, create: bool = False) -> Controller:
    from adc.controller.context import Controller
    from adc.controller.db import open_database
    from adc.controller.policy import Policy

    database = open_database(resolve_db_url(db), create=create)
    # A database being created has no settings yet: `adc init` runs on the default policy.
    return Controller(database, SystemClock(), Policy() if create else None)


def read_pin(prompt: str = "PIN", env: str = PIN_ENV, *, confirm: bool = False) -> str:
    """The PIN from `env` (scripts), else asked for on the terminal; never from an argument,
    which would show in the process list and the shell history."""
    from adc.errors import BadInput

    pin = os.environ.get(env)
    if pin is not None:
        return pin
    if not sys.stdin.isatty():
        raise BadInput(f"{prompt}: no terminal to ask on; set {env}")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def login(ctl: Controller, user: str | None) -> Actor:
    """Authenticate the acting user; a wrong PIN counts towards lock-out."""
    from adc.controller.users import authenticate
    from adc.errors import BadInput

    if not user:
        raise BadInput(f"say who is acting: --user NAME (or {USER_ENV})")
    return authenticate(ctl, user, read_pin(f"PIN for {user}"))


def recover_interrupted(ctl: Any, cabinet: str) -> None:
    """Before a command opens the cabinet: drawers an earlier process left open in the middle of
    an access are flagged for a blind recount (controller/access_log.py), and the person is told."""
    from adc.commands.common import err_console
    from adc.controller.access_log import recover_interrupted as recover

    for found in recover(ctl, cabinet):
        err_console().print(
            f"[yellow]drawer {found.drawer} flagged for a blind recount:[/] a {found.purpose} "
            f"by {found.user} was interrupted (its process ended); recover it with "
            f"adc diag recover --drawer {found.drawer}",
            highlight=False,
            soft_wrap=True,
        )
