"""`adc audit verify` (recompute every audit chain and anchor) and `adc audit anchor`."""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("The audit trail.")

CabinetOnly = Annotated[
    str | None,
    typer.Option(
        "--cabinet",
        help="Verify only this cabinet's chain (and the site chain, whose anchors vouch for it).",
        show_default=False,
    ),
]


@app.command()
def verify(db: DbOption = None, cabinet: CabinetOnly = None, as_json: JsonOption = False) -> None:
    """Check every audit chain and anchor; exit 1 naming the chain and entry at the first break.

    Each entry is checked against its hash and its predecessor, each anchor against the chain heads it recorded.
    """
    from adc.commands.access import open_controller
    from adc.controller.audit import verify_trail
    from adc.controller.cabinets import get_cabinet

    ctl = open_controller(db)
    if cabinet is not None:
        with ctl.read() as session:
            get_cabinet(session, cabinet)  # an unknown cabinet is bad input, not an empty chain
    report = verify_trail(ctl, cabinet)
    if as_json:
        print_json(
            {
                "intact": True,
                "entries": report.entries,
                "head_hash": report.head_hash,
                "anchors": report.anchors,
                "chains": [
                    {"chain": c.chain, "entries": c.entries, "head_hash": c.head_hash}
                    for c in report.chains
                ],
            }
        )
        return
    out = console()
    out.print(
        f"audit trail intact: {report.entries} entries in {len(report.chains)} chains, "
        f"{report.anchors} anchors, site head {report.head_hash[:16]}…",
        highlight=False,
    )
    for chain in report.chains:
        out.print(
            f"  {chain.chain}: {chain.entries} entries, head {chain.head_hash[:16]}…",
            highlight=False,
        )


@app.command()
def anchor(db: DbOption = None) -> None:
    """Record every cabinet chain's head in the site chain now.

    Done on its own every 100 entries of a chain: deleting entries before an anchor, or a whole chain, is then detected.
    """
    from adc.commands.access import open_controller

    ctl = open_controller(db)
    seq = ctl.anchor()
    if seq is None:
        console().print("every chain's head is anchored already", highlight=False)
    else:
        console().print(f"anchored every cabinet chain's head: site entry #{seq}", highlight=False)
