"""`adc discrepancy list|resolve|escalate|reasons`: the discrepancy lifecycle at the command line.

Listing first escalates what became overdue (recorded by the system, notified to pharmacists
through the shortage sink), so whoever looks sees the same thing a pharmacist is told.
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
    require_text,
)
from adc.commands.reports import (
    CabinetList,
    CsvOption,
    cabinet_list,
    emit_rows,
    report_controller,
)
from adc.commands.witnessing import WitnessOption, WitnessPinStdinOption

app = command_group("Count discrepancies: list them, resolve them with a witness.")


def discrepancy_table(rows: list, title: str) -> None:  # type: ignore[type-arg]
    """The discrepancies as a table that fits the terminal: at 80 columns the ones that say which
    discrepancy it is and what was found stay (id, state, pocket, item, expected, counted)."""
    from rich.markup import escape

    from adc.commands.fit import print_fitted

    if not rows:
        console().print("no discrepancies", highlight=False)
        return
    columns = ("id", "", "status", "opened", "deadline", "cabinet", "pocket", "item", "trigger")
    columns += ("expected", "counted", "by", "reason")
    priority = (1, 2, 3, 8, 5, 9, 1, 1, 7, 2, 2, 6, 4)
    cells = []
    for r in rows:
        flag = "[bold red]OVERDUE[/]" if r.overdue else ("escalated" if r.escalated else "")
        cells.append(
            [
                str(r.id),
                flag,
                escape(r.status),
                r.opened_at[:16].replace("T", " "),
                (r.deadline or "")[:16].replace("T", " "),
                escape(r.cabinet),
                escape(r.pocket),
                escape(r.item + (f" (C-{r.schedule})" if r.schedule else "")),
                escape(r.trigger),
                str(r.expected),
                str(r.counted),
                escape(r.opened_by),
                escape((r.reason or "") + (f" — {r.note}" if r.note else "")),
            ]
        )
    print_fitted(console(), columns, cells, title=title, priority=priority)


@app.command("list")
def list_(
    open_only: Annotated[bool, typer.Option("--open", help="Only open ones.")] = False,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open ones past their deadline.")
    ] = False,
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Discrepancies: overdue first (escalated to pharmacists), then open, then closed."""
    from adc.controller.discrepancies import (
        DiscrepancyRow,
        escalate_overdue,
        list_discrepancies,
    )

    cabinets = cabinet_list(cabinet)
    ctl = report_controller(db, cabinets)
    escalate_overdue(ctl)
    rows = list_discrepancies(ctl, open_only=open_only, overdue_only=overdue, cabinet=cabinets)
    if emit_rows(rows, DiscrepancyRow, as_json=as_json, as_csv=as_csv):
        return
    discrepancy_table(rows, "discrepancies")


@app.command()
def resolve(
    discrepancy_id: Annotated[int, id_argument("Discrepancy id (adc discrepancy list).")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="miscount, documented-elsewhere, wrong-pocket, restock-error, or unresolvable "
            "(escalated to pharmacy).",
        ),
    ],
    note: Annotated[str, typer.Option("--note", help="What was found.")],
    witness: WitnessOption = None,
    witness_pin_stdin: WitnessPinStdinOption = False,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close an open discrepancy with a reason and a witness; nothing recorded is changed."""
    from adc.commands.access import login, open_controller
    from adc.commands.witnessing import login_witness
    from adc.controller.discrepancies import parse_reason
    from adc.controller.discrepancies import resolve as resolve_discrepancy
    from adc.errors import BadInput

    code = parse_reason(reason)  # bad input before anyone types a PIN
    note = require_text(note, "--note")
    if not witness:
        raise BadInput("a resolution needs a witness: --witness USER (a pharmacist or nurse)")
    ctl = open_controller(db)
    actor = login(ctl, user)
    witness_actor = login_witness(ctl, witness, witness_pin_stdin)
    result = resolve_discrepancy(ctl, actor, discrepancy_id, code, note, witness=witness_actor)
    if as_json:
        print_json(result.as_json())
        return
    late = " (after its deadline)" if result.late else ""
    console().print(
        f"discrepancy {result.discrepancy_id} {result.status}{late}: {result.reason} — "
        f"{result.note} (witness {result.witness}; record {result.txn_id})",
        highlight=False,
    )
    if ctl.delivery_errors:
        console().print(f"[yellow]warning:[/] {ctl.delivery_errors[-1]}", highlight=False)


@app.command()
def escalate(db: DbOption = None) -> None:
    """Escalate overdue discrepancies now and deliver pending notifications (for a timer/cron)."""
    from adc.commands.access import open_controller
    from adc.controller.discrepancies import escalate_overdue
    from adc.errors import CheckFailed

    ctl = open_controller(db)
    new = escalate_overdue(ctl)
    console().print(
        f"{len(new)} discrepancy(ies) newly escalated"
        + (f": {', '.join(map(str, new))}" if new else ""),
        highlight=False,
    )
    if ctl.delivery_errors:
        raise CheckFailed(ctl.delivery_errors[-1])


@app.command()
def reasons() -> None:
    """The reasons a discrepancy may be resolved with."""
    from adc.controller.discrepancies import REASONS

    for code, text in REASONS.items():
        console().print(f"{code.value:22} {text}", highlight=False)
