"""`adc waste` and `adc return`: doses not given, accounted for with a witness.

- `adc waste`: units of a removal destroyed (`--removal ID`), or units spoiled in a pocket
  (`--pocket P`, after the count due on access: `--found N`). A controlled substance needs a
  witness who authenticates.
- `adc return`: units of a removal go into the cabinet's return bin, never back into their pocket;
  `adc return --clear-out` is a pharmacist emptying the bin, counting each item blind.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import (
    DbOption,
    JsonOption,
    console,
    id_option,
    parse_count,
    print_json,
    qty_option,
    require_text,
)
from adc.commands.witnessing import WitnessOption, WitnessPinStdinOption

CabinetOption = Annotated[str, typer.Option("--cabinet", "-c", help="The cabinet.")]
RemovalOption = Annotated[
    int | None,
    id_option("--removal", help="The removal's record id (as printed when it was recorded)."),
]


def waste(
    cabinet: CabinetOption,
    qty: Annotated[int, qty_option("--qty", help="Units wasted.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'partial dose: 1 mg given'.")],
    removal: RemovalOption = None,
    pocket: Annotated[
        str | None,
        typer.Option(
            "--pocket", help="Waste straight from this pocket (spoiled in it).", show_default=False
        ),
    ] = None,
    found: Annotated[
        int | None,
        qty_option(
            "--found",
            min=0,
            help="With --pocket: your count of the pocket on access (blind "
            "for controlled substances).",
        ),
    ] = None,
    witness: WitnessOption = None,
    witness_pin_stdin: WitnessPinStdinOption = False,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record units wasted (a controlled substance needs a witness)."""
    from adc.commands.access import login, open_controller
    from adc.commands.witnessing import login_witness
    from adc.controller.counts import Outcome, count_pocket
    from adc.controller.waste import waste as record_waste
    from adc.errors import BadInput, Refused

    reason = require_text(reason, "--reason")
    if (removal is None) == (pocket is None):
        raise BadInput("give either --removal ID or --pocket P")
    ctl = open_controller(db)
    actor = login(ctl, user)
    witness_actor = login_witness(ctl, witness, witness_pin_stdin)
    if pocket is not None and found is not None:
        counted = count_pocket(ctl, actor, cabinet, pocket, found, access="waste")
        if counted.outcome is Outcome.RECOUNT:
            raise Refused(f"your count of {pocket} differs: count it again (--found N)")
        if counted.discrepancy_id:
            console().print(
                f"[yellow]your count opened discrepancy {counted.discrepancy_id}[/]",
                highlight=False,
            )
    result = record_waste(
        ctl,
        actor,
        cabinet,
        qty,
        reason,
        witness=witness_actor,
        removal_id=removal,
        pocket=pocket,
    )
    if as_json:
        print_json(result.as_json())
        return
    what = f"of removal {result.removal}" if result.removal else f"from pocket {result.pocket}"
    by = f", witness {result.witness}" if result.witness else ""
    console().print(
        f"wasted {result.qty} {result.item} {what}: {result.reason}{by} "
        f"(record {', '.join(map(str, result.txn_ids))})",
        highlight=False,
    )


def _parse_bin_counts(values: list[str]) -> dict[str, int]:
    from adc.errors import BadInput

    out = {}
    for value in values:
        item, sep, number = value.partition("=")
        if not sep or not item.strip():
            raise BadInput(f"--count takes ITEM=N (item id, NDC or GTIN; N ≥ 0), got {value!r}")
        out[item.strip()] = parse_count(number, f"--count {item.strip()}")
    return out


def return_(
    cabinet: CabinetOption,
    removal: RemovalOption = None,
    qty: Annotated[int | None, qty_option("--qty", help="Units returned.")] = None,
    clear_out: Annotated[
        bool, typer.Option("--clear-out", help="Empty the return bin (a pharmacist), counting it.")
    ] = False,
    given: Annotated[
        list[str] | None,
        typer.Option(
            "--count",
            help="With --clear-out: ITEM=N taken out (item id, NDC or GTIN; "
            "repeat for each item), instead of asking.",
            show_default=False,
        ),
    ] = None,
    witness: WitnessOption = None,
    witness_pin_stdin: WitnessPinStdinOption = False,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Return units of a removal to the cabinet's return bin, or clear the bin out."""
    from adc.commands.access import login, open_controller
    from adc.commands.witnessing import login_witness
    from adc.errors import BadInput

    if clear_out:
        if removal is not None or qty is not None:
            raise BadInput("--clear-out takes no --removal or --qty")
        _clear_out(
            cabinet, _parse_bin_counts(given or []), witness, witness_pin_stdin, user, db, as_json
        )
        return
    if given:
        raise BadInput("--count is for --clear-out")
    if removal is None or qty is None:
        raise BadInput("a return names --removal ID and --qty N")
    from adc.controller.returns import return_units

    ctl = open_controller(db)
    actor = login(ctl, user)
    witness_actor = login_witness(ctl, witness, witness_pin_stdin)
    result = return_units(ctl, actor, cabinet, removal, qty, witness=witness_actor)
    if as_json:
        print_json(result.as_json())
        return
    console().print(
        f"returned {result.qty} {result.item} of removal {result.removal} to return bin "
        f"{result.bin} (record {', '.join(map(str, result.txn_ids))})",
        highlight=False,
    )


def _clear_out(
    cabinet: str,
    given: dict[str, int],
    witness: str | None,
    witness_pin_stdin: bool,
    user: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    from adc.commands.access import login, open_controller
    from adc.commands.witnessing import login_witness
    from adc.controller.formulary import find_item
    from adc.controller.returns import clear_return_bin, return_bin_items
    from adc.errors import BadInput

    ctl = open_controller(db)
    on_record = return_bin_items(ctl, cabinet)
    counted: dict[int, int] = {}
    with ctl.read() as session:
        for ref, n in given.items():
            counted[find_item(session, ref).id or 0] = n
    missing = [entry for entry in on_record if entry.item_id not in counted]
    if missing and not (sys.stdin.isatty() and not as_json):
        raise BadInput(
            "no count given for "
            + ", ".join(f"{m.item} (#{m.item_id})" for m in missing)
            + ": --count ITEM=N for each item in the bin"
        )
    actor = login(ctl, user)
    witness_actor = login_witness(ctl, witness, witness_pin_stdin)
    for entry in missing:
        text = str(typer.prompt(f"count {entry.item} taken out of the bin")).strip()
        if not text.isdigit():
            raise BadInput(f"a count is a whole number of at least 0, got {text!r}")
        counted[entry.item_id] = int(text)
    result = clear_return_bin(ctl, actor, cabinet, counted, witness=witness_actor)
    if as_json:
        print_json(result.as_json())
        return
    opened = (
        f"; discrepancies opened: {', '.join(map(str, result.discrepancy_ids))}"
        if result.discrepancy_ids
        else "; every count agreed"
    )
    console().print(
        f"return bin {result.bin} cleared out ({len(counted)} item(s), session "
        f"{result.session}){opened}",
        highlight=False,
    )
