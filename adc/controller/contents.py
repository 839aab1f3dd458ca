"""What the records say each pocket of a cabinet holds: units and the unit weight of its item.

A read for whoever must set up a stand-in for the cabinet (the in-process virtual cabinet of a
`sim:` backend starts with what the records hold, so a person exercising a session at it meets
the stock the controller believes is there). Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from adc.controller.context import Controller
from adc.controller.models import Item, Pocket


@dataclass(frozen=True)
class Contents:
    pocket: str
    units: int
    unit_weight_g: float | None  # None: the item has none on record (or no item)


def recorded_contents(ctl: Controller, cabinet: str) -> list[Contents]:
    query = (
        select(Pocket.code, Pocket.on_hand, Item.unit_weight_g)
        .outerjoin(Item, Item.id == Pocket.item_id)
        .where(Pocket.cabinet_id == cabinet)
        .order_by(Pocket.position)
    )
    with ctl.read() as session:
        return [Contents(code, on_hand, weight) for code, on_hand, weight in session.execute(query)]
