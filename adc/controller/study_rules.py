"""The rules of investigational (study) stock, in one place, called where each action is checked.

`guard` is the one check: every restock line, removal, count, unload or pull of a pocket calls it
(inside the action's own transaction, and again before the pocket is unlocked), with the pocket and
the item it holds or is about to hold:
- a pocket assigned to a study holds only that study's items, and a study's item is held only in
  pockets assigned to that study: commercial and study stock are never mixed;
- only the users authorized for the protocol may restock, remove, return or count its stock;
- a closed study takes no removal and no new stock;
- a removal records the subject's study id (`check_subject`: a study id, never a name) and the dose.
Expired and recalled study lots block exactly as commercial lots do: the callers run the same
`block_from_rows`/`verify_scan` checks on study pockets as on any other.

A refusal of study stock (`StudyRefused`) is audited: the action's own transaction rolls back, so
`audit_refusals`, wrapped around the entry points, appends a `study.refused` entry in a transaction
of its own after the rollback, and raises the refusal on. Subject ids appear only in the audit
payload and in the `study_dispense` table (read by the accountability report alone).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import bindparam, insert, select
from sqlalchemy.sql import ClauseElement

from adc.controller.store import Store
from adc.controller.study_tables import (
    Study,
    StudyDispense,
    StudyItem,
    StudyPocket,
    StudyStatus,
    StudyUser,
)
from adc.errors import BadInput, Refused

Doing = Literal["restock", "unload", "remove", "count", "return", "view"]
_VERB = {
    "restock": "restock",
    "unload": "unload or pull",
    "remove": "remove",
    "count": "count",
    "return": "return",
    "view": "view the accountability record of",
}

# A study id: letters and digits in groups joined by hyphens (e.g. 001-0042, S12-A-003),
# with at least one digit and no run of five letters (no word, so no name).
DEFAULT_SUBJECT_PATTERN = r"[A-Z0-9]{1,10}(?:-[A-Z0-9]{1,10}){0,4}"
SUBJECT_MAX = 32
DOSE_MAX = 64
_WORDISH = re.compile(r"[A-Za-z]{5,}")


class StudyRefused(Refused):
    """A rule of study stock said no; audited (see `audit_refusals`). Constructible from its
    message alone, as SimPy and pickling re-create an exception."""

    def __init__(
        self,
        message: str,
        *,
        protocol: str = "",
        doing: str = "",
        user_id: int | None = None,
        cabinet: str | None = None,
        pocket: str | None = None,
    ) -> None:
        super().__init__(message)
        self.protocol = protocol
        self.doing = doing
        self.user_id = user_id
        self.cabinet = cabinet
        self.pocket = pocket
        self.audit_seq: int | None = None


@dataclass(frozen=True)
class StudyStock:
    """What `guard` found: the pocket's protocol, and for a removal the checked subject and dose."""

    protocol: str
    subject: str | None = None
    dose: str | None = None


# ------------------------------------------------------------------------------ input checks
def check_subject(subject: str | None, pattern: str | None, protocol: str) -> str:
    """The subject's study id, checked (BadInput, exit 2, naming what is wrong).

    Never a name: no spaces, ASCII only, at least one digit; the default format (no study
    pattern) also refuses any run of five letters. A study's own pattern must match in full.
    """
    text = (subject or "").strip()
    if not text:
        raise BadInput(
            f"a removal of protocol {protocol}'s stock records the subject's study id: "
            "give --subject ID"
        )
    shown = text if len(text) <= 40 else text[:40] + "…"
    if len(text) > SUBJECT_MAX:
        raise BadInput(f"subject id {shown!r} is longer than {SUBJECT_MAX} characters")
    if not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        raise BadInput(
            f"subject id {shown!r} is not a study id: letters, digits and hyphens, no spaces "
            "(never the subject's name)"
        )
    if not any(c.isdigit() for c in text):
        raise BadInput(
            f"subject id {shown!r} has no digit: give the subject's study id, never a name"
        )
    if pattern is None:
        text = text.upper()
        if _WORDISH.search(text):
            raise BadInput(
                f"subject id {shown!r} looks like a word or a name: give the study id "
                "(e.g. 001-0042)"
            )
        if not re.fullmatch(DEFAULT_SUBJECT_PATTERN, text):
            raise BadInput(
                f"subject id {shown!r} is not a study id: groups of letters and digits "
                "joined by hyphens (e.g. 001-0042)"
            )
    elif not re.fullmatch(pattern, text):
        raise BadInput(
            f"subject id {shown!r} does not match protocol {protocol}'s format {pattern}"
        )
    return text


