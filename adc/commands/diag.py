"""`adc diag`: service diagnostics — ports, scan, selftest, sensors, calibrate, watch, stats, recover.

Thin: each command parses its options, opens what it tests through `adc.diag.bench`, runs one
procedure of `adc.diag`, renders the report (rich, or --json) and records the run against the
registered cabinet. Only typer is imported at module level, so `adc --help` stays fast.

Exit codes: 0 every check passed; 1 a check failed or a rule refused (a controlled-substance
pocket without a witness); 2 bad input (unknown bus, drawer or pocket, malformed URI).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from adc.commands.access import UserOption
from adc.commands.common import (
    QTY_MAX,
    DbOption,
    JsonOption,
    command_group,
    console,
    is_simulated,
    parse_count,
    print_json,
    require_text,
)

if TYPE_CHECKING:
    from adc.diag.bench import Bench
    from adc.diag.recording import Recorder
    from adc.diag.results import Report

app = command_group(
    "Service diagnostics: find buses and devices, cycle locks, check and calibrate sensors, "
    "watch the cabinet, recover a failed drawer."
)

WITNESS_ENV, WITNESS_PIN_ENV = "ADC_WITNESS", "ADC_WITNESS_PIN"
COUNTER_ENV, COUNTER_PIN_ENV = "ADC_COUNTER", "ADC_COUNTER_PIN"

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Backend URI: sim:PROFILE, modbus-tcp://HOST:PORT, modbus-rtu://PORT, "
        "lockboard://PORT, profile:PATH?BUS=PORT.",
        show_default=False,
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Hardware profile (path or shipped name): its own buses, or what a --backend URI "
        "that needs a profile drives.",
        show_default=False,
    ),
]
CabinetOption = Annotated[
    str | None,
    typer.Option(
        "--cabinet",
        help="Registered cabinet: its profile, its stock, and where the run is recorded.",
        show_default=False,
    ),
]
WitnessOption = Annotated[
    str | None,
    typer.Option(
        "--witness",
        envvar=WITNESS_ENV,
        help="Pharmacist witnessing access to controlled substances (PIN from ADC_WITNESS_PIN, "
        "else asked for).",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    int | None,
    typer.Option(
        "--timeout-ms",
        min=5,
        max=60_000,
        help="Reply timeout per request on wire buses.",
        show_default=False,
    ),
]
PersonTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--person-timeout",
        min=0.1,
        max=600.0,
        help="Seconds to watch a switch for what the person does (default: 10 for a prompted "
        "engineer).",
        show_default=False,
    ),
]
PersonOption = Annotated[
    str,
    typer.Option(
        "--person",
        help="Who opens doors and counts: auto (the simulated person on the sim backend, else a "
        "prompt on a terminal, else nobody), prompt, none, simulated.",
    ),
]


# ------------------------------------------------------------------------------------ plumbing
def _ask(question: str) -> str:
    return str(typer.prompt(question, default="", show_default=False))


def _login_as(ctl: Any, user: str | None, env: str, what: str) -> Any:
    from adc.commands.access import read_pin
    from adc.controller.users import authenticate

    if not user:
        return None
    return authenticate(ctl, user, read_pin(f"PIN for {user} ({what})", env))


def _recorder(
    db: str | None,
    cabinet: str | None,
    user: str | None,
    witness: str | None,
    *,
    required: bool,
    backend: str | None,
) -> Recorder | None:
    """The recorder of a run on a registered cabinet (None: a bench run, not recorded). A run on a
    simulated backend is recorded only against a simulated cabinet (`check_record_source`): the
    virtual cabinet's verdicts must never return a real drawer to service."""
    from adc.errors import BadInput

    if cabinet is None:
        if required:
            raise BadInput(
                "this command opens locks: name the registered cabinet (--cabinet ID) and who "
                "is acting (--user NAME), so the run is authorised and recorded"
            )
        if witness:
            raise BadInput("--witness needs --cabinet: a witness signs a recorded run")
        return None
    from adc.commands.access import login, open_controller
    from adc.controller.permissions import Action
    from adc.diag.recording import Recorder

    ctl = open_controller(db)
    actor = login(ctl, user)
    ctl.check(actor, Action.MAINTENANCE)
    witness_actor = _login_as(ctl, witness, WITNESS_PIN_ENV, "witness")
    recorder = Recorder(ctl, actor, cabinet, witness_actor)
    recorder.profile_path()  # the cabinet exists
    from adc.controller.maintenance import check_record_source

    check_record_source(ctl, cabinet, from_simulator=is_simulated(backend))
    from adc.commands.access import recover_interrupted

    recover_interrupted(ctl, cabinet)
    return recorder


