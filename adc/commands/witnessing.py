"""The witness at the command line: a second person who authenticates with their own PIN.

The PIN is never an argument (it would show in the process list and the shell history): it comes
from ADC_WITNESS_PIN (scripts), else one line of stdin with `--witness-pin-stdin` (automation that
pipes it), else a hidden prompt on the terminal. A wrong PIN counts towards the witness's lock-out
like any login. The controller checks the witness again when it records (witness.py).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller

WITNESS_PIN_ENV = "ADC_WITNESS_PIN"

WitnessOption = Annotated[
    str | None,
    typer.Option(
        "--witness",
        "-w",
        help="The witness (a different pharmacist or nurse); they authenticate with their PIN.",
        show_default=False,
    ),
]
WitnessPinStdinOption = Annotated[
    bool,
    typer.Option(
        "--witness-pin-stdin",
        help=f"Read the witness's PIN from the first line of stdin (else {WITNESS_PIN_ENV}, "
        "else a hidden prompt).",
    ),
]


def read_witness_pin(name: str, from_stdin: bool) -> str:
    from adc.errors import BadInput

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise BadInput("--witness-pin-stdin: stdin is empty")
        return line.rstrip("\r\n")
    pin = os.environ.get(WITNESS_PIN_ENV)
    if pin is not None:
        return pin
    if not sys.stdin.isatty():
        raise BadInput(
            f"PIN for witness {name}: no terminal to ask on; set {WITNESS_PIN_ENV} "
            "or give --witness-pin-stdin"
        )
    return str(typer.prompt(f"PIN for witness {name}", hide_input=True))


def login_witness(ctl: Controller, name: str | None, from_stdin: bool = False) -> Actor | None:
    """The authenticated witness, or None when no witness was named."""
    from adc.controller.users import authenticate

    if not name:
        return None
    return authenticate(ctl, name, read_witness_pin(name, from_stdin))
