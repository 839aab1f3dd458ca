"""`adc study`: investigational drugs' studies (protocols), their items and authorized users.

Set-up (a pharmacist): `add`, `authorize`/`revoke`, `item` (an item of the formulary is
investigational for the protocol), `pocket` (the pockets that hold its stock), `close`.
At the cabinet: `dispense` (a removal with the subject's study id and the dose, the cabinet
opened by key; the controller's withdrawal takes the same when it opens the pocket) and `return`
(units a subject did not take, back to the pharmacy with a reason). The accountability record is
`adc report accountability --protocol P`. No command here prints a subject id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from adc.commands.access import UserOption
from adc.commands.common import (
    DbOption,
    JsonOption,
    command_group,
    console,
    id_argument,
    print_json,
    qty_option,
    require_text,
)

if TYPE_CHECKING:
    from adc.controller.studies import StudyView

app = command_group("Investigational drugs: studies, their items, authorized users.")

ProtocolArg = Annotated[str, typer.Argument(help="The study's protocol number.")]
CabinetOption = Annotated[str, typer.Option("--cabinet", "-c", help="The cabinet.")]
PocketOption = Annotated[str, typer.Option("--pocket", "-p", help="The pocket.")]


def _login(db: str | None, user: str | None):  # type: ignore[no-untyped-def]
    from adc.commands.access import login, open_controller

    ctl = open_controller(db)
    return ctl, login(ctl, user)


def _show(view: StudyView, as_json: bool, headline: str | None = None) -> None:
    if as_json:
        print_json(view.as_json())
        return
    out = console()
    if headline:
        out.print(headline, highlight=False)
    out.print(
        f"[bold]{view.protocol}[/] ({view.status}) {view.title}\n"
        f"  sponsor {view.sponsor}; principal investigator {view.investigator}\n"
        f"  subject ids: {view.subject_pattern}\n"
        f"  authorized: {', '.join(view.users) or 'nobody yet'}",
        highlight=False,
    )
    for item in view.items:
        out.print(f"  item #{item['id']} {item['item']} (NDC {item['ndc'] or 'none'})")
    for pocket in view.pockets:
        out.print(
            f"  pocket {pocket['cabinet']}/{pocket['pocket']}: {pocket['item'] or 'no item'}, "
            f"{pocket['on_hand']} on hand",
            highlight=False,
        )


@app.command()
def add(
    protocol: ProtocolArg,
    title: Annotated[str, typer.Option("--title", help="The study's title.")],
    sponsor: Annotated[str, typer.Option("--sponsor", help="The sponsor.")],
    investigator: Annotated[
        str, typer.Option("--investigator", help="The principal investigator.")
    ],
    subject_pattern: Annotated[
        str | None,
        typer.Option(
            "--subject-pattern",
            help="A regular expression subject ids must match in full (default: groups of "
            "letters and digits joined by hyphens, with a digit, e.g. 001-0042).",
            show_default=False,
        ),
    ] = None,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a study (open): protocol, title, sponsor, principal investigator."""
    from adc.controller.studies import add_study

    ctl, actor = _login(db, user)
    view = add_study(
        ctl,
        actor,
        protocol,
        title=title,
        sponsor=sponsor,
        investigator=investigator,
        subject_pattern=subject_pattern,
    )
    _show(view, as_json, f"added study {view.protocol}")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the studies."""
    from adc.commands.access import open_controller
    from adc.controller.studies import list_studies

    studies = list_studies(open_controller(db))
    if as_json:
        print_json([s.as_json() for s in studies])
        return
    if not studies:
        console().print("no studies (adc study add)")
        return
    from rich.table import Table

    table = Table("protocol", "status", "title", "sponsor", "investigator")
    for s in studies:
        table.add_row(s.protocol, s.status, s.title, s.sponsor, s.investigator)
    console().print(table)


@app.command()
def show(protocol: ProtocolArg, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show a study: its authorized users, items and pockets."""
    from adc.commands.access import open_controller
    from adc.controller.studies import show_study

    _show(show_study(open_controller(db), protocol), as_json)


