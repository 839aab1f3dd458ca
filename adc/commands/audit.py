"""`adc audit verify`: recompute the audit hash chain."""

from __future__ import annotations

from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("The audit trail.")


@app.command()
def verify(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Check every audit entry against its hash and its predecessor; exit 1 at the first break."""
    from adc.commands.access import open_controller
    from adc.controller.audit import verify_trail

    ctl = open_controller(db)
    report = verify_trail(ctl)
    if as_json:
        print_json({"intact": True, "entries": report.entries, "head_hash": report.head_hash})
        return
    console().print(
        f"audit trail intact: {report.entries} entries, head {report.head_hash[:16]}…",
        highlight=False,
    )
