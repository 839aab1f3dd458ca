"""Studies (protocols) and what belongs to them: authorized users, investigational items, pockets.

A study is set up by a pharmacist (the investigational drug service): it names the protocol, its
title, sponsor and principal investigator, the users authorized to handle its stock, the items of
the formulary that are investigational for it (their own formulary entries, with their own GTINs
and lots, often without an NDC) and the pockets that hold them. Stock is kept apart from the
start: an item whose stock sits in a pocket outside the study cannot be marked investigational,
and a pocket holding or assigned a commercial item cannot be given to a study. The day-to-day
rules (who may touch the stock, subject ids, closed studies) are in study_rules.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from adc.controller.context import Actor, Controller
from adc.controller.formulary import find_item
from adc.controller.models import Item, Pocket, StockLot, User
from adc.controller.permissions import Action
from adc.controller.stock import find_pocket, is_held, item_label
from adc.controller.study_rules import DEFAULT_SUBJECT_PATTERN, check_pattern
from adc.controller.study_tables import (
    Study,
    StudyItem,
    StudyPocket,
    StudyStatus,
    StudyUser,
)
from adc.errors import BadInput, Refused

# Study setup is the pharmacy's work: the action that manages the formulary (pharmacists).
SETUP = Action.FORMULARY_MANAGE
_PROTOCOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")


def check_protocol(protocol: str) -> str:
    text = protocol.strip()
    if not text.isascii() or not _PROTOCOL.fullmatch(text):
        raise BadInput(
            f"protocol {protocol[:40]!r}: 1 to 64 letters, digits, '.', '_', '/' or '-' "
            "(e.g. NCI-2026-00123)"
        )
    return text


def _text(value: str, what: str, max_len: int = 200) -> str:
    text = value.strip()
    if not text:
        raise BadInput(f"{what} cannot be empty")
    if len(text) > max_len or not text.isprintable():
        raise BadInput(f"{what}: at most {max_len} printable characters")
    return text


def get_study(session: Session, protocol: str) -> Study:
    study = session.get(Study, protocol.strip())
    if study is None:
        raise BadInput(f"no study {protocol!r} (adc study list shows them)")
    return study


def _user(session: Session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username.strip().lower())).scalar()
    if user is None:
        raise BadInput(f"unknown user {username!r}")
    return user


@dataclass(frozen=True)
class StudyView:
    protocol: str
    title: str
    sponsor: str
    investigator: str
    status: str
    subject_pattern: str
    users: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    pockets: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _view(session: Session, study: Study, *, detail: bool) -> StudyView:
    users: list[str] = []
    items: list[dict[str, Any]] = []
    pockets: list[dict[str, Any]] = []
    if detail:
        users = list(
            session.execute(
                select(User.username)
                .join(StudyUser, StudyUser.user_id == User.id)
                .where(StudyUser.protocol == study.protocol)
                .order_by(User.username)
            ).scalars()
        )
        for item in session.execute(
            select(Item)
            .join(StudyItem, StudyItem.item_id == Item.id)
            .where(StudyItem.protocol == study.protocol)
            .order_by(Item.name)
        ).scalars():
            items.append({"id": item.id, "item": item_label(item), "ndc": item.ndc})
        for pocket in session.execute(
            select(Pocket)
            .join(StudyPocket, StudyPocket.pocket_id == Pocket.id)
            .where(StudyPocket.protocol == study.protocol)
            .order_by(Pocket.cabinet_id, Pocket.position)
        ).scalars():
            item = session.get(Item, pocket.item_id) if pocket.item_id else None
            pockets.append(
                {
                    "cabinet": pocket.cabinet_id,
                    "pocket": pocket.code,
                    "item": item_label(item) if item else None,
                    "on_hand": pocket.on_hand,
                }
            )
    return StudyView(
        study.protocol,
        study.title,
        study.sponsor,
        study.investigator,
        study.status,
        study.subject_pattern or f"default: {DEFAULT_SUBJECT_PATTERN}",
        users,
        items,
        pockets,
    )


def add_study(
    ctl: Controller,
    actor: Actor,
    protocol: str,
    *,
    title: str,
    sponsor: str,
    investigator: str,
    subject_pattern: str | None = None,
) -> StudyView:
    """A new open study; its subject ids follow `subject_pattern` (a regex) or the default."""
    protocol = check_protocol(protocol)
    values = {
        "title": _text(title, "--title"),
        "sponsor": _text(sponsor, "--sponsor"),
        "investigator": _text(investigator, "--investigator"),
        "subject_pattern": check_pattern(subject_pattern) if subject_pattern else None,
    }
    with ctl.write(actor, SETUP) as tx:
        if tx.session.get(Study, protocol) is not None:
            raise Refused(f"study {protocol} exists already")
        study = Study(protocol=protocol, created_at=tx.now, **values)
        tx.session.add(study)
        tx.session.flush()
        tx.audit("study.add", {"protocol": protocol, **values})
        return _view(tx.session, study, detail=True)


def list_studies(ctl: Controller) -> list[StudyView]:
    with ctl.read() as session:
        studies = session.execute(select(Study).order_by(Study.protocol)).scalars()
        return [_view(session, s, detail=False) for s in studies]


def show_study(ctl: Controller, protocol: str) -> StudyView:
    with ctl.read() as session:
        return _view(session, get_study(session, protocol), detail=True)


def authorize(ctl: Controller, actor: Actor, protocol: str, username: str) -> StudyView:
    """Authorize a user to handle the study's stock (restock, remove, return, count, report)."""
    with ctl.write(actor, SETUP) as tx:
        study = get_study(tx.session, protocol)
        user = _user(tx.session, username)
        if tx.session.get(StudyUser, (study.protocol, user.id)) is not None:
            raise Refused(f"{user.username} is authorized for {study.protocol} already")
        tx.session.add(StudyUser(protocol=study.protocol, user_id=user.id or 0))
        tx.session.flush()
        tx.audit("study.authorize", {"protocol": study.protocol, "user": user.username})
        return _view(tx.session, study, detail=True)


