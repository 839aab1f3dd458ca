"""The hands of a simulated person at an in-process virtual cabinet (`sim:` backends only).

The CLI picks these when the backend holds a VirtualCabinet in this process (the in-process sim
driver, or a test rig that serves one on the wire): then `open`, `add N`, `take N` and `close`
typed at the terminal, or the steps of a script, pull the virtual drawer and put packs in it
through the cabinet's `sim_*` inputs. It uses nothing else of the simulation, imports none of it
(the cabinet is duck-typed), and the session still learns what happened only from the driver.

A cabinet served by emulators in another process (`adc sim serve`) cannot be reached from here:
that tier is treated like real hardware (`NoHands`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from adc.errors import AdcError
from adc.session.hands import Done, own_door

if TYPE_CHECKING:
    from collections.abc import Iterable

    from adc.controller.contents import Contents
    from adc.controller.restock import Line


class SimHands:
    """Acts on a VirtualCabinet; `lock` is the emulators' lock when the cabinet is also served."""

    acts = True
    name = "simulated hands"
    help = "simulated hands: add N · take N · close · open (pull again)"

    def __init__(self, cabinet: Any, lock: AbstractContextManager[Any] | None = None) -> None:
        self.cabinet = cabinet
        self._lock = lock

    def _guard(self) -> AbstractContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    def open(self, line: Line) -> Done:
        with self._guard():
            if not self.cabinet.sim_open(line.drawer):
                return Done(False, f"pulled drawer {line.drawer}: it stays shut (latched)")
            if own_door(line) and not self.cabinet.sim_open(line.pocket):
                return Done(
                    False, f"drawer {line.drawer} open; the door of {line.pocket} stays shut"
                )
        door = f" and {line.pocket}" if own_door(line) else ""
        return Done(True, f"opened drawer {line.drawer}{door}")

    def put(self, line: Line, units: int) -> Done:
        try:
            with self._guard():
                self.cabinet.sim_add(line.pocket, units, line.unit_weight_g or None)
        except AdcError as err:
            return Done(False, f"could not put {units} in: {err.message}")
        return Done(True, f"put {units} into {line.pocket}")

    def take(self, line: Line, units: int) -> Done:
        try:
            with self._guard():
                self.cabinet.sim_take(line.pocket, units)
        except AdcError as err:
            return Done(False, f"could not take {units} out: {err.message}")
        return Done(True, f"took {units} out of {line.pocket}")

    def close(self, line: Line) -> Done:
        with self._guard():
            self.cabinet.sim_close(line.drawer)  # shuts the lids and doors inside it first
        return Done(True, f"closed drawer {line.drawer}")


def mirror_records(driver: object, contents: Iterable[Contents]) -> int:
    """Put into an in-process virtual cabinet what the records say each pocket holds (a `sim:`
    backend otherwise starts with its profile's `initial_units` of a default weight, and the
    hands would take packs out of a pocket the records call empty). Returns the pockets set up;
    0 where the driver holds no virtual cabinet (real hardware, emulators in another process)."""
    cabinet = getattr(driver, "cabinet", None)
    stock = getattr(cabinet, "sim_stock", None)
    if not callable(stock):
        return 0
    done = 0
    for entry in contents:
        stock(entry.pocket, entry.units, entry.unit_weight_g or None)
        done += 1
    return done


def sim_hands_for(driver: object) -> SimHands | None:
    """Simulated hands when the driver holds a virtual cabinet in this process, else None."""
    cabinet = getattr(driver, "cabinet", None)
    if cabinet is not None and callable(getattr(cabinet, "sim_open", None)):
        return SimHands(cabinet)
    return None
