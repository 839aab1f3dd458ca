"""`adc count`: a cycle count, a blind count of each selected pocket of one cabinet.

For each pocket the person is shown the pocket and its item, never the expected number, and
enters what they count. A count that differs may be recounted once (the cabinet's policy); then
it stands and opens a discrepancy. With `--backend URI` the cabinet is driven through the driver
port: each pocket is opened through its access (adc/session/cyclecount.py over the controller's
`PocketAccess`: locks released together, relock judged after the close, failures recorded), and
where the pocket has a weight sensor (and its item a unit weight) the scale, read once the
pocket is shut again, gives an implied count recorded beside the person's; if they disagree, that
is flagged with its own discrepancy. Counts come from the terminal, or from
`--count POCKET=N` (`POCKET=N,M`: M is the recount, if one is asked for) for automation.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import DbOption, JsonOption, console, parse_count, print_json

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller
    from adc.controller.counts import CycleTarget
    from adc.drivers.base import CabinetDriver
    from adc.session.cyclecount import CountVisit


def parse_counts(values: list[str]) -> dict[str, list[int]]:
    """`POCKET=N` or `POCKET=N,M` → {pocket: [N, M]}; BadInput for anything else."""
    from adc.errors import BadInput

    out: dict[str, list[int]] = {}
    for value in values:
        pocket, sep, numbers = value.partition("=")
        if not sep or not pocket.strip():
            raise BadInput(f"--count takes POCKET=N (or POCKET=N,M with a recount), got {value!r}")
        found = [parse_count(part, f"--count {pocket.strip()}") for part in numbers.split(",")]
        if len(found) > 2:
            raise BadInput(f"--count {value!r}: one count and at most one recount")
        out[pocket.strip()] = found
    return out


def _ask(prompt: str) -> int:
    return parse_count(str(typer.prompt(prompt)), prompt)


def _open_driver(ctl: Controller, cabinet: str, backend: str) -> CabinetDriver:
    from pathlib import Path

    from adc.controller.cabinets import get_cabinet
    from adc.drivers.registry import open_backend
    from adc.profiles import load_profile, resolve_profile_path

    with ctl.read() as session:
        row = get_cabinet(session, cabinet)
        ref = row.profile_path if Path(row.profile_path).exists() else row.profile_name
    return open_backend(backend, load_profile(resolve_profile_path(ref)))


def _visit(
    ctl: Controller, driver: CabinetDriver, cabinet: str, target: CycleTarget, actor: Actor
) -> CountVisit:
    """Open the pocket for the count through its access (adc/session/cyclecount.py)."""
    from adc.session.cyclecount import CountVisit
    from adc.waiting import waiter_for

    visit = CountVisit.begin(ctl, driver, waiter_for(driver), cabinet, target, actor)
    visit.unlock()
    return visit


def count(
    cabinet: Annotated[str, typer.Option("--cabinet", "-c", help="The cabinet to count.")],
    controlled: Annotated[
        bool, typer.Option("--controlled", help="Only pockets holding controlled substances.")
    ] = False,
    pocket: Annotated[
        list[str] | None,
        typer.Option(
            "--pocket", "-p", help="Only this pocket (repeat for more).", show_default=False
        ),
    ] = None,
    given: Annotated[
        list[str] | None,
        typer.Option(
            "--count",
            help="POCKET=N, or POCKET=N,M where M is the recount if one is asked for "
            "(instead of asking at the terminal).",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Drive the cabinet (unlock each pocket, read its scale): sim:, modbus-tcp://..., "
            "profile:. Default: no hardware (the cabinet is opened by key).",
            show_default=False,
        ),
    ] = None,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cycle count: a blind count of each selected pocket; differences open discrepancies."""
    from adc.commands.access import login, open_controller
    from adc.controller.counts import Outcome, count_pocket, cycle_targets
    from adc.errors import BadInput, Refused

    counts_given = parse_counts(given or [])
    ctl = open_controller(db)
    targets = cycle_targets(ctl, cabinet, controlled_only=controlled, pockets=pocket or None)
    if not targets:
        raise BadInput(f"nothing to count in cabinet {cabinet} with these filters")
    stray = sorted(set(counts_given) - {t.pocket for t in targets})
    if stray:
        raise BadInput(f"--count names pocket(s) not being counted: {', '.join(stray)}")
    interactive = sys.stdin.isatty() and not as_json
    missing = [t.pocket for t in targets if t.pocket not in counts_given]
    if missing and not interactive:
        raise BadInput(f"no count given for {', '.join(missing)}: --count POCKET=N (no terminal)")
    actor = login(ctl, user)
    driver = _open_driver(ctl, cabinet, backend) if backend else None
    if driver is not None:
        from adc.commands.access import recover_interrupted
        from adc.controller.contents import recorded_contents
        from adc.session.simhands import mirror_records

        recover_interrupted(ctl, cabinet)
        mirror_records(driver, recorded_contents(ctl, cabinet))  # a virtual cabinet only
    results = []
    try:
        for target in targets:
            answers = list(counts_given.get(target.pocket, []))
            label = f"{target.pocket} {target.item}" + (
                " (controlled)" if target.controlled else ""
            )
            sensor, note, visit = None, None, None
            if driver is not None:
                visit = _visit(ctl, driver, cabinet, target, actor)
                try:
                    first = answers.pop(0) if answers else _ask(f"count {label}")
                    visit.wait_closed()  # shut, relock judged: only then the scale
                except BaseException:
                    visit.interrupted()
                    visit.finish("interrupted")
                    raise
                sensor, note = visit.weigh()
                note = "; ".join(filter(None, [note, *visit.access.notes])) or None
            else:
                first = answers.pop(0) if answers else _ask(f"count {label}")
            result = count_pocket(ctl, actor, cabinet, target.pocket, first, sensor=sensor)
            if result.outcome is Outcome.RECOUNT:
                if answers:
                    again = answers.pop(0)
                elif interactive:
                    again = _ask(f"the count of {target.pocket} differs: count it again")
                else:
                    raise Refused(
                        f"the count of {target.pocket} differs: a recount is due "
                        f"(--count {target.pocket}=N,M)"
                    )
                result = count_pocket(ctl, actor, cabinet, target.pocket, again, sensor=sensor)
            results.append((target, result, note))
            if visit is not None:
                visit.finish("counted")
    finally:
        if driver is not None:
            driver.close()
    if as_json:
        print_json(
            [
                {"item": t.item, "controlled": t.controlled, "note": n, **r.as_json()}
                for t, r, n in results
            ]
        )
        return
    from rich.table import Table

    table = Table(
        "pocket", "item", "counted", "outcome", "scale", "", title=f"cycle count {cabinet}"
    )
    for target, result, note in results:
        scale = ""
        if result.sensor is not None:
            scale = str(result.sensor.count) if result.sensor.count is not None else "not whole"
        flags = []
        if result.discrepancy_id:
            flags.append(f"discrepancy {result.discrepancy_id}")
        if result.sensor_discrepancy_id:
            flags.append(f"scale disagrees: discrepancy {result.sensor_discrepancy_id}")
        if note:
            flags.append(note)
        table.add_row(
            target.pocket,
            target.item,
            str(result.counted),
            result.outcome.value,
            scale,
            "; ".join(flags),
        )
    console().print(table)
