"""Whose hands open the pocket: the adapter between a restock session and the physical access.

At a real cabinet the technician opens the drawer and loads the pocket with their own hands; the
session only sees the switches and the scale through the driver, and has nothing to do but wait.
That is `NoHands`. At a virtual cabinet nobody pulls the drawer unless told to, so the operator
(at the terminal: `open`, `add 10`, `close`; in a script: implicitly) needs hands that act on the
simulation: `adc.session.simhands.SimHands`, chosen by the CLI together with a `sim:` backend.

The session never asks which kind it has, only whether the hands act (`acts`): then the terminal
passes the person's `open`/`add N`/`take N`/`close` to them and a script has them do the access.
A pulsed latch is released for about half a second, so hands that act hold the handle and pull
while the lock clicks (`Runner.pull`), as a person at a real cabinet does. Whatever the hands do,
the session judges the access by what the driver reports (switches, scale), never by their word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from adc.controller.restock import Line


@dataclass(frozen=True)
class Done:
    """What the hands did: whether it worked (as far as the hands can tell) and in words."""

    ok: bool
    message: str


class Hands(Protocol):
    """Hands that can open, fill and close a pocket on command (or none that can)."""

    acts: bool  # True: these hands do the access on command; False: a person does it physically
    name: str
    help: str  # one line naming the commands a person may type for these hands

    def open(self, line: Line) -> Done:
        """Pull the drawer (and the pocket's lid or door); says what happened."""
        ...

    def put(self, line: Line, units: int) -> Done:
        """Put `units` packs of the line's item into the open pocket."""
        ...

    def take(self, line: Line, units: int) -> Done:
        """Take `units` packs out of the open pocket."""
        ...

    def close(self, line: Line) -> Done:
        """Shut the pocket's lid or door and the drawer."""
        ...


class NoHands:
    """A real person at real hardware (or the emulators of another process): nothing to command."""

    acts = False
    name = "the technician"
    help = ""

    def _nobody(self) -> Done:
        return Done(False, "there are no simulated hands here: open and close the drawer yourself")

    def open(self, line: Line) -> Done:
        return self._nobody()

    def put(self, line: Line, units: int) -> Done:
        return self._nobody()

    def take(self, line: Line, units: int) -> Done:
        return self._nobody()

    def close(self, line: Line) -> Done:
        return self._nobody()


def own_door(line: Line) -> bool:
    """Whether the pocket has a lid or door of its own inside its drawer (lidded, cubie)."""
    return line.points.access_switch != line.points.drawer_switch
