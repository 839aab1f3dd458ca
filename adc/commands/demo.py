"""`adc demo`: the main job on embedded defaults, readable in under a minute.

Two parts, both on virtual cabinets from shipped profiles, no hardware and no set-up needed:
1. the hardware, briefly (`--hardware` shows only this): a simulated person takes two items out
   of a drawer unlocked through the real driver port; the readings before and after, and proof
   that the drawer relocked;
2. the technician's job: a fresh SQLite database (a given `--db` is kept for inspection, else a
   temporary one is removed afterwards), the demo formulary and users, cabinet W1 registered
   from tcp-6drawer, a scripted restock of its refill list (the same runner and script format as
   `adc restock --script`) that refuses a wrong-drug scan and an expired lot on the way, a
   pharmacist's recall, and the reports.

Time is SimPy time, advanced where real code would wait, so the restock round takes about half a
minute of simulated time and a second or two of real time. The controller's clock follows it
(anchored at the real start), so the records carry the times of the simulated round.
Controlled substances are kept out of the scripted round (it shows the refusals); after the
recall, a short controlled-substance part drives the controller's state machines directly on the
same virtual cabinet, so each step can be told: a morphine pocket refilled with a witness after the technician's blind count
on access, a nurse's removal whose blind count finds one cartridge fewer than recorded (a recount,
then the discrepancy stands), and the pharmacist's resolution with the nurse as witness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adc.commands.common import SEED_MAX, console

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller
    from adc.controller.db import Database
    from adc.drivers.sim import SimDriver
    from adc.profiles.models import Drawer, Pocket
    from adc.waiting import Waiter

DEMO_PIN = "1234"
CABINET = "W1"
CABINET_PROFILE = "tcp-6drawer"
# (pocket, GTIN, par, critical-low, max): what the pharmacy stocks in W1 for the demo
ASSIGNMENTS = [
    ("D1-P1", "00304094755038", 10, 2, 20),  # ondansetron 2 mg/mL vial, 4.6 g
    ("D1-P2", "00304096102045", 6, 2, 12),  # furosemide 10 mg/mL vial
    ("D2-P1", "00363323047016", 8, 2, 12),  # heparin 5000 units/mL vial (high alert)
    ("D3-P1", "00300028799598", 5, 1, 10),  # insulin lispro pen (high alert), lidded
    ("D3-P2", "00300750624403", 5, 1, 10),  # enoxaparin prefilled syringe, lidded
    ("D6-P1", "00309046722618", 30, 5, 50),  # acetaminophen 325 mg tablet, no scale
]
HEPARIN, ONDANSETRON = "00363323047016", "00304094755038"


def demo(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Create the demo database here and keep it (a new SQLite file, sqlite:///PATH). "
            "Default: a temporary database, removed afterwards.",
            show_default=False,
        ),
    ] = None,
    hardware: Annotated[
        bool, typer.Option("--hardware", help="Show only the hardware walk-through (part 1).")
    ] = False,
    profile: Annotated[
        str,
        typer.Option(help="Part 1: shipped profile name or path of the cabinet to run."),
    ] = "tcp-6drawer",
    drawer: Annotated[
        str | None,
        typer.Option(
            help="Part 1: drawer to take from (default: the first holding two sensed items)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help="Seed of the virtual cabinets' noise.")
    ] = 0,
    offline: Annotated[
        str | None,
        typer.Option(
            help="Part 1: take this device offline first, to see how a silent device is reported."
        ),
    ] = None,
) -> None:
    """The main job on a virtual cabinet: hardware, restock with refusals, recall, reports."""
    from adc.drivers.registry import open_backend

    started = time.monotonic()
    out = console()
    if db and not hardware:
        _check_new(db)  # before anything runs: a demo never writes into an existing database
    if not hardware:
        out.rule("[bold]1 · the hardware: a drawer through the driver port[/]")
    driver: SimDriver = open_backend(f"sim:{profile}", seed=seed)  # type: ignore[assignment]
    try:
        if offline:
            driver.cabinet.sim_inject_fault("device_offline", offline)
        _visit(driver, _choose_drawer(driver, drawer))
    finally:
        driver.close()
    if hardware:
        return
    _main_job(db, seed)
    out.print(f"[dim]demo finished in {time.monotonic() - started:.1f} s[/]", highlight=False)


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

    from adc.controller.access import service_pulse
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
    # The hardware alone, through the driver port: this part runs before any database exists
    # (`--hardware` never opens one), so there is no access to record and no next start to flag
    # it. `service_pulse` is the access machine's one pulse without a record, for exactly this;
    # part 2, with its database, opens every pocket through a PocketAccess.
    service_pulse(driver, drawer.lock)
    driver.advance(release)
    opened = cabinet.sim_open(drawer.id)
    log(f"a person pulls drawer {drawer.id}: {'it opens' if opened else 'it stays shut'}")
    if not opened:
        raise CheckFailed(f"drawer {drawer.id} did not open after its unlock")
    for pocket, count in plan:
        lock = pocket.lock or pocket.lid_lock
        if lock:
            log(f"unlock {pocket.id}: pulse {lock}")
            service_pulse(driver, lock)
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


# ------------------------------------------------------------------------------ part 2: the job
def _main_job(db: str | None, seed: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="adc-demo-") as tmp:
        if db:
            _job(db, kept=True, workdir=_kept_dir(db) or Path(tmp), seed=seed)
        else:
            _job(f"sqlite:///{Path(tmp) / 'adc-demo.db'}", kept=False, workdir=Path(tmp), seed=seed)


def _kept_dir(url: str) -> Path | None:
    """Where to leave the demo's restock script next to a kept SQLite database."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///")).parent
    return None


