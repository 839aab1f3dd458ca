"""Role → action, enforced by the controller: every (role, action) pair through the real call."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from adc.controller import (
    cabinets,
    discrepancies,
    diversion,
    formulary,
    inventory,
    recalls,
    returns,
    settings,
    shortages,
    users,
    waste,
)
from adc.controller.clock import ManualClock
from adc.controller.context import Actor
from adc.controller.diversion_signals import Period
from adc.controller.gs1 import gtin_for_ndc, parse_scan
from adc.controller.models import Role
from adc.controller.permissions import PERMISSIONS, Action, allowed
from adc.errors import Refused
from tests.controller.site import ACETAMINOPHEN, CABINET, HEPARIN, Site, build_site, datamatrix

A = Action
# The specification, written out independently of adc/controller/permissions.py.
EXPECTED: dict[Role, set[Action]] = {
    Role.ADMIN: {A.USER_MANAGE, A.SETTINGS_MANAGE, A.CABINET_MANAGE, A.DIVERSION_REVIEW},
    Role.SERVICE: {A.CABINET_MANAGE, A.MAINTENANCE},
    Role.TECHNICIAN: {A.POCKET_ASSIGN, A.RESTOCK, A.COUNT, A.PULL, A.RECALL_MANAGE},
    Role.NURSE: {A.REMOVE, A.COUNT, A.WASTE, A.RETURN, A.DISCREPANCY_RESOLVE},
    Role.PHARMACIST: {
        A.FORMULARY_MANAGE,
        A.POCKET_ASSIGN,
        A.RESTOCK,
        A.REMOVE,
        A.COUNT,
        A.PULL,
        A.RECALL_MANAGE,
        A.SHORTAGE_ACK,
        A.WASTE,
        A.RETURN,
        A.RETURN_BIN_CLEAR,
        A.DISCREPANCY_RESOLVE,
        A.DIVERSION_REVIEW,
    },
}


def test_the_table_is_the_specification() -> None:
    assert {role: set(actions) for role, actions in PERMISSIONS.items()} == EXPECTED
    for role, action in itertools.product(Role, Action):
        assert allowed(role, action) == (action in EXPECTED[role])
    assert not allowed("janitor", Action.REMOVE)  # an unknown role may do nothing


def _prepare(site: Site, clock: ManualClock) -> int:
    """Stock that every action can work on; returns an open shortage notification's id."""
    site.assign("D1-P1", ACETAMINOPHEN, par=10, critical_low=2, max_qty=20)
    site.assign("D2-P1", HEPARIN, par=10, critical_low=0, max_qty=20)
    good = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 1, 31), "G1"))
    inventory.refill(site.ctl, site.pharmacist, CABINET, "D1-P1", good, 10)
    soon = parse_scan(datamatrix(HEPARIN, clock.now().date() + timedelta(days=3), "S1"))
    inventory.refill(site.ctl, site.pharmacist, CABINET, "D2-P1", soon, 4, confirm_short_dated=True)
    site.assign("D2-P2", ACETAMINOPHEN, par=10, critical_low=2, max_qty=20)  # for the shortage
    inventory.refill(site.ctl, site.pharmacist, CABINET, "D2-P2", good, 3)
    low = inventory.remove(site.ctl, site.pharmacist, CABINET, "D2-P2", 1)  # → critical-low
    clock.advance(days=5)  # lot S1 has expired: D2-P1 needs a pull
    # controlled-substance work: an open discrepancy, and cabinet CS1's return bin holding 2 units
    inventory.count(site.ctl, site.pharmacist, CABINET, "D1-P1", 9)
    cabinets.add_cabinet(site.ctl, site.service, "CS1", "cs-small")
    cabinets.assign_pocket(
        site.ctl, site.pharmacist, "CS1", "F-1", ACETAMINOPHEN, par=10, critical_low=2, max_qty=20
    )
    inventory.refill(site.ctl, site.pharmacist, "CS1", "F-1", good, 10)
    taken = inventory.remove(site.ctl, site.pharmacist, "CS1", "F-1", 2)
    returns.return_units(site.ctl, site.pharmacist, "CS1", taken.txn_ids[0], 2)
    return low.shortages["opened"][0]