def check_pattern(pattern: str) -> str:
    """A study's subject-id pattern: a valid regular expression (BadInput otherwise)."""
    try:
        re.compile(pattern)
    except re.error as err:
        raise BadInput(f"--subject-pattern {pattern!r} is not a regular expression: {err}") from err
    if not pattern.strip():
        raise BadInput("--subject-pattern cannot be empty")
    return pattern


def check_dose(dose: str | None, protocol: str) -> str:
    """The dose given, as the DARF records it (e.g. '100 mg', '2 tablets'): BadInput if absent."""
    text = (dose or "").strip()
    if not text:
        raise BadInput(
            f"a removal of protocol {protocol}'s stock records the dose: give --dose (e.g. '100 mg')"
        )
    if len(text) > DOSE_MAX or not text.isprintable():
        raise BadInput(f"dose {text[:40]!r}: at most {DOSE_MAX} printable characters")
    if not any(c.isdigit() for c in text):
        raise BadInput(f"dose {text!r} names no amount (e.g. '100 mg', '2 tablets')")
    return text


# --------------------------------------------------------------------------------- statements
def _q_protocols() -> ClauseElement:
    return select(
        select(StudyPocket.protocol)
        .where(StudyPocket.pocket_id == bindparam("pocket"))
        .scalar_subquery(),
        select(StudyItem.protocol).where(StudyItem.item_id == bindparam("item")).scalar_subquery(),
    )


def _q_study() -> ClauseElement:
    authorized = (
        select(StudyUser.user_id)
        .where(StudyUser.protocol == Study.protocol, StudyUser.user_id == bindparam("user"))
        .exists()
    )
    return select(Study.status, Study.subject_pattern, authorized).where(
        Study.protocol == bindparam("protocol")
    )


def _q_insert_dispense() -> ClauseElement:
    return insert(StudyDispense).values(
        txn_id=bindparam("txn"),
        protocol=bindparam("protocol"),
        subject=bindparam("subject"),
        dose=bindparam("dose"),
    )


def _q_item_protocol() -> ClauseElement:
    return select(StudyItem.protocol).where(StudyItem.item_id == bindparam("item"))


def _rows(conn: Any, build: Callable[[], ClauseElement], **params: Any) -> list[Any]:
    """Run a statement on the raw cursor (`Store`) or on an ORM session, the same way."""
    if isinstance(conn, Store):
        return conn.rows(build, **params)
    return list(conn.execute(build(), params).all())


def _run(conn: Any, build: Callable[[], ClauseElement], **params: Any) -> None:
    if isinstance(conn, Store):
        conn.run(build, **params)
    else:
        conn.execute(build(), params)


def protocol_of_item(conn: Any, item_id: int) -> str | None:
    found = _rows(conn, _q_item_protocol, item=item_id)
    return found[0][0] if found else None


def authorized(conn: Any, protocol: str, user_id: int) -> bool:
    found = _rows(conn, _q_study, protocol=protocol, user=user_id)
    return bool(found and found[0][2])


# -------------------------------------------------------------------------------- the guard
def guard(
    conn: Any,
    pocket: Any,
    user: Any,
    doing: Doing,
    *,
    item_id: int | None = None,
    subject: str | None = None,
    dose: str | None = None,
) -> StudyStock | None:
    """The study rules for `user` doing `doing` on `pocket` (holding `item_id`, default its own
    item); None for a commercial pocket. `conn` is the transaction's Store or Session.

    StudyRefused (audited by `audit_refusals`) for a rule; BadInput for a bad subject id or dose.
    """
    item = item_id if item_id is not None else pocket.item_id
    found = _rows(conn, _q_protocols, pocket=pocket.id, item=item if item is not None else -1)
    in_pocket, of_item = found[0] if found else (None, None)
    if in_pocket is None and of_item is None:
        if doing == "remove" and (subject is not None or dose is not None):
            raise BadInput(
                f"pocket {pocket.code} holds no investigational stock: a subject id and dose "
                "are recorded for study removals only"
            )
        return None

    def refuse(protocol: str, message: str) -> StudyRefused:
        return StudyRefused(
            message,
            protocol=protocol,
            doing=doing,
            user_id=getattr(user, "id", None),
            cabinet=pocket.cabinet_id,
            pocket=pocket.code,
        )

    if in_pocket != of_item:
        if of_item is None:
            raise refuse(
                in_pocket,
                f"pocket {pocket.code} is assigned to study {in_pocket}: it holds only that "
                "study's investigational items, never commercial stock",
            )
        where = f"assigned to study {in_pocket}" if in_pocket else "not assigned to its study"
        raise refuse(
            of_item,
            f"the item is investigational for protocol {of_item}: only pockets assigned to that "
            f"study hold it, and pocket {pocket.code} is {where} "
            f"(adc study pocket {of_item} --cabinet {pocket.cabinet_id} --pocket {pocket.code})",
        )
    protocol: str = in_pocket
    study = _rows(conn, _q_study, protocol=protocol, user=user.id)
    if not study:
        raise refuse(protocol, f"study {protocol} is not on record")
    status, pattern, is_authorized = study[0]
    if not is_authorized:
        raise refuse(
            protocol,
            f"user {user.username} is not authorized for protocol {protocol}: only its "
            f"authorized users may {_VERB[doing]} its stock",
        )
    if status == StudyStatus.CLOSED and doing in ("remove", "restock"):
        what = "removals" if doing == "remove" else "new stock"
        raise refuse(protocol, f"study {protocol} is closed: no {what}")
    if doing != "remove":
        return StudyStock(protocol)
    return StudyStock(
        protocol, check_subject(subject, pattern, protocol), check_dose(dose, protocol)
    )


