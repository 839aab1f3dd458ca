"""CPU time of a scenario run split by who spends it: the controller (every function and method
defined in `adc.controller`), the station's supervision (`Supervisor.poll`, `plan`,
`read_record`, and whatever they call, controller rules included: that is the station's work,
not a transaction's), the simulated hardware (the sim driver and `adc.sim`, when the controller
or a person calls it), and the rest (the simulated people, the scenario's bookkeeping, SimPy).

Exclusive time: a call into another scope pauses the caller's clock. Supervision is sticky (what
it calls stays supervision, its driver snapshot and rules included); the hardware the
controller drives through the access machine is counted as hardware. Only public functions and
methods are wrapped, and not the controller's statement-level helpers (store, rows, db): the
clock is read only where the scope changes, and the wrappers add about a tenth to a run.

Used by bench/sim_throughput.py: the controller's share is "the controller alone" doing exactly
the scenario's transactions (logins, withdrawals through the access machine, restock lines,
counts, go-live loads), the floor the simulation around it is compared with.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

CONTROLLER, SUPERVISION, HARDWARE, REST = "controller", "supervision", "hardware", "rest"
_STICKY = frozenset({SUPERVISION})


class ScopeClock:
    """Exclusive process time per scope, on a stack of scopes entered and left."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack = [REST]
        self.mark = time.process_time()

    def enter(self, scope: str) -> None:
        top = self.stack[-1]
        if top in _STICKY:
            scope = top
        if scope != top:
            now = time.process_time()
            self.spent[top] += now - self.mark
            self.mark = now
            self.calls[scope] += 1
        self.stack.append(scope)

    def leave(self) -> None:
        scope = self.stack.pop()
        if scope != self.stack[-1]:
            now = time.process_time()
            self.spent[scope] += now - self.mark
            self.mark = now

    def close(self) -> dict[str, float]:
        now = time.process_time()
        self.spent[self.stack[-1]] += now - self.mark
        self.mark = now
        return dict(self.spent)


# The controller's statement-level helpers: only ever called by the controller itself, and
# thousands of times a simulated day, so a wrapper there would cost more than it tells.
_CONTROLLER_INNER = frozenset(
    f"adc.controller.{name}" for name in ("store", "rows", "models", "clock", "db")
)


def _scope_of(module: str) -> str | None:
    """The scope of a function defined in `module`: every controller module but its
    statement-level helpers; of the simulated hardware, the sim driver's entry points only
    (the virtual cabinet behind it is called from there, or by a person acting on it)."""
    if module.startswith("adc.controller") and module not in _CONTROLLER_INNER:
        return CONTROLLER
    if module == "adc.drivers.sim":
        return HARDWARE
    return None


def _wrapped(fn: Callable[..., Any], scope: str, clock: ScopeClock) -> Callable[..., Any]:
    enter, leave = clock.enter, clock.leave

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        enter(scope)
        try:
            return fn(*args, **kwargs)
        finally:
            leave()

    call.__scope_wrapped__ = fn  # type: ignore[attr-defined]
    return call


def _plain(fn: object) -> bool:
    return (
        inspect.isfunction(fn)
        and not inspect.isgeneratorfunction(fn)
        and not hasattr(fn, "__scope_wrapped__")
    )


@contextmanager
def scoped(clock: ScopeClock, supervisor: type) -> Iterator[ScopeClock]:
    """Every controller and sim function wrapped for the clock (in its module, in each `adc`
    module that imported it by name, and as a method of its class); undone on exit."""
    undo: list[tuple[object, str, object]] = []
    wrappers: dict[int, Callable[..., Any]] = {}

    def patch(owner: object, name: str, fn: Callable[..., Any], scope: str) -> None:
        wrapper = wrappers.get(id(fn))
        if wrapper is None:
            wrapper = wrappers[id(fn)] = _wrapped(fn, scope, clock)
        undo.append((owner, name, fn))
        setattr(owner, name, wrapper)

    modules = [m for name, m in list(sys.modules.items()) if name.startswith("adc") and m]
    for module in modules:
        for name, value in list(vars(module).items()):
            if _plain(value):
                scope = _scope_of(getattr(value, "__module__", "") or "")
                if scope is not None:
                    patch(module, name, value, scope)
            elif inspect.isclass(value) and value.__module__ == module.__name__:
                scope = _scope_of(module.__name__)
                if scope is None:
                    continue
                for attr, member in list(vars(value).items()):
                    if attr.startswith("_") or not _plain(member):
                        continue  # private methods run inside a public one
                    patch(value, attr, member, scope)
    for attr in ("poll", "plan", "read_record"):
        patch(supervisor, attr, getattr(supervisor, attr), SUPERVISION)
    try:
        yield clock
    finally:
        for owner, name, fn in reversed(undo):
            setattr(owner, name, fn)