def _job(url: str, *, kept: bool, workdir: Path, seed: int) -> None:
    from adc.controller.context import Controller
    from adc.drivers.registry import open_backend
    from adc.session.timing import SessionClock, waiter_for

    out = console()
    out.rule(f"[bold]2 · the job: a technician restocks cabinet {CABINET}[/]")
    driver: SimDriver = open_backend(f"sim:{CABINET_PROFILE}", seed=seed)  # type: ignore[assignment]
    waiter = waiter_for(driver)  # simulated time, advanced where a person would take time
    clock = SessionClock(waiter)
    database = _fresh_database(url, clock.now())
    try:
        ctl = Controller(database, clock)
        people = _site(ctl, url, kept)
        _refill_report(url, "before the round")
        script = _write_script(workdir, ctl.today())
        _restock(ctl, driver, waiter, people["tech"], script)
        _recall(ctl, people["pharm"])
        _controlled(ctl, driver, people)
        _reports(url)
        _closing(ctl, url, kept, script)
    finally:
        database.close()
        driver.close()


def _check_new(url: str) -> None:
    from adc.controller.db import open_database
    from adc.errors import BadInput

    database = open_database(url, create=True)
    try:
        if database.schema_version() is not None:
            raise BadInput(
                f"database {url} exists already: the demo builds a fresh one (give a new file)"
            )
    finally:
        database.close()


def _fresh_database(url: str, now: datetime) -> Database:
    from adc.controller.db import init_database, open_database
    from adc.errors import BadInput

    database = open_database(url, create=True)
    if database.schema_version() is not None:
        database.close()
        raise BadInput(
            f"database {url} exists already: the demo builds a fresh one (give a new file)"
        )
    init_database(database, now)
    return database