@app.command()
def authorize(
    protocol: ProtocolArg,
    username: Annotated[str, typer.Argument(help="The user to authorize.")],
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Authorize a user to restock, remove, return and count the study's stock."""
    from adc.controller.studies import authorize as grant

    ctl, actor = _login(db, user)
    _show(grant(ctl, actor, protocol, username), as_json, f"{username} authorized")


@app.command()
def revoke(
    protocol: ProtocolArg,
    username: Annotated[str, typer.Argument(help="The user to take off the study.")],
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a user's authorization for the study away."""
    from adc.controller.studies import revoke as take

    ctl, actor = _login(db, user)
    _show(take(ctl, actor, protocol, username), as_json, f"{username} no longer authorized")


@app.command()
def item(
    protocol: ProtocolArg,
    item_ref: Annotated[str, typer.Argument(metavar="ITEM", help="Item id, NDC or GTIN.")],
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark an item investigational for the study (its own GTINs and lots; no commercial stock)."""
    from adc.controller.studies import mark_item

    ctl, actor = _login(db, user)
    _show(mark_item(ctl, actor, protocol, item_ref), as_json, "item marked investigational")


@app.command()
def pocket(
    protocol: ProtocolArg,
    cabinet: CabinetOption,
    pocket_code: PocketOption,
    remove: Annotated[
        bool, typer.Option("--remove", help="Take an empty pocket back from the study.")
    ] = False,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Assign a pocket to the study: only its pockets hold its stock."""
    from adc.controller.studies import assign_pocket, unassign_pocket

    ctl, actor = _login(db, user)
    if remove:
        view = unassign_pocket(ctl, actor, protocol, cabinet, pocket_code)
        _show(view, as_json, f"pocket {pocket_code} taken back from {protocol}")
    else:
        view = assign_pocket(ctl, actor, protocol, cabinet, pocket_code)
        _show(view, as_json, f"pocket {pocket_code} assigned to {protocol}")


@app.command()
def close(
    protocol: ProtocolArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'enrolment complete'.")],
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close a study: no more removals or new stock."""
    from adc.controller.studies import close_study

    ctl, actor = _login(db, user)
    view = close_study(ctl, actor, protocol, require_text(reason, "--reason"))
    _show(view, as_json, f"study {protocol} closed")


@app.command()
def dispense(
    cabinet: CabinetOption,
    pocket_code: PocketOption,
    qty: Annotated[int, qty_option("--qty", help="Units removed.")],
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject", help="The subject's study id (never a name).", show_default=False
        ),
    ] = None,
    dose: Annotated[
        str | None,
        typer.Option("--dose", help="The dose, e.g. '100 mg'.", show_default=False),
    ] = None,
    found: Annotated[
        int | None,
        qty_option("--found", min=0, help="Your count of the pocket on access, where one is due."),
    ] = None,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a removal of study stock for a subject (cabinet opened by key)."""
    from adc.controller.counts import Outcome, count_pocket
    from adc.controller.inventory import remove
    from adc.errors import Refused

    ctl, actor = _login(db, user)
    if found is not None:
        counted = count_pocket(ctl, actor, cabinet, pocket_code, found, access="remove")
        if counted.outcome is Outcome.RECOUNT:
            raise Refused(f"your count of {pocket_code} differs: count it again (--found N)")
    movement = remove(ctl, actor, cabinet, pocket_code, qty, subject=subject, dose=dose)
    if as_json:  # no subject id here: only the accountability record shows it
        print_json(
            {
                "pocket": movement.pocket,
                "qty": -movement.qty,
                "on_hand": movement.on_hand,
                "removal": movement.txn_ids[0],
                "txn_ids": movement.txn_ids,
                "audit_seq": movement.audit_seq,
            }
        )
        return
    console().print(
        f"removed {-movement.qty} from {movement.pocket} ({movement.on_hand} left): "
        f"removal {movement.txn_ids[0]}",
        highlight=False,
    )


@app.command("return")
def return_(
    removal: Annotated[int, id_argument("The removal's record id.")],
    qty: Annotated[int, qty_option("--qty", help="Units returned.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the subject did not take them.")],
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Return unused units of a study removal to the pharmacy (never into the pocket)."""
    from adc.controller.study_returns import return_to_pharmacy

    ctl, actor = _login(db, user)
    record = return_to_pharmacy(ctl, actor, removal, qty, require_text(reason, "--reason"))
    if as_json:
        print_json(record.as_json())
        return
    console().print(
        f"returned {record.qty} {record.item} of removal {record.removal} to the pharmacy "
        f"({record.protocol}): {record.reason}",
        highlight=False,
    )
