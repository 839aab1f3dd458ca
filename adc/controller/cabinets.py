"""Cabinets and pockets: registering a cabinet from its hardware profile, assigning items.

Registration copies from the profile exactly the device points the controller drives for each
drawer and pocket (locks, switches, sensor, guide light), so a restock session needs nothing but
the database and a driver. A restock session checks that the driver's profile is the one the
cabinet was registered with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from adc.controller.context import Actor, Controller
from adc.controller.formulary import find_item
from adc.controller.inventory import check_levels
from adc.controller.models import Cabinet, Drawer, Item, MaintenanceEvent, Pocket
from adc.controller.permissions import Action
from adc.controller.stock import find_pocket, held_lots, item_label, no_such_cabinet
from adc.errors import BadInput, Refused

CABINET_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class CabinetView:
    id: str
    profile: str
    drawers: int
    pockets: int
    simulated: bool = False


def add_cabinet(
    ctl: Controller,
    actor: Actor,
    cabinet_id: str,
    profile_path: str | Path,
    *,
    simulated: bool = False,
) -> CabinetView:
    """Register a cabinet, its drawers and pockets from a hardware profile (path or shipped name).

    `simulated`: a virtual cabinet (demo, scenarios, practice), whose master data a simulated
    backend may write (`check_measurement_source`)."""
    from adc.profiles import load_profile, resolve_profile_path

    if not CABINET_ID.match(cabinet_id):
        raise BadInput(
            f"cabinet id {cabinet_id!r} is not valid: a letter, then up to 31 letters, digits, "
            "'_', '.', '-'"
        )
    path = resolve_profile_path(profile_path)
    profile = load_profile(path)
    with ctl.write(actor, Action.CABINET_MANAGE) as tx:
        if tx.session.get(Cabinet, cabinet_id) is not None:
            raise BadInput(f"cabinet {cabinet_id} exists already")
        tx.session.add(
            Cabinet(
                id=cabinet_id,
                profile_name=profile.name,
                profile_path=str(path),
                description=profile.description,
                created_at=tx.now,
                simulated=simulated,
            )
        )
        position = 0
        for d_index, drawer in enumerate(profile.layout.drawers):
            row = Drawer(
                cabinet_id=cabinet_id,
                code=drawer.id,
                position=d_index,
                lock_point=drawer.lock,
                switch_point=drawer.switch,
                light_point=drawer.light,
            )
            tx.session.add(row)
            tx.session.flush()
            for pocket in drawer.pockets:
                tx.session.add(
                    Pocket(
                        cabinet_id=cabinet_id,
                        drawer_id=row.id or 0,
                        code=pocket.id,
                        position=position,
                        kind=pocket.kind.value,
                        capacity=pocket.capacity,
                        sensor_kind=pocket.sensor.kind.value,
                        sensor_point=pocket.sensor.point,
                        lock_point=pocket.lock,
                        switch_point=pocket.switch,
                        lid_lock_point=pocket.lid_lock,
                        lid_switch_point=pocket.lid_switch,
                        light_point=pocket.light,
                        temperature_point=pocket.temperature,
                    )
                )
                position += 1
        tx.audit(
            "cabinet.add",
            {
                "cabinet": cabinet_id,
                "profile": profile.name,
                "path": str(path),
                "drawers": len(profile.layout.drawers),
                "pockets": position,
                **({"simulated": True} if simulated else {}),
            },
        )
    return CabinetView(cabinet_id, profile.name, len(profile.layout.drawers), position, simulated)


def list_cabinets(ctl: Controller) -> list[CabinetView]:
    with ctl.read() as session:
        cabinets = session.execute(select(Cabinet).order_by(Cabinet.id)).scalars().all()
        views = []
        for cab in cabinets:
            drawers = session.execute(select(Drawer.id).where(Drawer.cabinet_id == cab.id)).all()
            pockets = session.execute(select(Pocket.id).where(Pocket.cabinet_id == cab.id)).all()
            views.append(
                CabinetView(cab.id, cab.profile_name, len(drawers), len(pockets), cab.simulated)
            )
        return views


def get_cabinet(session: Any, cabinet_id: str) -> Cabinet:
    cabinet = session.get(Cabinet, cabinet_id)
    if cabinet is None:
        raise no_such_cabinet(cabinet_id)
    return cabinet


def check_measurement_source(cabinet: Cabinet, *, from_simulator: bool, what: str) -> None:
    """The one rule for master data measured through a backend (a unit weight, ...): what a
    simulated backend measures is the virtual cabinet's own default, not the cabinet's, so it may
    be written only to a cabinet registered as simulated. `what` names the write, e.g. "the unit
    weight of D1-P1's item"."""
    if from_simulator and not cabinet.simulated:
        raise Refused(
            f"cabinet {cabinet.id} is not a simulated cabinet: {what} measured on a simulated "
            "backend (sim:) would overwrite its master data with the virtual cabinet's; measure "
            "it on the cabinet's own hardware (or register a cabinet with `adc cabinet add "
            "--simulated` to practise)"
        )


