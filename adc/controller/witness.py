"""The second person: who may witness what, checked inside the transaction that records it.

A witness is an `Actor` the caller obtained from `users.authenticate` (the witness typed their own
PIN). That proves who they were at the moment they authenticated; the transaction checks again,
under the writer lock, that they still exist, are active and not locked out, are not the acting
user, and hold a role `permissions.CS_WITNESS` names for the action. So a witness disabled
between their PIN and the record is refused, like an actor would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adc.controller.permissions import CS_WITNESS, Action
from adc.errors import Refused

if TYPE_CHECKING:
    from adc.controller.context import Actor, FastTx, Tx


def witness_roles(action: Action) -> str:
    return " or ".join(sorted(CS_WITNESS.get(action, frozenset())))


def check_witness(
    tx: Tx | FastTx, action: Action, witness: Actor | None, *, required: bool, what: str
) -> Any:
    """The witness's row as the database knows it now, None if none was given and none is
    needed, or Refused saying why not."""
    if witness is None:
        if required:
            raise Refused(f"{what} needs a witness ({witness_roles(action)}) who authenticates")
        return None
    assert tx.user is not None, "a witnessed action has an acting user"
    if witness.user_id == tx.user.id:
        raise Refused(f"{tx.user.username} cannot witness their own {what}")
    user = tx.load_user(witness.user_id)
    if user is None:
        raise Refused(f"witness {witness.username} no longer exists")
    if not user.active:
        raise Refused(f"witness {user.username} is disabled")
    if user.locked:
        raise Refused(f"witness {user.username} is locked out")
    roles = CS_WITNESS.get(action, frozenset())
    if user.role not in roles:
        raise Refused(
            f"witness {user.username} is a {user.role}; {what} needs a {witness_roles(action)}"
        )
    return user