def revoke(ctl: Controller, actor: Actor, protocol: str, username: str) -> StudyView:
    with ctl.write(actor, SETUP) as tx:
        study = get_study(tx.session, protocol)
        user = _user(tx.session, username)
        row = tx.session.get(StudyUser, (study.protocol, user.id))
        if row is None:
            raise Refused(f"{user.username} is not authorized for {study.protocol}")
        tx.session.delete(row)
        tx.session.flush()
        tx.audit("study.revoke", {"protocol": study.protocol, "user": user.username})
        return _view(tx.session, study, detail=True)


def mark_item(ctl: Controller, actor: Actor, protocol: str, item_ref: str) -> StudyView:
    """Mark an item investigational for the study. Refused if the item already belongs to a
    study, or if any pocket outside this study holds it or has it assigned (that stock would be
    commercial stock turned into study stock: a study drug has its own formulary entry)."""
    with ctl.write(actor, SETUP) as tx:
        session = tx.session
        study = get_study(session, protocol)
        item = find_item(session, item_ref)
        other = session.get(StudyItem, item.id)
        if other is not None:
            same = other.protocol == study.protocol
            raise Refused(
                f"{item_label(item)} is investigational for {other.protocol}"
                + (" already" if same else ": an item belongs to one study")
            )
        in_study = select(StudyPocket.pocket_id).where(StudyPocket.protocol == study.protocol)
        outside = list(
            session.execute(
                select(Pocket.cabinet_id, Pocket.code)
                .where(
                    Pocket.id.not_in(in_study),  # type: ignore[union-attr]
                    (Pocket.item_id == item.id)
                    | Pocket.id.in_(  # type: ignore[union-attr]
                        select(StockLot.pocket_id).where(StockLot.item_id == item.id, is_held())
                    ),
                )
                .order_by(Pocket.cabinet_id, Pocket.code)
            ).all()
        )
        if outside:
            where = ", ".join(f"{c}/{p}" for c, p in outside[:5])
            raise Refused(
                f"{item_label(item)} is assigned to or held in pocket(s) outside study "
                f"{study.protocol} ({where}): commercial stock is never study stock; an "
                "investigational item has its own formulary entry, GTINs and lots"
            )
        session.add(StudyItem(item_id=item.id or 0, protocol=study.protocol))
        session.flush()
        tx.audit(
            "study.item",
            {"protocol": study.protocol, "item_id": item.id, "item": item_label(item)},
        )
        return _view(session, study, detail=True)