def _bench(
    recorder: Recorder | None,
    backend: str | None,
    profile: str | None,
    timeout_ms: int | None,
    person: str,
    person_timeout: float | None = None,
    purpose: str | None = None,
) -> Bench:
    """The bench a command tests. `purpose`: the command opens locks, each through the access
    machine's service mode (`Recorder.gate`), on the access log under this purpose. A command
    without a recorder (no --cabinet: no database) gets no gate, and the procedures pulse no
    lock (fail closed); the lock-opening commands require --cabinet anyway."""
    from adc.diag.bench import PersonMode, open_bench
    from adc.errors import BadInput

    try:
        mode = PersonMode(person)
    except ValueError:
        raise BadInput(
            f"--person wants one of {', '.join(m.value for m in PersonMode)}, not {person!r}"
        ) from None
    bench = open_bench(
        backend=backend,
        profile=profile,
        cabinet_profile=recorder.profile_path() if recorder else None,
        timeout_ms=timeout_ms,
        person=mode,
        ask=_ask,
    )
    if person_timeout is not None:
        bench.person.reaction_s = person_timeout
    if recorder is not None:
        try:
            recorder.check_profile(bench.profile)
        except BaseException:
            bench.close()
            raise
        from adc.session.timing import SessionClock

        # the access machine judges a relock on the controller's clock: the bench's time
        recorder.ctl.clock = SessionClock(bench.waiter)
        if purpose is not None:
            bench.gate = recorder.gate(purpose)  # every pulse a ServiceCycle, on record
    return bench


@contextmanager
def _opened(
    recorder: Recorder | None,
    backend: str | None,
    profile: str | None,
    timeout_ms: int | None,
    person: str = "none",
    person_timeout: float | None = None,
    purpose: str | None = None,
) -> Iterator[Bench]:
    """The bench of `_bench`, closed when the block ends, however it ends."""
    bench = _bench(recorder, backend, profile, timeout_ms, person, person_timeout, purpose)
    try:
        yield bench
    finally:
        bench.close()


def _finish(
    report: Report,
    recorder: Recorder | None,
    bench_profile: Any,
    as_json: bool,
    *,
    extra: dict[str, Any] | None = None,
    record: bool = True,
) -> None:
    """Record, render, and exit 1 when a check failed or a rule refused."""
    from adc.diag.render import print_report

    recorded, event_id = "not recorded (no --cabinet): a bench run", None
    out_of_service: list[str] = []
    if recorder is not None and record:
        from adc.controller.maintenance import out_of_service as blocked

        event_id = recorder.record(report, bench_profile, details=extra)
        recorded = f"recorded as maintenance event {event_id} (cabinet {recorder.cabinet})"
        out_of_service = sorted(blocked(recorder.ctl, recorder.cabinet))
        if out_of_service:
            recorded += "; out of service: " + ", ".join(out_of_service)
    elif recorder is not None:
        recorded = ""
    if as_json:
        print_json(
            {
                **report.as_json(),
                **(extra or {}),
                "recorded_event": event_id,
                "out_of_service": out_of_service,
            }
        )
    else:
        print_report(console(), report, recorded or None)
    if not report.ok:  # the report is on stdout; the verdict, one line, on stderr
        from adc.errors import CheckFailed

        raise CheckFailed(report.summary())
    if report.refused:
        from adc.errors import Refused

        raise Refused(f"{report.summary()}: a rule kept some checks from running")


