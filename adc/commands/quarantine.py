"""`adc quarantine list|release|pull|limits`: stock the station quarantined (a fridge out of its
range longer than the allowed excursion), and the pharmacist's decision on it.

`release` (the stock is fit for use; a note says why) and `pull` (the quarantined lots written off as a
pull; what was taken out is counted, a difference opens a discrepancy) are a pharmacist's:
anyone else is refused (exit 1) and the refusal is audited. `limits` shows or sets a
temperature-watched pocket's range and allowed excursion (`MIN:MAX:MINUTES`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import (
    DbOption,
    JsonOption,
    command_group,
    console,
    id_argument,
    print_json,
)
from adc.commands.reports import CabinetList

app = command_group("Quarantined stock: list it, release it or pull it (pharmacists).")

NoteOption = Annotated[str, typer.Option("--note", help="Why (kept with the decision).")]


@app.command("list")
def list_(
    cabinet: CabinetList = None,
    all_: Annotated[bool, typer.Option("--all", help="Also released and pulled ones.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Quarantines open now (--all: every one), with the reason and the lots held."""
    from adc.commands.reports import cabinet_list, report_controller
    from adc.controller.quarantine import list_quarantines

    cabinets = cabinet_list(cabinet)
    ctl = report_controller(db, cabinets)  # a misspelt cabinet is an error, not an empty list
    rows = list_quarantines(ctl, cabinets, open_only=not all_)
    if as_json:
        print_json([q.as_json() for q in rows])
        return
    out = console()
    if not rows:
        out.print("no quarantined stock" + ("" if all_ else " (open)"), highlight=False)
    for q in rows:
        lots = ", ".join(f"{lot['lot']} ({lot['expiry']}) x{lot['qty']}" for lot in q.lots)
        state = q.status + (f" by {q.resolved_by} at {q.resolved_at}" if q.resolved_by else "")
        out.print(
            f"#{q.id} {q.cabinet} {q.pocket}: {q.qty} units, {state}, since {q.placed_at}\n"
            f"    {q.reason}\n    lots: {lots}" + (f"\n    note: {q.note}" if q.note else ""),
            highlight=False,
            markup=False,
        )


@app.command()
def release(
    quarantine_id: Annotated[int, id_argument("Quarantine id (see adc quarantine list).")],
    note: NoteOption,
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """A pharmacist releases the stock for use (removal allowed again)."""
    from adc.commands.access import login, open_controller
    from adc.controller.quarantine import release as do_release

    ctl = open_controller(db)
    done = do_release(ctl, login(ctl, user), quarantine_id, note)
    console().print(
        f"quarantine {done.id} released: pocket {done.pocket} of {done.cabinet} may be used again",
        highlight=False,
    )


@app.command()
def pull(
    quarantine_id: Annotated[int, id_argument("Quarantine id (see adc quarantine list).")],
    removed: Annotated[
        int, typer.Option("--removed", min=0, help="Units taken out of the pocket (counted).")
    ],
    note: NoteOption = "",
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """A pharmacist pulls the stock: the quarantined lots written off (a difference: discrepancy)."""
    from adc.commands.access import login, open_controller
    from adc.controller.quarantine import pull as do_pull

    ctl = open_controller(db)
    done = do_pull(ctl, login(ctl, user), quarantine_id, removed, note)
    q, moved = done.quarantine, done.movement
    console().print(
        f"quarantine {q.id} pulled: {-moved.qty} units written off from pocket {q.pocket}, "
        f"{moved.on_hand} on hand"
        + (f"; discrepancy {moved.discrepancy_id} opened" if moved.discrepancy_id else ""),
        highlight=False,
    )


@app.command()
def limits(
    cabinet: Annotated[str, typer.Option("--cabinet", "-c", help="The cabinet's id.")],
    pocket: Annotated[
        str | None, typer.Option("--pocket", help="Set this pocket's limits (with --set).")
    ] = None,
    set_: Annotated[
        str | None,
        typer.Option("--set", help="MIN:MAX:MINUTES, e.g. 2:8:30 (a pharmacist's decision)."),
    ] = None,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The cold-chain limits of the cabinet's temperature-watched pockets.

    --pocket P --set MIN:MAX:MINUTES changes one (pharmacists)."""
    from adc.commands.access import login, open_controller
    from adc.controller.cabinets import get_cabinet
    from adc.controller.cold_chain import limits_of, set_limits
    from adc.errors import BadInput

    ctl = open_controller(db)
    if (pocket is None) != (set_ is None):
        raise BadInput("--pocket and --set go together")
    if user is not None and set_ is None:
        raise BadInput("--user goes with --pocket and --set: showing the limits needs no login")
    if pocket is not None and set_ is not None:
        set_limits(ctl, login(ctl, user), cabinet, pocket, set_)
    with ctl.read() as session:
        get_cabinet(session, cabinet)
        found = limits_of(session, cabinet)
    if as_json:
        print_json({code: {"min_c": lim.min_c, "max_c": lim.max_c,
                           "excursion_min": lim.excursion_s / 60} for code, lim in found.items()})  # fmt: skip
        return
    out = console()
    if not found:
        out.print(f"cabinet {cabinet} has no temperature-watched pocket", highlight=False)
    for code, lim in found.items():
        out.print(f"{code}: {lim.describe()}", highlight=False)