def _site(ctl: Controller, url: str, kept: bool) -> dict[str, Actor]:
    """Users, formulary, cabinet W1 and its pocket assignments, through the controller's API."""
    from importlib.resources import as_file, files

    from rich.table import Table

    from adc.controller import cabinets, formulary, users

    users.add_user(ctl, None, "admin", "admin", DEMO_PIN, "Site Admin")
    people = {"admin": users.authenticate(ctl, "admin", DEMO_PIN)}
    for name, role, full in (
        ("pharm", "pharmacist", "Pat Pharmacist"),
        ("tech", "technician", "Terry Technician"),
        ("svc", "service", "Sam Service"),
    ):
        users.add_user(ctl, people["admin"], name, role, DEMO_PIN, full)
        people[name] = users.authenticate(ctl, name, DEMO_PIN)
    with as_file(files("adc") / "data" / "formulary-demo.csv") as csv_path:
        imported = formulary.import_items(ctl, people["pharm"], csv_path)
    view = cabinets.add_cabinet(ctl, people["svc"], CABINET, CABINET_PROFILE, simulated=True)
    for pocket, gtin, par, critical_low, max_qty in ASSIGNMENTS:
        cabinets.assign_pocket(
            ctl,
            people["pharm"],
            CABINET,
            pocket,
            gtin,
            par=par,
            critical_low=critical_low,
            max_qty=max_qty,
        )
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("database", f"{url} ({'kept' if kept else 'temporary'})")
    grid.add_row(
        "users", f"admin, pharm (pharmacist), tech (technician), svc (service); PIN {DEMO_PIN}"
    )
    grid.add_row("formulary", f"{imported.added} items from the demo formulary")
    grid.add_row(
        "cabinet",
        f"{view.id} from profile {view.profile}: {view.drawers} drawers, {view.pockets} pockets, "
        f"{len(ASSIGNMENTS)} assigned (all empty)",
    )
    console().print(grid)
    return people


def _refill_report(url: str, when: str) -> None:
    from adc.commands import reports

    console().print(f"\n[bold]refill list {when}[/] (adc report refill):")
    reports.refill(cabinet=[CABINET], db=url)


def _scan(gtin: str, expiry: date, lot: str) -> str:
    """A DataMatrix as the scanner sends it, written for TOML: GS is the \\u001d escape."""
    return f"]d201{gtin}17{expiry:%y%m%d}10{lot}\\u001d21{lot}0001"


def _write_script(workdir: Path, today: date) -> Path:
    """The round as `adc restock --script` takes it, with expiry dates around today."""
    good, soon, old = today + timedelta(days=400), today + timedelta(days=20), today - timedelta(7)
    text = f"""\
# The demo's restock round (adc demo); run it yourself with
#   ADC_PIN={DEMO_PIN} adc restock --cabinet {CABINET} --user tech --backend sim: --script FILE
cabinet = "{CABINET}"

[[line]]                      # ondansetron: two refusals on the way
pocket = "D1-P1"
scans = [
  "(01){HEPARIN}(17){good:%y%m%d}(10)HEP7",   # wrong drug: heparin
  "{_scan(ONDANSETRON, old, "ON0917")}",       # expired lot
  "{_scan(ONDANSETRON, good, "ON4471")}",
]

[[line]]                      # furosemide: none in the pharmacy today
pocket = "D1-P2"
skip = "out of stock at the pharmacy"

[[line]]
pocket = "D2-P1"
scan = "(01){HEPARIN}(17){good:%y%m%d}(10)HEP7"

[[line]]                      # insulin lispro pens, lidded pocket
pocket = "D3-P1"
scan = "{_scan("00300028799598", good, "IL2201")}"

[[line]]                      # enoxaparin: short-dated, stocked on purpose
pocket = "D3-P2"
scan = "{_scan("00300750624403", soon, "EN0330")}"
accept_short_dated = true

[[line]]                      # acetaminophen: no scale, the quantity is entered
pocket = "D6-P1"
scan = "(01)00309046722618(17){good:%y%m%d}(10)AC5521"
quantity = 30
"""
    path = workdir / "demo-restock.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _restock(ctl: Controller, driver: SimDriver, waiter: Waiter, tech: Actor, path: Path) -> None:
    from adc.controller.restock import begin_restock
    from adc.session.events import Event
    from adc.session.runner import Runner
    from adc.session.script import check_against, parse_script, run_script
    from adc.session.simhands import SimHands
    from adc.session.text import describe

    out = console()
    out.print(
        "\n[bold]restock round[/] (adc restock --script, simulated hands at the virtual cabinet):"
    )
    script = parse_script(path)
    check_against(script, ctl, CABINET)

    def show(event: Event) -> None:
        if event.kind in ("session", "hands", "opened"):
            return  # the demo keeps to what the technician reads
        text = describe(event)
        if text:
            out.print(text, highlight=False, soft_wrap=True)

    session = begin_restock(ctl, driver, CABINET, tech)
    runner = Runner(session, waiter, SimHands(driver.cabinet), show, f"sim:{CABINET_PROFILE}")
    run_script(runner, script)