def check_item_measurement_source(
    session: Any, item_id: int, *, from_simulator: bool, what: str
) -> None:
    """An item's master data (its unit weight) is read by every cabinet that stocks it: measured
    on a simulated backend it may be written only where no real cabinet stocks the item, or a
    practice calibration would change what every real scale count of that drug computes."""
    if not from_simulator:
        return
    real = session.execute(
        select(Cabinet.id)
        .join(Pocket, Pocket.cabinet_id == Cabinet.id)
        .where(Pocket.item_id == item_id, Cabinet.simulated.is_(False))  # type: ignore[attr-defined]
        .distinct()
        .order_by(Cabinet.id)
    ).scalars()
    names = list(real)
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise Refused(
            f"{what} is also used by cabinet(s) {shown}, which are not simulated: measured on a "
            "simulated backend (sim:) it would change their master data; measure it on real "
            "hardware (or practise with an item no real cabinet stocks)"
        )


@dataclass(frozen=True)
class Assignment:
    pocket: str
    item: str
    par: int
    critical_low: int
    max: int


def assign_pocket(
    ctl: Controller,
    actor: Actor,
    cabinet_id: str,
    pocket_code: str,
    item_ref: str,
    *,
    par: int,
    critical_low: int,
    max_qty: int,
) -> Assignment:
    """Set a pocket's item and levels. Changing the item needs an empty pocket (unload first)."""
    with ctl.write(actor, Action.POCKET_ASSIGN) as tx:
        get_cabinet(tx.session, cabinet_id)
        pocket = find_pocket(tx.session, cabinet_id, pocket_code)
        item = find_item(tx.session, item_ref)
        if pocket.kind == "return-bin":
            raise Refused(f"pocket {pocket.code} is a return bin: it holds no assigned item")
        check_levels(par, critical_low, max_qty, pocket.capacity)
        if pocket.item_id not in (None, item.id) and (
            pocket.on_hand or held_lots(tx.session, pocket.id or 0)
        ):
            current = tx.session.get(Item, pocket.item_id)
            raise Refused(
                f"pocket {pocket.code} holds {pocket.on_hand} of {item_label(current)}: "
                "unload it before assigning another item"
            )
        if max_qty < pocket.on_hand:
            raise Refused(f"pocket {pocket.code} holds {pocket.on_hand}, more than max {max_qty}")
        before = {
            "item_id": pocket.item_id,
            "par": pocket.par,
            "critical_low": pocket.critical_low,
            "max": pocket.max_qty,
        }
        pocket.item_id, pocket.par, pocket.critical_low, pocket.max_qty = (
            item.id,
            par,
            critical_low,
            max_qty,
        )
        after = {"item_id": item.id, "par": par, "critical_low": critical_low, "max": max_qty}
        if before == after:
            raise Refused(f"pocket {pocket.code} is assigned like that already")
        from adc.controller.shortages import update_levels

        notes = update_levels(tx, pocket) if pocket.on_hand or before["item_id"] == item.id else {}
        tx.audit(
            "pocket.assign",
            {
                "cabinet": cabinet_id,
                "pocket": pocket.code,
                "before": before,
                "after": after,
                **({"shortages": notes} if notes else {}),
            },
        )
        return Assignment(pocket.code, item_label(item), par, critical_low, max_qty)


def record_maintenance(
    ctl: Controller,
    actor: Actor,
    cabinet_id: str,
    kind: str,
    detail: str = "",
    *,
    drawer: str | None = None,
    pocket: str | None = None,
) -> int:
    """A service engineer's record of work on a cabinet (recovery, calibration, repair)."""
    with ctl.write(actor, Action.MAINTENANCE) as tx:
        get_cabinet(tx.session, cabinet_id)
        event = MaintenanceEvent(
            cabinet_id=cabinet_id,
            drawer_code=drawer,
            pocket_code=pocket,
            kind=kind,
            detail=detail,
            user_id=actor.user_id,
            at=tx.now,
        )
        tx.session.add(event)
        tx.session.flush()
        tx.audit(
            "maintenance.record",
            {
                "cabinet": cabinet_id,
                "kind": kind,
                "detail": detail,
                "drawer": drawer,
                "pocket": pocket,
                "id": event.id,
            },
        )
        return event.id or 0
