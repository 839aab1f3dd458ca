"""`adc shortage deliver|ack`: hand notifications to the configured sink, acknowledge one."""

from __future__ import annotations

from typing import Annotated

from adc.commands.access import UserOption
from adc.commands.common import DbOption, command_group, console, id_argument

app = command_group("Shortage notifications: delivery and acknowledgement.")


@app.command()
def deliver(db: DbOption = None) -> None:
    """Send undelivered notifications to the shortage sink (see `adc settings`)."""
    from adc.commands.access import open_controller
    from adc.controller.shortages import deliver_pending
    from adc.errors import BadInput, CheckFailed

    ctl = open_controller(db)
    if not ctl.policy.shortage_sink:
        raise BadInput("no shortage sink configured: adc settings set shortage-sink file:PATH")
    sent = deliver_pending(ctl)
    if ctl.delivery_errors:
        raise CheckFailed(ctl.delivery_errors[-1])
    console().print(
        f"{sent} notification(s) delivered to {ctl.policy.shortage_sink}", highlight=False
    )


@app.command()
def ack(
    shortage_id: Annotated[int, id_argument("Notification id (see adc report shortages).")],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """A pharmacist acknowledges a notification (it stays listed until the pocket is refilled)."""
    from adc.commands.access import login, open_controller
    from adc.controller.shortages import acknowledge

    ctl = open_controller(db)
    acknowledge(ctl, login(ctl, user), shortage_id)
    console().print(f"shortage {shortage_id} acknowledged", highlight=False)