def _recall(ctl: Controller, pharmacist: Actor) -> None:
    from adc.controller.recalls import add_recall

    blocked = add_recall(ctl, pharmacist, HEPARIN, "HEP7", "particulate matter")
    console().print(
        f"\n[bold]recall[/] pharm enters a recall of heparin lot HEP7 (particulate matter): "
        f"{', '.join(blocked) or 'no pocket'} blocked until the lot is pulled",
        highlight=False,
        soft_wrap=True,
    )


CS_POCKET, MORPHINE, MORPHINE_G = "D4-P1", "00304091890015", 6.3  # lidded, weighed


def _shut(driver: SimDriver, drawer: str, poll: Callable[[], object]) -> None:
    """Close the drawer and poll while the scale settles (simulated seconds)."""
    driver.cabinet.sim_close(drawer)
    for _ in range(30):
        driver.advance(0.1)
        if poll() in ("closed", "done", "failed"):
            return


def _controlled(ctl: Controller, driver: SimDriver, people: dict[str, Actor]) -> None:
    """Count on access, witness, a discrepancy opened by a blind count, and its resolution."""
    from adc.controller import cabinets, discrepancies, users, withdrawal
    from adc.controller.cabinet_policy import set_cabinet_setting
    from adc.controller.restock import LineKind, begin_restock

    out = console()
    say = lambda text: out.print(f"  {text}", highlight=False, soft_wrap=True)  # noqa: E731
    out.print(
        f"\n[bold]controlled substances[/] (morphine 2 mg/mL cartridge, C-II, in {CS_POCKET}):"
    )
    cab = driver.cabinet
    drawer = CS_POCKET.split("-")[0]
    # The scene: the pocket starts empty. Set by the test engineer's input of the virtual cabinet
    # (what it holds before anyone acts), not by opening it: with a database behind the demo,
    # every unlock is a person's access through the access machine, and nobody's is due here.
    cab.sim_stock(CS_POCKET, 0)
    driver.advance(3.05)  # the story keeps its times (setting the scene took this long)
    cabinets.assign_pocket(
        ctl, people["pharm"], CABINET, CS_POCKET, MORPHINE, par=5, critical_low=1, max_qty=10
    )
    set_cabinet_setting(ctl, people["admin"], CABINET, "cs-refill-witness", "true")
    users.add_user(ctl, people["admin"], "nina", "nurse", DEMO_PIN, "Nina Nurse")
    nina = users.authenticate(ctl, "nina", DEMO_PIN)
    say("pharm assigns it; admin: controlled refills in W1 need a witness (cs-refill-witness)")

    session = begin_restock(ctl, driver, CABINET, people["tech"], witness=people["pharm"])
    session.select(CS_POCKET, LineKind.REFILL)
    session.scan(f"]d201{MORPHINE}17{ctl.today() + timedelta(days=400):%y%m%d}10MS2201")
    session.unlock()
    driver.advance(0.05)
    cab.sim_open(drawer), cab.sim_open(CS_POCKET)
    driver.advance(0.1)
    session.poll()
    found = session.count(0)
    say(f"tech opens {CS_POCKET}; blind count on access, expected not shown: 0 → {found.outcome}")
    cab.sim_add(CS_POCKET, 4, MORPHINE_G)
    _shut(driver, drawer, lambda: session.poll().value)
    line = session.line
    assert line is not None
    movement = session.confirm_quantity(5, accept_discrepancy=True)
    session.end()
    say(
        f"tech loads 4 but confirms the 5 on the order against the scale's {line.measured}: "
        f"recorded with witness pharm, restock discrepancy {movement.discrepancy_id} opened"
    )

    driver.advance(3.0)  # later: the solenoids have re-armed
    w = withdrawal.begin_withdrawal(ctl, driver, CABINET, nina, CS_POCKET, 1)
    w.unlock()
    driver.advance(0.05)
    cab.sim_open(drawer), cab.sim_open(CS_POCKET)
    driver.advance(0.1)
    w.poll()
    there = len(cab.units(CS_POCKET))
    first = w.count(there)
    again = w.count(there) if first.outcome == "recount" else first
    say(
        f"nina opens it to take 1; her blind count: {there} → {first.outcome} → {there} again → "
        f"{again.outcome} {again.discrepancy_id} (on record 5, counted {there}): it stands"
    )
    cab.sim_take(CS_POCKET, 1)
    w.record(count_back=len(cab.units(CS_POCKET)))
    _shut(driver, drawer, lambda: w.poll().value)
    w.finish()
    say(f"she takes 1 and counts back {len(cab.units(CS_POCKET))}: matches")
    out.print("  open discrepancies (adc discrepancy list):")
    for row in discrepancies.list_discrepancies(ctl, open_only=True):
        what = (
            f"the scale counted {row.expected}, {row.opened_by} entered {row.counted}"
            if row.trigger == "sensor"
            else f"on record {row.expected}, {row.opened_by} counted {row.counted}"
        )
        due = (row.deadline or "")[:16].replace("T", " ")
        say(f"  {row.id}  {row.pocket} {row.trigger:7} {what}; resolve by {due} UTC")
    for disc_id in (again.discrepancy_id, movement.discrepancy_id):
        assert disc_id is not None
        discrepancies.resolve(
            ctl,
            people["pharm"],
            disc_id,
            "restock-error",
            "4 cartridges were loaded, 5 recorded",
            witness=nina,
        )
    say(
        f"pharm resolves {again.discrepancy_id} and {movement.discrepancy_id} as restock-error, "
        "witness nina (who typed her PIN); nothing recorded is changed, the resolutions are added"
    )
    from adc.controller.csreport import cs_activity, period

    out.print("  the DEA-style record, running balance per pocket (adc report cs-activity):")
    for e in cs_activity(ctl, *period(ctl, ctl.today(), ctl.today()), CABINET):
        witness = f", witness {e.witness}" if e.witness else ""
        note = f" ({e.reason})" if e.reason else ""
        say(f"  {e.at[11:19]} {e.kind:7} {e.change:+d} → {e.balance}  {e.user}{witness}{note}")