# ------------------------------------------------------------------------------------ commands
@app.command()
def ports(
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the serial ports; with --profile, check that each serial bus's port is there.

    Each port is shown with its description and hardware id (USB VID:PID and serial number).
    """
    from adc.diag.bench import load
    from adc.diag.ports import ports_report
    from adc.diag.render import ports_table, print_report

    report = ports_report(load(profile) if profile else None)
    if as_json:
        print_json(report.as_json())
    else:
        found = len(report.data["ports"])
        console().print(ports_table(report.data["ports"]))
        if report.checks:
            print_report(console(), report)
        else:
            console().print(
                f"{found} serial port(s) found; --profile PATH checks a profile's buses against them",
                highlight=False,
            )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def scan(
    bus: Annotated[
        list[str] | None,
        typer.Option(
            "--bus", help="Scan this bus of the profile (repeatable).", show_default=False
        ),
    ] = None,
    port: Annotated[
        str | None,
        typer.Option(
            "--port",
            help="Scan this port: with --bus, the bus moved there; alone, a serial port, pyserial "
            "URL or HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri",
            help="Scan the line a URI names: modbus-tcp://HOST:PORT, modbus-rtu://PORT, "
            "lockboard://PORT.",
            show_default=False,
        ),
    ] = None,
    transport: Annotated[
        str | None,
        typer.Option(
            "--transport",
            help="With a bare --port: modbus-rtu, modbus-tcp or lockboard.",
            show_default=False,
        ),
    ] = None,
    addresses: Annotated[
        str | None,
        typer.Option(
            "--addresses",
            help="Addresses to probe, e.g. 1-20,100 (default: 1-247 for Modbus, 0-15 for lock "
            "boards, plus the profile's).",
            show_default=False,
        ),
    ] = None,
    timeout_ms: Annotated[
        int,
        typer.Option("--timeout-ms", min=5, max=60_000, help="Reply timeout per probed address."),
    ] = 50,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Probe the addresses of a bus: what answers, what is missing, what is not in the profile.

    Without --bus, --port or --uri: every bus of the backend, profile or cabinet.
    """
    from adc.diag import scan as sc
    from adc.diag.bench import load

    recorder = _recorder(db, cabinet, user, None, required=False, backend=backend)
    chosen = profile or (recorder.profile_path() if recorder else None)
    loaded = load(chosen) if chosen else None
    wanted = sc.parse_addresses(addresses) if addresses else None
    timeout_s = timeout_ms / 1000
    lines = None
    if uri:
        lines = [sc.line_for_uri(uri, loaded)]
    elif port and not bus:
        lines = [sc.line_for_port(port, transport, loaded)]
    elif bus:
        if loaded is None:
            from adc.errors import BadInput

            raise BadInput("--bus names a bus of a profile: give --profile or --cabinet")
        lines = sc.lines_for_profile(loaded, bus, port)
    if lines is not None:
        report = sc.scan_lines(lines, addresses=wanted, timeout_s=timeout_s, profile=loaded)
        _finish(report, recorder, loaded, as_json)
        return
    with _opened(recorder, backend, profile, None) as bench:
        lines = sc.lines_from_driver(bench.driver)
        if lines is None:
            report = sc.scan_driver(bench)
        else:
            bench.close()  # the probes use their own clients on the same ports
            report = sc.scan_lines(
                lines,
                addresses=wanted,
                timeout_s=timeout_s,
                profile=bench.profile,
                target=bench.target,
            )
    _finish(report, recorder, bench.profile, as_json)


@app.command()
def selftest(
    drawer: Annotated[
        list[str] | None,
        typer.Option(
            "--drawer", help="Test this drawer (repeatable; default: all).", show_default=False
        ),
    ] = None,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    witness: WitnessOption = None,
    person: PersonOption = "auto",
    person_timeout: PersonTimeoutOption = None,
    timeout_ms: TimeoutOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cycle every lock and door: pass or fail per lock and switch, with the reason.

    Each lock is pulsed (its re-arm time honoured) and must release, let its door open and relock.

    Each switch must read open and closed again as its door is cycled.
    """
    from adc.diag.selftest import selftest as run

    recorder = _recorder(db, cabinet, user, witness, required=True, backend=backend)
    assert recorder is not None
    with _opened(
        recorder, backend, profile, timeout_ms, person, person_timeout, "selftest"
    ) as bench:
        report = run(bench, drawer, refuse=recorder.refuse(bench.profile))
    _finish(report, recorder, bench.profile, as_json)


@app.command()
def sensors(
    pocket: Annotated[
        list[str] | None,
        typer.Option(
            "--pocket",
            help="Sample this pocket's sensor (repeatable; default: all).",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=1, max=10_000, help="Readings per sensor.")
    ] = 10,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.0, max=60.0, help="Seconds between rounds of readings."),
    ] = 0.2,
    unit_weight: Annotated[
        float | None,
        typer.Option(
            "--unit-weight",
            min=0.001,
            max=10_000.0,
            help="Grams per unit where the database gives none (implied counts).",
            show_default=False,
        ),
    ] = None,
    noise_limit: Annotated[
        float,
        typer.Option(
            "--noise-limit",
            min=0.0,
            max=10_000.0,
            help="σ in grams above which a sensor is noisy.",
        ),
    ] = 1.0,
    drift_limit: Annotated[
        float,
        typer.Option(
            "--drift-limit",
            min=0.0,
            max=100_000.0,
            help="Grams per hour above which it is drifting.",
        ),
    ] = 20.0,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    timeout_ms: TimeoutOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sample each bin sensor: mean, spread, drift, implied count vs on-hand; flags faults.

    Flags: stuck, noisy, drifting, out-of-range, offline, and count (weight vs the database).
    """
    from adc.diag.sensors import Limits, targets
    from adc.diag.sensors import sensors as run

    recorder = _recorder(db, cabinet, user, None, required=False, backend=backend)
    with _opened(recorder, backend, profile, timeout_ms) as bench:
        chosen = targets(bench.profile, pocket)
        if recorder is not None:
            recorder.fill(chosen)
        for target in chosen:
            if target.unit_weight_g is None and target.kind == "weight":
                target.unit_weight_g = unit_weight
        limits = Limits(noise_g=noise_limit, drift_g_per_h=drift_limit)
        report = run(bench, chosen, samples=samples, interval_s=interval, limits=limits)
    _finish(report, recorder, bench.profile, as_json)


@app.command()
def calibrate(
    pocket: Annotated[
        str, typer.Option("--pocket", help="The pocket whose load cell to calibrate.")
    ],
    known_count: Annotated[
        int | None,
        typer.Option(
            "--known-count",
            min=1,
            max=QTY_MAX,
            help="Units to weigh for the unit weight (written to the pocket's item).",
            show_default=False,
        ),
    ] = None,
    zero: Annotated[
        bool,
        typer.Option("--zero", help="Send zero (1) instead of tare (2) with the pocket empty."),
    ] = False,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Keep zero/tare through a power cycle.")
    ] = True,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    witness: WitnessOption = None,
    person: PersonOption = "auto",
    person_timeout: PersonTimeoutOption = None,
    timeout_ms: TimeoutOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Zero or tare a pocket's load cell, and measure its item's unit weight.

    The pocket is emptied for the tare; with --known-count that many units are weighed.

    The zero/tare is written to the module, the unit weight to the database; both are recorded.
    """
    from adc.controller.maintenance import check_calibration_source, set_unit_weight
    from adc.diag.calibrate import Settings
    from adc.diag.calibrate import calibrate as run
    from adc.diag.sensors import Target
    from adc.diag.service import LoadcellCommand

    recorder = _recorder(db, cabinet, user, witness, required=True, backend=backend)
    assert recorder is not None
    simulated = is_simulated(backend)
    check_calibration_source(
        recorder.ctl, recorder.cabinet, from_simulator=simulated, pocket=pocket
    )
    settings = Settings(command=LoadcellCommand.ZERO if zero else LoadcellCommand.TARE, save=save)
    with _opened(
        recorder, backend, profile, timeout_ms, person, person_timeout, "calibrate"
    ) as bench:
        target = Target(pocket, "weight", "")
        recorder.fill([target])
        report = run(
            bench,
            pocket,
            known_count=known_count,
            item_label=target.item or "",
            settings=settings,
            refuse=recorder.refuse(bench.profile),
        )
    extra: dict[str, Any] = {}
    unit = report.data.get("unit_weight_g")
    if report.ok and unit is not None and target.item is not None:
        label, before = set_unit_weight(
            recorder.ctl,
            recorder.actor,
            recorder.cabinet,
            pocket,
            float(unit),
            details={"known_count": known_count},
            witness=recorder.witness,
            from_simulator=simulated,
        )
        was = f"{before:g} g" if before is not None else "unknown"
        report.notes.append(
            f"unit weight of {label} written to the database: {unit:g} g (was {was})"
        )
        extra["unit_weight_written"] = {"item": label, "before": before, "after": unit}
    elif unit is not None:
        report.notes.append(
            f"unit weight measured {unit:g} g, not written: pocket {pocket} has no item assigned"
            if report.ok
            else "unit weight not written: the calibration failed"
        )
    _finish(report, recorder, bench.profile, as_json, extra=extra)


@app.command()
def watch(
    rate: Annotated[
        float, typer.Option("--rate", min=0.01, max=100.0, help="Refreshes per second.")
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Show one snapshot and stop.")] = False,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iterations", min=1, max=1_000_000, help="Stop after N refreshes.", show_default=False
        ),
    ] = None,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    timeout_ms: TimeoutOption = None,
    db: DbOption = None,
) -> None:
    """A live table of every drawer, lock, switch and sensor, with bus health.

    Bus health: requests, timeouts, errors, retries and last seen per device. Ctrl-C stops it.
    """
    from adc.diag import watch as w
    from adc.diag.render import watch_screen
    from adc.diag.results import Report

    recorder = _recorder(db, cabinet, user, None, required=False, backend=backend)
    bench = _bench(recorder, backend, profile, timeout_ms, "none")
    out = console()
    count = 1 if once else iterations
    title = f"adc diag watch: {bench.target}"
    shown = 0
    drawn: list[float] = []
    try:
        if out.is_terminal and count != 1:
            from rich.live import Live

            with Live(console=out, auto_refresh=False, transient=False) as live:

                def show(snap: Any, now: float) -> None:
                    drawn.append(now)
                    screen = watch_screen(bench.profile, snap, now, title, len(drawn))
                    live.update(screen, refresh=True)

                shown = w.run(bench, show, interval_s=1 / rate, iterations=count)
        else:

            def show(snap: Any, now: float) -> None:
                drawn.append(now)
                out.print(watch_screen(bench.profile, snap, now, title, len(drawn)))

            shown = w.run(bench, show, interval_s=1 / rate, iterations=count)
    except KeyboardInterrupt:
        out.print("stopped", highlight=False)
    finally:
        health = bench.driver.health()
        bench.close()
    report = Report("watch", bench.target)
    report.data["refreshes"] = shown
    offline = sorted(name for name, h in health.items() if h.requests and not h.online)
    report.notes.append(
        f"{shown} refreshes; devices offline at the end: {', '.join(offline) or 'none'}"
    )
    dead = w.no_answer(health)
    if dead is not None:
        report.notes.append(dead)
    if recorder is not None:
        event = recorder.record(report, bench.profile, details={"offline": offline})
        out.print(
            f"recorded as maintenance event {event} (cabinet {recorder.cabinet})", highlight=False
        )
    if dead is not None:  # every point showed "?": a dead cabinet is a failed check, not a view
        from adc.errors import CheckFailed

        raise CheckFailed(dead)


@app.command()
def stats(
    polls: Annotated[
        int, typer.Option("--polls", min=1, max=10_000, help="Whole-cabinet polls to count over.")
    ] = 10,
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, max=60.0, help="Seconds between polls.")
    ] = 0.1,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    timeout_ms: TimeoutOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bus and device health counters after a few polls: offline devices, noisy buses."""
    from adc.diag.stats import stats as run

    recorder = _recorder(db, cabinet, user, None, required=False, backend=backend)
    with _opened(recorder, backend, profile, timeout_ms) as bench:
        report = run(bench, polls=polls, interval_s=interval)
    _finish(report, recorder, bench.profile, as_json)


@app.command()
def recover(
    drawer: Annotated[
        str | None,
        typer.Option(
            "--drawer",
            help="The drawer to recover (without it: list failed drawers).",
            show_default=False,
        ),
    ] = None,
    mark_failed: Annotated[
        str | None,
        typer.Option(
            "--mark-failed",
            help="Take the drawer out of service instead, for this reason (e.g. found open after "
            "a power loss).",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="With --mark-failed: failed, open-failed, no-relock, power-loss-open, "
            "switch-failed.",
        ),
    ] = "failed",
    counter: Annotated[
        str | None,
        typer.Option(
            "--counter",
            envvar=COUNTER_ENV,
            help="Who does the blind recount, if not the acting user (PIN from ADC_COUNTER_PIN).",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        list[str] | None,
        typer.Option(
            "--count",
            help="POCKET=N: a blind count made without the prompt (repeatable).",
            show_default=False,
        ),
    ] = None,
    backend: BackendOption = None,
    profile: ProfileOption = None,
    cabinet: CabinetOption = None,
    user: UserOption = None,
    witness: WitnessOption = None,
    person: PersonOption = "auto",
    person_timeout: PersonTimeoutOption = None,
    timeout_ms: TimeoutOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recover a failed drawer: check its hardware, blind-recount it, return it to service.

    Without --drawer: list the drawers out of service. With --mark-failed: take one out.
    """
    from adc.controller import maintenance
    from adc.controller.permissions import Action, allowed
    from adc.diag.recover import recover as run
    from adc.errors import BadInput

    if mark_failed is not None:  # bad input before anyone types a PIN
        mark_failed = require_text(mark_failed, "--mark-failed")
    recorder = _recorder(db, cabinet, user, witness, required=True, backend=backend)
    assert recorder is not None
    ctl, actor = recorder.ctl, recorder.actor
    if drawer is None:
        _list_failed(recorder, as_json)
        return
    if mark_failed is not None:
        event = maintenance.mark_failed(ctl, actor, recorder.cabinet, drawer, kind, mark_failed)
        if as_json:
            print_json({"drawer": drawer, "kind": kind, "recorded_event": event})
        else:
            console().print(
                f"drawer {drawer} is out of service ({kind}: {mark_failed}); "
                f"recorded as maintenance event {event}",
                highlight=False,
            )
        return
    counts = _parse_counts(count or [])
    plan = maintenance.recovery_plan(ctl, recorder.cabinet, drawer)
    counting = _login_as(ctl, counter, COUNTER_PIN_ENV, "blind recount")
    if counting is None:
        if not allowed(actor.role, Action.COUNT) and plan.recount:
            raise BadInput(
                f"{actor.username} ({actor.role}) may not count stock: the blind recount needs a "
                "user who may (--counter NAME; PIN from ADC_COUNTER_PIN)"
            )
        counting = actor
    if not as_json:
        _print_plan(plan)
    with _opened(
        recorder, backend, profile, timeout_ms, person, person_timeout, "recover"
    ) as bench:
        outcome = run(
            bench,
            ctl,
            actor,
            plan,
            counter=counting,
            counts=counts,
            refuse=recorder.refuse(bench.profile),
            witness=recorder.witness,
        )
    report = outcome.report
    extra = {"returned_to_service": outcome.returned, "discrepancies": outcome.discrepancies}
    if outcome.returned:
        report.notes.append(
            f"drawer {drawer} returned to service; recorded as maintenance event {outcome.event_id}"
        )
    _finish(report, recorder, bench.profile, as_json, extra=extra, record=not outcome.returned)


def _parse_counts(items: list[str]) -> dict[str, int]:
    from adc.errors import BadInput

    out: dict[str, int] = {}
    for item in items:
        pocket, sep, number = item.partition("=")
        if not sep or not pocket.strip():
            raise BadInput(f"--count wants POCKET=N, not {item!r}")
        out[pocket.strip()] = parse_count(number, f"--count {pocket.strip()}")
    return out


def _print_plan(plan: Any) -> None:
    from rich.markup import escape

    out = console()
    out.print(f"[bold]drawer {escape(plan.drawer)}[/] is out of service:", highlight=False)
    for failure in plan.failures:
        who = f" (by {failure.user})" if failure.user else ""
        out.print(f"  {escape(failure.describe())}{escape(who)}", highlight=False)
    if plan.recount:
        out.print("blind recount required before it returns to service:", highlight=False)
        for line in plan.recount:
            cs = " [controlled]" if line.controlled else ""
            out.print(f"  {escape(line.pocket)}: {escape(line.item)}{escape(cs)}", highlight=False)


def _list_failed(recorder: Recorder, as_json: bool) -> None:
    from rich.markup import escape

    from adc.controller.maintenance import out_of_service

    failed = out_of_service(recorder.ctl, recorder.cabinet)
    if as_json:
        print_json(
            {
                drawer: [
                    {
                        "id": f.id,
                        "kind": f.kind,
                        "pocket": f.pocket,
                        "detail": f.detail,
                        "at": f.at.isoformat(),
                        "user": f.user,
                    }
                    for f in failures
                ]
                for drawer, failures in failed.items()
            }
        )
        return
    out = console()
    if not failed:
        out.print(f"cabinet {recorder.cabinet}: every drawer is in service", highlight=False)
        return
    for drawer, failures in failed.items():
        out.print(f"[bold]drawer {escape(drawer)}[/] out of service:", highlight=False)
        for failure in failures:
            out.print(f"  {escape(failure.describe())}", highlight=False)
