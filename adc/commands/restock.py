"""`adc restock`: the technician's restock session, at the terminal or from a script.

This module only wires things together; the session logic lives in `adc/session/`:
- the backend is opened by URI (`--backend`), else through the buses of the cabinet's registered
  hardware profile (the real drivers: e.g. against `adc sim serve` or the real cabinet);
- the hands that open the pocket are chosen with the backend, here and only here: simulated hands
  where the backend holds a virtual cabinet in this process (`sim:`), none otherwise (a person
  opens the real drawer and the switches tell);
- the waiter too: simulated time runs instantly in a script, keeps pace with the wall clock for a
  person at the terminal, and is the wall clock itself for anything on a wire.

Controlled pockets: the session asks for the count on access (blind) once the pocket is open;
where the cabinet's policy (`cs-refill-witness`) wants a witness for controlled refills, the
witness is named with `--witness USER` and types their PIN (commands/witnessing.py); without one
the session is refused before anything is unlocked (exit 1).

Bad input (unknown cabinet or user, a script with errors, `--json` without a script) is reported
before anything is unlocked or recorded, with exit code 2.

A database that cannot take a step (busy past the lock wait, or gone) is one line and the line is
kept: the terminal offers to try again, a script tries again a few times (adc/session/script.py);
a session that ends with an access not on record exits 1, and the next start at the cabinet
flags that drawer for a blind recount.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adc.commands.access import PIN_ENV, UserOption
from adc.commands.common import DbOption, JsonOption, console
from adc.commands.witnessing import WitnessOption, WitnessPinStdinOption

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller
    from adc.drivers.base import CabinetDriver
    from adc.session.hands import Hands
    from adc.session.runner import Runner


def restock(
    cabinet: Annotated[str, typer.Option("--cabinet", "-c", help="The cabinet to restock.")],
    user: UserOption = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="sim:PROFILE (or sim: for the cabinet's own profile) for the in-process virtual "
            "cabinet with simulated hands; modbus-tcp://HOST:PORT, profile:... for the real "
            "drivers. Default: the buses of the cabinet's hardware profile.",
            show_default=False,
        ),
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option(
            "--script",
            help="Run a TOML script of scans and quantities instead of asking at the terminal.",
            show_default=False,
        ),
    ] = None,
    witness: WitnessOption = None,
    witness_pin_stdin: WitnessPinStdinOption = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Restock a cabinet: refill list, scan, load the unlocked pocket, close, record.

    At the terminal: scan each pack (the scanner types it; type <GS> for the separator).

    Commands: skip = out of stock (pharmacists notified), quit = end, help.

    With --script FILE the same session runs from a TOML file, printed as text or, with --json, as JSON lines. The PIN comes from ADC_PIN if set, else a hidden prompt.

    Controlled pockets are counted blind when opened (a script gives `count = N`); where the cabinet wants a witness for controlled refills, --witness USER (PIN from ADC_WITNESS_PIN, --witness-pin-stdin, else a hidden prompt).
    """
    from adc.commands.access import open_controller
    from adc.errors import BadInput

    if as_json and script is None:
        raise BadInput("--json needs --script FILE: an interactive session has no JSON output")
    parsed = None
    if script is not None:
        from adc.session.script import parse_script

        parsed = parse_script(script)
    elif not sys.stdin.isatty():
        raise BadInput("no terminal to ask on: run a scripted session with --script FILE")
    ctl = open_controller(db)
    profile_ref = _check_cabinet_and_user(ctl, cabinet, user)
    assert user is not None
    if parsed is not None:
        from adc.session.script import check_against

        check_against(parsed, ctl, cabinet)
    if not witness:
        _check_witness_needed(ctl, cabinet, parsed)
    driver, uri = _open_driver(backend, profile_ref)
    try:
        _mirror_records(ctl, driver, cabinet)
        hands = _hands_for(driver)
        if parsed is not None:
            code = _scripted(
                ctl, driver, uri, hands, cabinet, user, parsed, as_json, witness, witness_pin_stdin
            )
        else:
            code = _interactive(ctl, driver, uri, hands, cabinet, user, witness, witness_pin_stdin)
    finally:
        driver.close()
    if code:
        raise typer.Exit(code)


def _check_cabinet_and_user(ctl: Controller, cabinet: str, user: str | None) -> str:
    """The cabinet's profile (path or name), after checking that cabinet and user exist."""
    from adc.commands.access import USER_ENV
    from adc.controller.cabinets import get_cabinet
    from adc.controller.users import list_users
    from adc.errors import BadInput

    with ctl.read() as session:
        row = get_cabinet(session, cabinet)
        profile_ref = row.profile_path or row.profile_name
        if not Path(profile_ref).exists():
            profile_ref = row.profile_name
    if not user:
        raise BadInput(f"say who is restocking: --user NAME (or {USER_ENV})")
    if user.strip().lower() not in {v.username for v in list_users(ctl)}:
        raise BadInput(f"unknown user {user!r}")
    return profile_ref


def _check_witness_needed(ctl: Controller, cabinet: str, script: object) -> None:
    """Refused (exit 1) where the cabinet's policy wants a witness for controlled refills and the
    session may reach a controlled pocket (a script naming only other pockets does not)."""
    from adc.controller.cabinet_policy import read_cabinet_policy
    from adc.controller.reports import refill_list
    from adc.errors import Refused
    from adc.session.script import Script

    if not read_cabinet_policy(ctl, cabinet).cs_refill_witness:
        return
    controlled = [line.pocket for line in refill_list(ctl, cabinet) if line.schedule]
    if isinstance(script, Script) and all(line.pocket for line in script.lines):
        named = {line.pocket for line in script.lines if line.skip is None}
        controlled = [p for p in controlled if p in named]
    if controlled:
        raise Refused(
            f"cabinet {cabinet} needs a witness to refill controlled substances "
            f"({', '.join(controlled)}): give --witness USER (a pharmacist or nurse)"
        )


