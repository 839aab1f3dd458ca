"""A cycle count at the cabinet (`adc count --backend`): one pocket's access, then its count.

The pocket is opened through its `PocketAccess` (adc/controller/access.py), as every unlock is:
in service, on record before the pulse, the drawer and pocket locks released together, the
partial unlock recorded. The person opens it, counts, shuts it and types the count; the visit
then waits until the access saw the pocket closed (or relatch unopened) and judged every lock's
relock, and only then reads the scale: a scale read while the drawer is open, or inside the
pulse, weighs a hand. The access is closed on record once the count is recorded.

Waiting is the caller's waiter's (simulated time on a sim backend, wall time otherwise); the
controller never sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adc.controller.access import AccessState, PocketAccess
from adc.drivers.base import DriverError, Quality, RearmRefused

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller
    from adc.controller.counts import CycleTarget, SensorCount
    from adc.drivers.base import CabinetDriver
    from adc.waiting import Waiter

STEP_S = 0.1  # how often the switches are read while the pocket is unlocked or open
REARM_TRIES = 3  # unlock attempts while a lock re-arms after its last pulse
PULSE_WAIT_S = 3.0  # after an interrupt, once the pulse is over: how long a latch may take


@dataclass
class CountVisit:
    """One pocket of a cycle count at the cabinet; see the module docstring."""

    access: PocketAccess
    waiter: Waiter
    target: CycleTarget
    critical: Callable[[], AbstractContextManager[Any]] = nullcontext  # holds Ctrl-C (CLI)

    @classmethod
    def begin(
        cls,
        ctl: Controller,
        driver: CabinetDriver,
        waiter: Waiter,
        cabinet: str,
        target: CycleTarget,
        actor: Actor,
        critical: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> CountVisit:
        access = PocketAccess.for_pocket(ctl, driver, cabinet, actor, target.pocket, "count")
        return cls(access, waiter, target, critical)

    def unlock(self) -> None:
        """Release the pocket (a lock still re-arming is waited for); the access's errors as
        they are: Refused (out of service), UnlockIncomplete (recorded), DriverError."""
        for attempt in range(REARM_TRIES):
            try:
                with self.critical():  # the pulse and the state that says so: never half
                    self.access.unlock()
                return
            except RearmRefused as busy:
                if attempt == REARM_TRIES - 1:
                    raise
                self.waiter.sleep(busy.remaining_ms / 1000 + 0.05)

    def wait_closed(self, tick: Callable[[AccessState], None] | None = None) -> AccessState:
        """Poll until the pocket is shut and its relock judged (or it relatched unopened, or the
        access failed); `tick` runs at every step (a screen, a test's hands)."""
        while True:
            state = self.access.poll()
            if self.access.settled or state is AccessState.FAILED:
                return state
            if tick is not None:
                tick(state)
            self.waiter.sleep(STEP_S)

    def weigh(self) -> tuple[SensorCount | None, str | None]:
        """The scale's implied count, read after the close (None with the reason otherwise)."""
        from adc.controller.counts import SensorCount

        target, access = self.target, self.access
        if target.sensor_kind != "weight" or not target.sensor_point or not target.unit_weight_g:
            return None, None
        if not access.settled:
            return None, "scale not read: the pocket did not close"
        try:
            reading = access.driver.weight(target.sensor_point)
        except DriverError as err:
            return None, f"scale unreadable: {err.message}"
        if reading.quality is not Quality.OK:
            return None, f"scale reports {reading.quality.value}"
        tolerance = access.ctl.policy.weight_tolerance
        return SensorCount.from_weight(reading.grams, target.unit_weight_g, tolerance), None

    def interrupted(self) -> None:
        """Ctrl-C while the pocket is unlocked: wait out the pulse until the latches hold again
        (or someone opened it), so the access ends with what is known."""
        access = self.access
        if access.state is AccessState.UNLOCKED:
            self._watch_relatch()
        if access.opened:
            access.flag_for_recount("count interrupted")

    def _watch_relatch(self) -> None:
        access = self.access
        pulse_end = access.pulse_end()
        left = 0.0
        if pulse_end is not None:
            left = max(0.0, (pulse_end - access.ctl.now()).total_seconds())
        deadline = self.waiter.now() + left + PULSE_WAIT_S
        while self.waiter.now() < deadline:
            try:
                state = access.poll()
            except DriverError:
                state = AccessState.UNLOCKED
            if state is not AccessState.UNLOCKED or access.latched():
                return
            self.waiter.sleep(STEP_S)

    def finish(self, outcome: str) -> None:
        self.access.finish(outcome)