def _actions(site: Site, tmp_path: Path, shortage_id: int) -> dict[Action, Callable[..., object]]:
    counter = itertools.count()
    ctl = site.ctl

    def new_item(actor: object) -> object:
        n = next(counter)
        csv = tmp_path / f"item{n}.csv"
        gtin = gtin_for_ndc(f"99999{n:04d}0")
        csv.write_text(
            "name,strength,form,ndc,gtins,schedule,high_alert,unit_weight_g\n"
            f"Probe {n},1 mg,tablet,99999-{n:04d}-0,{gtin},,no,0.5\n"
        )
        return formulary.import_items(ctl, actor, csv)  # type: ignore[arg-type]

    scan = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 1, 31), "G2"))
    acetaminophen = site.item_id(ACETAMINOPHEN)

    def return_one(actor: Actor) -> object:
        # the remover returns (or a pharmacist): removed by the actor where they may remove
        remover = actor if allowed(actor.role, A.REMOVE) else site.pharmacist
        removal = inventory.remove(ctl, remover, "CS1", "F-1", 1).txn_ids[0]
        return returns.return_units(ctl, actor, "CS1", removal, 1)

    def resolve(actor: Actor) -> object:
        witness = site.nurse if actor.user_id != site.nurse.user_id else site.pharmacist
        return discrepancies.resolve(ctl, actor, 1, "miscount", "recounted", witness=witness)

    return {
        A.USER_MANAGE: lambda a: users.add_user(ctl, a, f"probe{next(counter)}", "nurse", "1357"),
        A.SETTINGS_MANAGE: lambda a: settings.set_setting(
            ctl, a, "short-dated-days", str(20 + next(counter))
        ),
        A.CABINET_MANAGE: lambda a: cabinets.add_cabinet(ctl, a, f"C{next(counter)}", "cs-small"),
        A.MAINTENANCE: lambda a: cabinets.record_maintenance(ctl, a, CABINET, "inspection"),
        A.FORMULARY_MANAGE: new_item,
        A.POCKET_ASSIGN: lambda a: cabinets.assign_pocket(
            ctl,
            a,
            CABINET,
            "D1-P1",
            ACETAMINOPHEN,
            par=11 + next(counter),
            critical_low=2,
            max_qty=20,
        ),
        A.RESTOCK: lambda a: inventory.refill(ctl, a, CABINET, "D1-P1", scan, 1),
        A.REMOVE: lambda a: inventory.remove(ctl, a, CABINET, "D1-P1", 1),
        A.COUNT: lambda a: inventory.count(ctl, a, CABINET, "D1-P1", 2),
        A.PULL: lambda a: inventory.pull(ctl, a, CABINET, "D2-P1", 4),
        A.RECALL_MANAGE: lambda a: recalls.add_recall(ctl, a, HEPARIN, f"R{next(counter)}"),
        A.SHORTAGE_ACK: lambda a: shortages.acknowledge(ctl, a, shortage_id),
        A.WASTE: lambda a: waste.waste(ctl, a, CABINET, 1, "dropped", witness=None, pocket="D1-P1"),
        A.RETURN: return_one,
        A.RETURN_BIN_CLEAR: lambda a: returns.clear_return_bin(ctl, a, "CS1", {acetaminophen: 2}),
        A.DISCREPANCY_RESOLVE: resolve,
        A.DIVERSION_REVIEW: lambda a: diversion.review(
            ctl, a, Period(ctl.now() - timedelta(days=1), ctl.now() + timedelta(days=1))
        ),
    }


@pytest.mark.parametrize("role", list(Role))
def test_every_action_is_enforced_for_every_role(role: Role, db_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    site = build_site(db_url, clock)
    shortage_id = _prepare(site, clock)
    actions = _actions(site, tmp_path, shortage_id)
    assert set(actions) == set(Action), "every action needs an entry point under test"
    actor = site.actors[role]
    outcome: dict[Action, bool] = {}
    for action, call in actions.items():
        refusal = ""
        try:
            call(actor)
        except Refused as err:
            refusal = err.message
        assert not refusal or "not allowed" in refusal, (action, refusal)  # refused for the role
        outcome[action] = not refusal
    assert {a for a, ok in outcome.items() if ok} == EXPECTED[role]
    site.ctl.db.close()


def test_a_disabled_users_session_is_refused_at_the_next_change(site: Site) -> None:
    site.assign("D1-P1", ACETAMINOPHEN)
    stale = site.tech  # authenticated before being disabled
    users.disable_user(site.ctl, site.admin, "technician")
    scan = parse_scan(datamatrix(ACETAMINOPHEN, date(2027, 1, 31), "G1"))
    with pytest.raises(Refused, match="user technician is disabled"):
        inventory.refill(site.ctl, stale, CABINET, "D1-P1", scan, 1)
