"""`adc demo`: a virtual cabinet from a shipped profile, driven through the real driver port.

A simulated person takes two items out of a drawer: the drawer is unlocked through the driver,
opened, emptied by two, closed, and the readings before and after are shown, with proof that the
drawer relocked. Time is SimPy time, advanced by this command where real code would wait, so the
whole visit takes a few virtual seconds and no real ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from adc.commands.common import console

if TYPE_CHECKING:
    from adc.drivers.sim import SimDriver
    from adc.profiles.models import Drawer, Pocket


def demo(
    profile: Annotated[
        str, typer.Option(help="Shipped profile name or path of the cabinet to run.")
    ] = "tcp-6drawer",
    drawer: Annotated[
        str | None,
        typer.Option(help="Drawer to take from (default: the first holding two sensed items)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the virtual cabinet's noise.")] = 0,
    offline: Annotated[
        str | None,
        typer.Option(
            help="Take this device offline first, to see how a silent device is reported."
        ),
    ] = None,
) -> None:
    """Unlock a drawer of a virtual cabinet, take two items, close it; show the readings."""
    from adc.drivers.registry import open_backend

    driver: SimDriver = open_backend(f"sim:{profile}", seed=seed)  # type: ignore[assignment]
    try:
        if offline:
            driver.cabinet.sim_inject_fault("device_offline", offline)
        _visit(driver, _choose_drawer(driver, drawer))
    finally:
        driver.close()


def _sensed(pocket: Pocket) -> bool:
    return pocket.sensor.point is not None


def _choose_drawer(driver: SimDriver, wanted: str | None) -> Drawer:
    from adc.errors import BadInput

    drawers = driver.profile.layout.drawers
    if wanted is not None:
        for drawer in drawers:
            if drawer.id == wanted:
                return drawer
        known = ", ".join(d.id for d in drawers)
        raise BadInput(f"no drawer {wanted!r} in {driver.profile.name} (drawers: {known})")
    for drawer in drawers:
        if sum(len(driver.cabinet.units(p.id)) for p in drawer.pockets if _sensed(p)) >= 2:
            return drawer
    raise BadInput(f"no drawer of {driver.profile.name} holds two sensed items to take")


def _plan(driver: SimDriver, drawer: Drawer) -> list[tuple[Pocket, int]]:
    """Which sensed pockets to take from, and how many, to take two items in all."""
    from adc.errors import BadInput

    plan, left = [], 2
    for pocket in drawer.pockets:
        held = len(driver.cabinet.units(pocket.id)) if _sensed(pocket) else 0
        if held and left:
            plan.append((pocket, min(held, left)))
            left -= min(held, left)
    if left:
        raise BadInput(f"drawer {drawer.id} holds fewer than two sensed items")
    return plan


def _read(driver: SimDriver, rows: list[tuple[str, str, str]]) -> list[str]:
    """Each row's reading through the driver port, as text (errors propagate, typed)."""
    sim = driver.profile.sim
    out = []
    for kind, point, _ in rows:
        if kind == "lock":
            out.append("engaged" if driver.lock_engaged(point) else "released")
        elif kind == "switch":
            out.append("closed" if driver.input_active(point) else "open")
        elif kind == "presence":
            out.append("present" if driver.input_active(point) else "empty")
        else:
            reading = driver.weight(point)
            units = (reading.grams - sim.tare_g) / sim.unit_weight_g
            flag = "" if reading.quality == "ok" else f" ({reading.quality.upper()})"
            out.append(f"{reading.grams:.1f} g ≈ {units:.0f} units{flag}")
    return out


def _rows(drawer: Drawer, plan: list[tuple[Pocket, int]]) -> list[tuple[str, str, str]]:
    rows = [("lock", drawer.lock, f"drawer {drawer.id} lock"), ("switch", drawer.switch, "switch")]
    for pocket, _ in plan:
        lock, switch = pocket.lock or pocket.lid_lock, pocket.switch or pocket.lid_switch
        door = "lid" if pocket.lid_lock else "door"
        if lock:
            rows.append(("lock", lock, f"{pocket.id} {door} lock"))
        if switch:
            rows.append(("switch", switch, f"{pocket.id} {door}"))
        kind = "weight" if pocket.sensor.kind == "weight" else "presence"
        rows.append((kind, pocket.sensor.point, f"{pocket.id} {pocket.sensor.kind}"))  # type: ignore[arg-type]
    return rows


def _visit(driver: SimDriver, drawer: Drawer) -> None:
    from rich.table import Table

    from adc.errors import CheckFailed

    out = console()
    cabinet = driver.cabinet
    plan = _plan(driver, drawer)
    rows = _rows(drawer, plan)
    before = _read(driver, rows)
    release = driver.profile.sim.actuation_ms / 1000 + 0.05

    def log(text: str) -> None:
        out.print(f"  [dim]t={driver.now:7.3f} s[/]  {text}", highlight=False)

    out.print(
        f"[bold]Virtual cabinet {driver.profile.name}[/] (seed {cabinet.seed}): "
        f"a person takes two items from drawer {drawer.id}"
    )
    log(f"unlock: pulse {drawer.lock}")
    driver.pulse(drawer.lock)
    driver.advance(release)
    opened = cabinet.sim_open(drawer.id)
    log(f"a person pulls drawer {drawer.id}: {'it opens' if opened else 'it stays shut'}")
    if not opened:
        raise CheckFailed(f"drawer {drawer.id} did not open after its unlock")
    for pocket, count in plan:
        lock = pocket.lock or pocket.lid_lock
        if lock:
            log(f"unlock {pocket.id}: pulse {lock}")
            driver.pulse(lock)
            driver.advance(release)
            if not cabinet.sim_open(pocket.id):
                raise CheckFailed(f"{pocket.id} did not open after its unlock")
        taken = cabinet.sim_take(pocket.id, count)
        log(f"takes {count} from {pocket.id} ({', '.join(f'{g:g} g' for g in taken)})")
    cabinet.sim_close(drawer.id)
    log(f"closes drawer {drawer.id}")
    driver.advance(2.0)  # the pulses end, the load cells settle
    after = _read(driver, rows)
    log("readings after")

    table = Table(title=f"drawer {drawer.id}: before and after", title_justify="left")
    for column in ("what", "point", "before", "after"):
        table.add_column(column)
    for (_, point, what), old, new in zip(rows, before, after, strict=True):
        style = "bold" if old != new else ""
        table.add_row(what, point, old, new, style=style)
    out.print(table)

    if not (driver.lock_engaged(drawer.lock) and driver.input_active(drawer.switch)):
        raise CheckFailed(f"drawer {drawer.id} did not relock")
    if cabinet.sim_open(drawer.id):
        raise CheckFailed(f"drawer {drawer.id} opened again without an unlock")
    out.print(
        f"[green]Drawer {drawer.id} relocked:[/] lock {drawer.lock} engaged, switch "
        f"{drawer.switch} closed, and a pull no longer opens it."
    )
