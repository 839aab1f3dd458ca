"""`adc report diversion`: users ranked by diversion score, or one user's evidence (--user).

Who is asking logs in with `--as NAME` (or ADC_USER; the PIN from ADC_PIN, else asked for): here
`--user` names the person whose evidence is shown, as the issue and the pharmacists ask for it.
Pharmacists and admins only; a refusal (exit 1) and every look are audited (controller/diversion.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from adc.commands.access import USER_ENV
from adc.commands.common import DbOption, JsonOption, console, print_json
from adc.commands.reports import (
    CabinetList,
    CsvOption,
    PeriodFrom,
    PeriodTo,
    _period,
    app,
    cabinet_list,
    report_controller,
    show_rows,
)

AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        envvar=USER_ENV,
        help="Who is asking: a pharmacist or an admin (PIN from ADC_PIN, else asked for).",
        show_default=False,
    ),
]


@app.command("diversion")
def diversion(
    start: PeriodFrom = None,
    end: PeriodTo = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--user", help="Show this user's evidence instead of the ranking.", show_default=False
        ),
    ] = None,
    actor_name: AsOption = None,
    cabinet: CabinetList = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Controlled-substance diversion scores: users against their peers (pharmacists, admins)."""
    from adc.commands.access import login
    from adc.controller.diversion import DiversionRow, review, user_evidence
    from adc.controller.diversion_signals import Period
    from adc.errors import BadInput

    if as_json and as_csv:
        raise BadInput("choose one of --json and --csv")
    names = cabinet_list(cabinet)
    ctl = report_controller(db, names)
    since, until = _period(ctl, start, end)
    if not actor_name:
        raise BadInput(f"say who is asking: --as NAME (or {USER_ENV})")
    actor = login(ctl, actor_name)
    period = Period(since, until, names)
    if subject is not None:
        if as_csv:
            raise BadInput("--user shows one user's evidence as a table or --json, not --csv")
        _show_evidence(user_evidence(ctl, actor, period, subject), as_json)
        return

    def cells(r: DiversionRow) -> list[str]:
        flag = "FLAG" if r.flagged else ""
        return [
            *(str(r.rank), r.user, r.role, f"{r.peer_group} ({r.peers})", f"{r.score:.1f}", flag),
            r.top_signals,
        ]

    show_rows(
        review(ctl, actor, period),
        DiversionRow,
        as_json=as_json,
        as_csv=as_csv,
        title=f"diversion scores {since.date()} to {until.date()} (exclusive)",
        columns=("#", "user", "role", "peers", "score", "", "top signals"),
        cells=cells,
        empty="no controlled-substance activity in the period",
    )


def _show_evidence(found: Any, as_json: bool) -> None:
    if as_json:
        print_json(found.as_json())
        return
    out = console()
    if found.score is None:
        out.print(f"{found.user}: no controlled-substance activity in the period", highlight=False)
        return
    s = found.score
    out.print(
        f"{s.user} ({s.role}): rank {found.rank} of {found.of}, score {s.score:.1f}"
        f"{' FLAGGED' if s.flagged else ''}; peers {s.peer_group} ({s.peers}); "
        f"{s.shifts} shift(s), {s.removals} removal(s)",
        highlight=False,
    )
    from rich.table import Table

    table = Table("signal", "value", "peer median", "z", "weight", "adds", "records")
    for g in s.signals:
        table.add_row(
            g.signal,
            "-" if g.value is None else f"{g.value:.3g}",
            "-" if g.peer_median is None else f"{g.peer_median:.3g}",
            f"{g.z:.1f}",
            f"{g.weight:g}",
            f"{g.contribution:.1f}",
            str(len(g.evidence)),
        )
    out.print(table)
    for g in s.drivers:
        out.print(f"{g.signal}:", highlight=False)
        for e in g.evidence:
            out.print(
                f"  {e.kind}:{e.id}  {e.at}  {e.cabinet} {e.pocket}  {e.note}", highlight=False
            )