def _reports(url: str) -> None:
    from adc.commands import reports

    out = console()
    out.print("\n[bold]reports[/] (adc report ... — each also takes --json and --csv):")
    reports.refill(cabinet=[CABINET], db=url)
    reports.shortages(db=url)
    reports.expiring(within="30d", db=url)
    reports.recalls(db=url)


def _closing(ctl: Controller, url: str, kept: bool, script: Path) -> None:
    from adc.controller.audit import verify_trail

    trail = verify_trail(ctl)  # every chain (the site's and each cabinet's) and their anchors
    out = console()
    chains = len(trail.chains)
    out.print(
        f"\n[bold]audit trail[/] {trail.entries} entries in {chains} "
        f"chain{'s' if chains != 1 else ''}, hash chains verified "
        f"(site head {trail.head_hash[:12]}…)",
        highlight=False,
    )
    if kept:
        out.print(
            f"kept for inspection: adc report refill --db {url}\n"
            f"  the round as a script: {script}\n"
            # W1 wants a witness for controlled refills, and a round at the terminal may reach one
            f"  restock it yourself:  ADC_PIN={DEMO_PIN} ADC_WITNESS_PIN={DEMO_PIN} adc restock "
            f"--cabinet {CABINET} --user tech --witness pharm --backend sim: --db {url}",
            highlight=False,
            soft_wrap=True,
        )
