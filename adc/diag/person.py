"""Who stands at the cabinet while a diagnostics procedure runs, and how the procedure asks them.

Some checks need hands: a door switch only changes when someone opens the door, a lock without
feedback is only proven jammed when a pull during the pulse does not open it, a recount needs
someone to count. Three kinds of person, chosen once with the backend (`adc.diag.bench`):
- `SimulatedPerson`: the VirtualCabinet's simulated person (`sim_open`, `sim_take` ...). Only
  possible where the cabinet object is in this process: the in-process backend, or a test rig that
  holds the cabinet behind its emulators. A wire driver talking to `adc sim serve` in another
  process cannot reach it, so that tier is treated like real hardware.
- `PromptPerson`: the service engineer, asked on the terminal.
- `NoPerson`: nobody; checks that need hands are reported "not exercised".
What a person says is an observation ("it opened", "it stayed shut"); the verdicts compare it with
what the switches and locks report through the driver, never with the simulation's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from adc.waiting import Waiter


@dataclass(frozen=True)
class Door:
    """Something a person opens: a drawer, or a pocket's lid or door."""

    target: str  # drawer id or pocket id, as the profile names it
    label: str  # "drawer D1", "lid of D2-P1"
    lock: str  # lock point
    switch: str  # the switch that reads closed (active) while it is shut


class Person(Protocol):
    present: bool
    name: str
    reaction_s: float  # how long to watch a switch for what the person does

    def before_pulse(self, door: Door) -> None:
        """Get ready to pull (a real engineer holds the handle: the latch opens only briefly)."""
        ...

    def pull(self, door: Door, waiter: Waiter, window_s: float) -> bool | None:
        """Pull while the lock is pulsed: True it opened, False it stayed shut, None unknown."""
        ...

    def close(self, door: Door) -> None: ...

    def pull_locked(self, door: Door, waiter: Waiter) -> bool | None:
        """Pull without a pulse (it should stay shut): True if it opened (then shut it again)."""
        ...

    def saw_open(self, door: Door) -> bool | None:
        """Asked after the switch did not show the door open: did it open? None: cannot say."""
        ...

    def count(self, pocket: str, label: str) -> int | None:
        """A blind count: the person is never told what the system expects."""
        ...

    def empty(self, pocket: str, label: str) -> int | None:
        """Take everything out of an open pocket; how many units came out (None: nobody)."""
        ...

    def put(self, pocket: str, label: str, n: int) -> None:
        """Put `n` units in: those taken out first, then reference units of the same item."""
        ...

    def take(self, pocket: str, label: str, n: int) -> None:
        """Take `n` units out again (reference units put in beyond those taken out)."""
        ...


class NoPerson:
    """Nobody at the cabinet: every question goes unanswered."""

    present = False
    name = "nobody"
    reaction_s = 0.0

    def before_pulse(self, door: Door) -> None:
        return None

    def pull(self, door: Door, waiter: Waiter, window_s: float) -> bool | None:
        return None

    def close(self, door: Door) -> None:
        return None

    def pull_locked(self, door: Door, waiter: Waiter) -> bool | None:
        return None

    def saw_open(self, door: Door) -> bool | None:
        return None

    def count(self, pocket: str, label: str) -> int | None:
        return None

    def empty(self, pocket: str, label: str) -> int | None:
        return None

    def put(self, pocket: str, label: str, n: int) -> None:
        return None

    def take(self, pocket: str, label: str, n: int) -> None:
        return None


class SimulatedPerson:
    """The VirtualCabinet's simulated person, acting at the pace of the waiter's clock."""

    present = True
    name = "simulated person"
    reaction_s = 0.2

    def __init__(self, cabinet: Any, step_s: float = 0.01) -> None:
        self.cabinet = cabinet
        self.step_s = step_s
        self._held: dict[str, list[float]] = {}  # units taken out of a pocket, by pocket

    def before_pulse(self, door: Door) -> None:
        return None

    def pull(self, door: Door, waiter: Waiter, window_s: float) -> bool | None:
        start = waiter.now()
        while True:
            if self.cabinet.sim_open(door.target):
                return True
            if waiter.now() - start >= window_s:
                return False
            waiter.sleep(self.step_s)

    def close(self, door: Door) -> None:
        self.cabinet.sim_close(door.target)

    def pull_locked(self, door: Door, waiter: Waiter) -> bool | None:
        opened = bool(self.cabinet.sim_open(door.target))
        if opened:
            waiter.sleep(self.step_s)
            self.cabinet.sim_close(door.target)
        return opened

    def saw_open(self, door: Door) -> bool | None:
        return bool(self.cabinet.is_open(door.target))

    def count(self, pocket: str, label: str) -> int | None:
        return len(self.cabinet.units(pocket))

    def empty(self, pocket: str, label: str) -> int | None:
        n = len(self.cabinet.units(pocket))
        taken = self.cabinet.sim_take(pocket, n) if n else []
        self._held.setdefault(pocket, []).extend(taken)
        return n

    def put(self, pocket: str, label: str, n: int) -> None:
        held = self._held.setdefault(pocket, [])
        for _ in range(n):
            weight = held.pop() if held else None
            self.cabinet.sim_add(pocket, 1, weight)

    def take(self, pocket: str, label: str, n: int) -> None:
        if n > 0:
            self.cabinet.sim_take(pocket, n)


Ask = Callable[[str], str]


class PromptPerson:
    """The engineer at the cabinet, asked through `ask` (a terminal prompt in the CLI)."""

    present = True
    name = "engineer (prompted)"
    reaction_s = 10.0

    def __init__(self, ask: Ask, tries: int = 3) -> None:
        self.ask = ask
        self.tries = tries

    def before_pulse(self, door: Door) -> None:
        self.ask(f"Hold the handle of {door.label} and press Enter; pull when the lock clicks")

    def pull(self, door: Door, waiter: Waiter, window_s: float) -> bool | None:
        return None  # the switch will tell; `saw_open` asks if it does not

    def close(self, door: Door) -> None:
        self.ask(f"Close {door.label} and press Enter")

    def pull_locked(self, door: Door, waiter: Waiter) -> bool | None:
        return self._yes_no(f"Pull {door.label} without unlocking. Did it open? [y/n]")

    def saw_open(self, door: Door) -> bool | None:
        return self._yes_no(f"Did {door.label} open? [y/n]")

    def count(self, pocket: str, label: str) -> int | None:
        return self._number(f"Blind count: how many units are in pocket {pocket} ({label})?")

    def empty(self, pocket: str, label: str) -> int | None:
        return self._number(
            f"Take everything out of pocket {pocket} ({label}) and keep it aside. "
            "How many units did you take out?"
        )

    def put(self, pocket: str, label: str, n: int) -> None:
        self.ask(f"Put exactly {n} unit(s) into pocket {pocket} ({label}), then press Enter")

    def take(self, pocket: str, label: str, n: int) -> None:
        self.ask(f"Take {n} unit(s) out of pocket {pocket} ({label}) again, then press Enter")

    def _yes_no(self, question: str) -> bool | None:
        for _ in range(self.tries):
            answer = self.ask(question).strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
        return None

    def _number(self, question: str) -> int | None:
        for _ in range(self.tries):
            answer = self.ask(question).strip()
            if answer.isdigit():
                return int(answer)
        return None