def _open_driver(backend: str | None, profile_ref: str) -> tuple[CabinetDriver, str]:
    from adc.drivers.registry import open_backend
    from adc.profiles import load_profile, resolve_profile_path

    profile = load_profile(resolve_profile_path(profile_ref))
    uri = backend or "profile:"
    driver = open_backend(uri, profile)
    shown = uri if uri not in ("sim:", "profile:") else f"{uri}{profile.name}"
    return driver, shown


def _mirror_records(ctl: Controller, driver: CabinetDriver, cabinet: str) -> None:
    """A virtual cabinet in this process starts with what the records say it holds."""
    from adc.controller.contents import recorded_contents
    from adc.session.simhands import mirror_records

    if getattr(driver, "cabinet", None) is not None:
        mirror_records(driver, recorded_contents(ctl, cabinet))


def _hands_for(driver: CabinetDriver) -> Hands:
    """Simulated hands where the backend holds a virtual cabinet in-process, else none."""
    from adc.session.hands import NoHands
    from adc.session.simhands import sim_hands_for

    return sim_hands_for(driver) or NoHands()


def _scripted(
    ctl: Controller,
    driver: CabinetDriver,
    uri: str,
    hands: Hands,
    cabinet: str,
    user: str,
    script: object,
    as_json: bool,
    witness: str | None = None,
    witness_pin_stdin: bool = False,
) -> int:
    from adc.commands.access import login
    from adc.commands.witnessing import login_witness
    from adc.controller.restock import begin_restock
    from adc.session.events import Event
    from adc.session.interrupts import deferred_sigint
    from adc.session.runner import Runner
    from adc.session.script import Script, run_script
    from adc.session.text import describe
    from adc.session.timing import SessionClock, waiter_for

    assert isinstance(script, Script)
    waiter = waiter_for(driver)
    ctl.clock = SessionClock(waiter)
    actor = login(ctl, user)
    witness_actor = login_witness(ctl, witness, witness_pin_stdin)
    session = begin_restock(ctl, driver, cabinet, actor, witness=witness_actor)
    out = console()

    def emit(event: Event) -> None:
        if as_json:
            sys.stdout.write(event.json_line() + "\n")
            sys.stdout.flush()
            return
        text = describe(event)
        if text:
            out.print(text, highlight=False, soft_wrap=True)

    runner = Runner(session, waiter, hands, emit, backend=uri, critical=deferred_sigint)
    try:
        return run_script(runner, script)
    except BaseException as stop:
        _leave_safe(runner, stop)
        if isinstance(stop, KeyboardInterrupt):
            return 130
        raise


def _interactive(
    ctl: Controller,
    driver: CabinetDriver,
    uri: str,
    hands: Hands,
    cabinet: str,
    user: str,
    witness: str | None = None,
    witness_pin_stdin: bool = False,
) -> int:
    from adc.commands.witnessing import login_witness
    from adc.controller.restock import begin_restock
    from adc.session.interrupts import deferred_sigint
    from adc.session.runner import Runner
    from adc.session.terminal import Screen, TerminalSession
    from adc.session.timing import SessionClock, interactive_waiter

    waiter = interactive_waiter(driver)
    ctl.clock = SessionClock(waiter)
    actor = _terminal_login(ctl, user)
    witness_actor = login_witness(ctl, witness, witness_pin_stdin)
    session = begin_restock(ctl, driver, cabinet, actor, witness=witness_actor)
    out = console()
    runner = Runner(session, waiter, hands, lambda event: None, uri, critical=deferred_sigint)
    screen = Screen(runner, out)
    runner.emit = screen.listen
    terminal = TerminalSession(runner, screen)
    try:
        terminal.run()
    except BaseException as stop:
        what = "interrupted" if isinstance(stop, KeyboardInterrupt) else "stopped by an error"
        out.print(f"\n[yellow]{what}:[/] leaving the cabinet safe…")
        _leave_safe(runner, stop)
        screen.clear = False
        screen.draw()
        if isinstance(stop, KeyboardInterrupt):
            return 130
        raise
    return 1 if runner.pending else 0  # an access the database did not take: flagged next start


def _leave_safe(runner: Runner, stop: BaseException) -> None:
    """After Ctrl-C or an unexpected error mid-line: relock, record what is known, or flag.

    A second Ctrl-C cannot cut this short; a failure here is reported but does not hide the
    error that stopped the session.
    """
    from adc.errors import AdcError
    from adc.session.interrupts import ignored_sigint

    why = "interrupted" if isinstance(stop, KeyboardInterrupt) else "stopped by an error"
    with ignored_sigint():
        try:
            runner.interrupt(why)
            runner.finish()
        except AdcError as err:
            console().print(f"[red]clean-up failed:[/] {err.message}", highlight=False)


def _terminal_login(ctl: Controller, user: str) -> Actor:
    """Ask for the PIN (hidden) until it is right or the account locks (then Refused, exit 1)."""
    from adc.controller.users import authenticate
    from adc.errors import BadInput

    pin = os.environ.get(PIN_ENV)
    if pin is not None:
        return authenticate(ctl, user, pin)
    out = console()
    for _ in range(ctl.policy.max_pin_failures):
        pin = typer.prompt(f"PIN for {user}", hide_input=True, default="", show_default=False)
        try:
            return authenticate(ctl, user, pin)
        except BadInput as err:
            out.print(f"[red]{err.message}[/]", highlight=False)
    raise BadInput(f"too many wrong PINs for {user}")
