"""Who may do what: one table, role → actions, enforced by the controller on every change.

The CLI asks nothing of its own: every controller function that changes something names its action,
and `Database.write` re-reads the acting user inside the locked transaction (still active? locked
out? role?) before anything is written. Separation of duties follows the pharmacy: admins manage
people and settings but never touch stock; service engineers manage hardware; nurses remove and
count; technicians restock; pharmacists do everything clinical.
"""

from __future__ import annotations

from enum import StrEnum

from adc.controller.models import Role


class Action(StrEnum):
    USER_MANAGE = "user.manage"  # add, disable, unlock users
    SETTINGS_MANAGE = "settings.manage"  # policy values, shortage sink
    CABINET_MANAGE = "cabinet.manage"  # register a cabinet from its hardware profile
    MAINTENANCE = "maintenance"  # record service work on a cabinet
    FORMULARY_MANAGE = "formulary.manage"  # import items
    POCKET_ASSIGN = "pocket.assign"  # item, par, critical-low, max of a pocket
    RESTOCK = "restock"  # refill, load and unload pockets
    REMOVE = "remove"  # take doses out for a patient
    COUNT = "count"  # count a pocket
    PULL = "pull"  # take expired or recalled stock out
    RECALL_MANAGE = "recall.manage"  # enter recalls
    SHORTAGE_ACK = "shortage.acknowledge"
    WASTE = "waste"  # record doses destroyed (partly used, dropped, refused), with a witness
    RETURN = "return"  # put unused doses into the cabinet's return bin
    RETURN_BIN_CLEAR = "return-bin.clear"  # empty the return bin and account for what was in it
    DISCREPANCY_RESOLVE = "discrepancy.resolve"  # close a discrepancy with a reason and a witness
    DIVERSION_REVIEW = "diversion.review"  # read the diversion scores and a user's evidence


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(
        {
            Action.USER_MANAGE,
            Action.SETTINGS_MANAGE,
            Action.CABINET_MANAGE,
            Action.DIVERSION_REVIEW,
        }
    ),
    Role.SERVICE: frozenset({Action.CABINET_MANAGE, Action.MAINTENANCE}),
    Role.TECHNICIAN: frozenset(
        {Action.POCKET_ASSIGN, Action.RESTOCK, Action.COUNT, Action.PULL, Action.RECALL_MANAGE}
    ),
    Role.NURSE: frozenset(
        {Action.REMOVE, Action.COUNT, Action.WASTE, Action.RETURN, Action.DISCREPANCY_RESOLVE}
    ),
    Role.PHARMACIST: frozenset(
        {
            Action.FORMULARY_MANAGE,
            Action.POCKET_ASSIGN,
            Action.RESTOCK,
            Action.REMOVE,
            Action.COUNT,
            Action.PULL,
            Action.RECALL_MANAGE,
            Action.SHORTAGE_ACK,
            Action.WASTE,
            Action.RETURN,
            Action.RETURN_BIN_CLEAR,
            Action.DISCREPANCY_RESOLVE,
            Action.DIVERSION_REVIEW,
        }
    ),
}


# Actions that need a witness of one of these roles when they expose a controlled substance:
# service work (diagnostics, calibration, recovery) may pulse locks, and a service engineer opening a
# pocket that holds a scheduled item needs a pharmacist beside them (adc/controller/maintenance.py).
# Wasting a controlled substance and resolving a discrepancy always need one (a licensed person
# who saw it: a pharmacist or a nurse); restocking one needs one where the cabinet's policy says
# so; a return or a return-bin clear-out records one when given (adc/controller/witness.py).
_LICENSED = frozenset({Role.PHARMACIST, Role.NURSE})
CS_WITNESS: dict[Action, frozenset[Role]] = {
    Action.MAINTENANCE: frozenset({Role.PHARMACIST}),
    Action.WASTE: _LICENSED,
    Action.DISCREPANCY_RESOLVE: _LICENSED,
    Action.RESTOCK: _LICENSED,
    Action.RETURN: _LICENSED,
    Action.RETURN_BIN_CLEAR: frozenset({Role.PHARMACIST, Role.NURSE, Role.TECHNICIAN}),
}


def allowed(role: Role | str, action: Action) -> bool:
    try:
        return action in PERMISSIONS[Role(role)]
    except ValueError:
        return False  # a role this version does not know may do nothing