def assign_pocket(
    ctl: Controller, actor: Actor, protocol: str, cabinet: str, pocket_code: str
) -> StudyView:
    """Give a pocket to the study: only such pockets hold its stock. The pocket must be empty of
    anything else and assigned no commercial item; a return bin is never a study pocket."""
    with ctl.write(actor, SETUP) as tx:
        session = tx.session
        study = get_study(session, protocol)
        if study.status == StudyStatus.CLOSED:
            raise Refused(f"study {study.protocol} is closed")
        pocket = find_pocket(session, cabinet, pocket_code)
        if pocket.kind == "return-bin":
            raise Refused(f"pocket {pocket.code} is a return bin: never a study pocket")
        current = session.get(StudyPocket, pocket.id)
        if current is not None:
            same = current.protocol == study.protocol
            raise Refused(
                f"pocket {pocket.code} is assigned to study {current.protocol}"
                + (" already" if same else ": unassign it there first")
            )
        held_items = set(
            session.execute(
                select(StockLot.item_id).where(StockLot.pocket_id == pocket.id, is_held())
            ).scalars()
        )
        if pocket.item_id is not None:
            held_items.add(pocket.item_id)
        study_items = set(
            session.execute(
                select(StudyItem.item_id).where(StudyItem.protocol == study.protocol)
            ).scalars()
        )
        commercial = held_items - study_items
        if commercial:
            item = session.get(Item, min(commercial))
            raise Refused(
                f"pocket {pocket.code} holds or is assigned {item_label(item)}, not an item of "
                f"study {study.protocol}: unload and unassign it first (study stock is never "
                "mixed with commercial stock)"
            )
        session.add(StudyPocket(pocket_id=pocket.id or 0, protocol=study.protocol))
        session.flush()
        tx.audit(
            "study.pocket",
            {"protocol": study.protocol, "cabinet": cabinet, "pocket": pocket.code},
        )
        return _view(session, study, detail=True)


def unassign_pocket(
    ctl: Controller, actor: Actor, protocol: str, cabinet: str, pocket_code: str
) -> StudyView:
    """Take an empty pocket back from the study (its item unassigned first: `adc restock`
    unload)."""
    with ctl.write(actor, SETUP) as tx:
        session = tx.session
        study = get_study(session, protocol)
        pocket = find_pocket(session, cabinet, pocket_code)
        row = session.get(StudyPocket, pocket.id)
        if row is None or row.protocol != study.protocol:
            raise Refused(f"pocket {pocket.code} is not assigned to study {study.protocol}")
        held = session.execute(
            select(func.count()).where(StockLot.pocket_id == pocket.id, is_held())
        ).scalar_one()
        if pocket.item_id is not None or pocket.on_hand or held:
            raise Refused(
                f"pocket {pocket.code} still holds or is assigned study stock: unload it first"
            )
        session.delete(row)
        session.flush()
        tx.audit(
            "study.pocket.unassign",
            {"protocol": study.protocol, "cabinet": cabinet, "pocket": pocket.code},
        )
        return _view(session, study, detail=True)


def close_study(ctl: Controller, actor: Actor, protocol: str, reason: str) -> StudyView:
    """Close the study: no removal and no new stock from now on; what is left is returned to
    the pharmacy (unload) and stays on the accountability record."""
    why = _text(reason, "--reason", 500)
    with ctl.write(actor, SETUP) as tx:
        study = get_study(tx.session, protocol)
        if study.status == StudyStatus.CLOSED:
            raise Refused(f"study {study.protocol} is closed already")
        study.status = StudyStatus.CLOSED
        study.closed_at = tx.now
        tx.session.add(study)
        tx.session.flush()
        tx.audit("study.close", {"protocol": study.protocol, "reason": why})
        return _view(tx.session, study, detail=True)