def record_dispense(conn: Any, stock: StudyStock | None, txn_ids: list[int]) -> None:
    """A study removal's subject and dose, one row per transaction (lot) of the removal."""
    if stock is None:
        return
    assert stock.subject is not None and stock.dose is not None
    for txn_id in txn_ids:
        _run(
            conn,
            _q_insert_dispense,
            txn=txn_id,
            protocol=stock.protocol,
            subject=stock.subject,
            dose=stock.dose,
        )


def dispense_payload(stock: StudyStock | None) -> dict[str, Any]:
    """What a study removal adds to its audit entry (the audit payload may carry the subject)."""
    if stock is None:
        return {}
    return {"study": {"protocol": stock.protocol, "subject": stock.subject, "dose": stock.dose}}


def refuse_cabinet_handling(conn: Any, item_id: int, what: str) -> None:
    """Study units are never wasted at the cabinet nor put in its return bin: what a subject did
    not take goes back to the pharmacy with a reason (`adc study return`)."""
    protocol = protocol_of_item(conn, item_id)
    if protocol is not None:
        raise Refused(
            f"investigational stock of protocol {protocol} is not {what}: unused units go back "
            "to the pharmacy with a reason (adc study return REMOVAL --qty N --reason ...)"
        )


def _q_foreign_pockets() -> ClauseElement:
    """Study pockets of a cabinet whose study the user is not authorized for."""
    from adc.controller.models import Pocket

    mine = select(StudyUser.protocol).where(StudyUser.user_id == bindparam("user"))
    return (
        select(Pocket.code)
        .join(StudyPocket, StudyPocket.pocket_id == Pocket.id)
        .where(Pocket.cabinet_id == bindparam("cabinet"), StudyPocket.protocol.not_in(mine))
    )


def lines_for(ctl: Any, user_id: int, cabinet: str, lines: list[Any]) -> list[Any]:
    """A restock session's work list without the study pockets its user may not restock (they
    would only be refused at select): the investigational pharmacy refills those."""
    with ctl.read() as session:
        foreign = set(
            session.execute(_q_foreign_pockets(), {"user": user_id, "cabinet": cabinet}).scalars()
        )
    return [line for line in lines if line.pocket not in foreign] if foreign else lines


# ------------------------------------------------------------------------ audited refusals
F = TypeVar("F", bound=Callable[..., Any])


def _controller_of(args: tuple[Any, ...]) -> Any:
    from adc.controller.context import Controller

    for arg in args:
        if isinstance(arg, Controller):
            return arg
        ctl = getattr(arg, "ctl", None)
        if isinstance(ctl, Controller):
            return ctl
    return None


def record_refusal(ctl: Any, err: StudyRefused) -> int:
    """Append the `study.refused` entry for a refusal (the refused action's own transaction
    rolled back): who, what, which protocol and pocket, why."""
    from adc.controller.models import User

    with ctl.write(None, None) as tx:
        if err.user_id is not None:
            tx.user = tx.session.get(User, err.user_id)
        return int(
            tx.audit(
                "study.refused",
                {
                    "protocol": err.protocol,
                    "doing": err.doing,
                    "cabinet": err.cabinet,
                    "pocket": err.pocket,
                    "reason": err.message,
                },
            )
        )


def audit_refusals(fn: F) -> F:
    """Wrap an entry point so a StudyRefused it raises is audited once, then raised on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StudyRefused as err:
            if err.audit_seq is None:
                ctl = _controller_of(args)
                if ctl is not None:
                    try:
                        err.audit_seq = record_refusal(ctl, err)
                    except Exception as failure:  # the refusal stands whatever happens here
                        err.audit_seq = -1
                        err.details.append(f"the refusal could not be audited: {failure}")
            raise

    return wrapper  # type: ignore[return-value]
