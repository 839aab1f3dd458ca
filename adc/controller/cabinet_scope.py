"""Which cabinets a report covers: all of them, one, or a list (`adc report … --cabinet A,B`).

Every report query takes the same argument: None (every cabinet), one cabinet id, or a sequence
of ids, and filters with one SQL `IN (…)` on its cabinet column (`scoped`), never with a query
per cabinet: a health system has up to a thousand cabinets on one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select

Cabinets = str | Sequence[str] | None  # what a report function takes
Q = TypeVar("Q")


def cabinet_ids(cabinets: Cabinets) -> tuple[str, ...] | None:
    """The ids named, each once in the order given; None (or empty) is every cabinet."""
    if cabinets is None:
        return None
    if isinstance(cabinets, str):
        return (cabinets,) if cabinets else None
    ids = tuple(dict.fromkeys(cabinets))
    return ids or None


def scoped(query: Q, column: Any, cabinets: Cabinets) -> Q:
    """`query` limited to rows whose `column` is one of the cabinets (unchanged for all)."""
    ids = cabinet_ids(cabinets)
    if ids is None:
        return query
    return query.where(column.in_(ids))  # type: ignore[attr-defined]


def check_known(session: Any, cabinets: Cabinets) -> tuple[str, ...] | None:
    """The ids, once each of them is a registered cabinet (one query); else BadInput naming the
    first unknown one, so a misspelt cabinet is an error, not an empty report."""
    from adc.controller.cabinets import no_such_cabinet
    from adc.controller.models import Cabinet

    ids = cabinet_ids(cabinets)
    if ids is None:
        return None
    known = set(
        session.execute(select(Cabinet.id).where(Cabinet.id.in_(ids))).scalars().all()  # type: ignore[attr-defined]
    )
    for name in ids:
        if name not in known:
            raise no_such_cabinet(name)
    return ids


def as_recorded(cabinets: Cabinets) -> str | list[str] | None:
    """The cabinets as an audit entry records them: None, one id, or a list of ids."""
    ids = cabinet_ids(cabinets)
    if ids is None:
        return None
    return ids[0] if len(ids) == 1 else list(ids)
