"""`adc sim serve`: the virtual cabinet on the wire, in real time, for drivers and tools to talk to.

Only typer is imported at module level; simpy, pyserial and the emulators load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adc.commands.common import DAYS_MAX, SEED_MAX, JsonOption, command_group, console, print_json

STOP_WITHIN_S = 10.0  # `sim serve`: a stop that takes longer dumps every thread's stack, exits 1

app = command_group(
    "Run the virtual cabinet: serve it on the wire, or run scenarios of simulated ward activity."
)


def _host_port(text: str) -> tuple[str, int]:
    from adc.errors import BadInput

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise BadInput(f"--modbus-tcp wants HOST:PORT (PORT 0 = any free port), not {text!r}")
    return host.strip("[]"), int(port)


@app.command()
def serve(
    profile: Annotated[Path, typer.Argument(help="Profile file (TOML) or shipped profile name.")],
    modbus_tcp: Annotated[
        str | None,
        typer.Option(
            "--modbus-tcp",
            metavar="HOST:PORT",
            help="Serve Modbus TCP buses here (PORT 0: any free port) instead of at the profile's "
            "host and port.",
            show_default=False,
        ),
    ] = None,
    pty: Annotated[
        bool,
        typer.Option(
            "--pty", help="Serve serial buses (Modbus RTU, lock boards) on new pseudo-terminals."
        ),
    ] = False,
    realtime_factor: Annotated[
        float,
        typer.Option(
            "--realtime-factor",
            min=0.001,
            max=1000.0,
            help="Real seconds per simulated second (1 = real time, 0.5 = twice as fast).",
        ),
    ] = 1.0,
    line_timing: Annotated[
        bool,
        typer.Option(
            "--line-timing", help="Pace serial answers at the bus's baud rate (a pty ignores it)."
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=SEED_MAX, help="Seed of the virtual cabinet.")
    ] = 0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="KIND:TARGET[@TIME]",
            help="Break something (repeatable): e.g. lock_jammed:dio1:coil.0, "
            "device_offline:lc2@30s, power_loss@1m. "
            "TIME: seconds (or 2m, 1h) after the start; default at once. Kinds and targets: "
            "docs/virtual-cabinet.md.",
            show_default=False,
        ),
    ] = None,
    control: Annotated[
        Path | None,
        typer.Option(
            "--control",
            metavar="PATH",
            help="Unix socket for `adc sim fault` (inject and clear faults while it runs). "
            "Default: adc-sim-UID.sock in $XDG_RUNTIME_DIR or the temporary directory.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the virtual cabinet's buses until Ctrl-C or SIGTERM (then exit 0)."""
    import faulthandler
    import os
    import signal
    import threading

    from adc.errors import BadInput
    from adc.profiles import load_profile, resolve_profile_path
    from adc.sim.errors import SimInputError
    from adc.sim.faults import parse_fault_spec
    from adc.sim.serve import CabinetServer, FaultControl, default_control_path, realtime_cabinet

    tcp = _host_port(modbus_tcp) if modbus_tcp else None
    specs = [parse_fault_spec(text) for text in fault or []]  # exit 2 naming a bad one
    loaded = load_profile(resolve_profile_path(profile))
    cabinet = realtime_cabinet(loaded, realtime_factor, seed)
    for text, spec in zip(fault or [], specs, strict=True):
        try:
            cabinet.sim_check_fault(spec.kind, spec.target)
        except SimInputError as err:
            raise BadInput(f"fault {text!r}: {err.message}") from None
    server = CabinetServer(cabinet, tcp=tcp, pty=pty, line_timing=line_timing)
    try:
        served = server.start()
    except OSError as err:
        hint = "" if pty else " (serve serial buses on pseudo-terminals with --pty)"
        raise BadInput(f"cannot serve {loaded.name}: {err}{hint}") from None
    path = control if control is not None else default_control_path()
    controller = FaultControl(server, path)
    try:
        try:
            controller.start()
        except OSError as err:
            if control is not None:
                raise BadInput(f"--control {control}: {err}") from None
            # The default one is taken by another serve: this one gets its own.
            controller = FaultControl(server, path.with_name(f"{path.stem}-{os.getpid()}.sock"))
            controller.start()
    except BaseException:
        server.close()
        raise
    out = console()
    out.print(
        f"[bold]{loaded.name}[/]: virtual cabinet, seed {seed}, real-time factor {realtime_factor}"
    )
    for item in served:
        out.print(f"  bus {item.bus} ({item.transport}): {item.where}", highlight=False)
        out.print(f"    try: {item.hint(loaded)}", highlight=False, style="dim")
    server.on_fault = lambda text: out.print(text, highlight=False)
    for spec in specs:
        done = server.inject(spec)
        if spec.at_s:
            out.print(f"fault scheduled: {done}", highlight=False)
    where = "" if controller.path == default_control_path() else f" --serve {controller.path}"
    out.print(f"faults: adc sim fault{where} inject|clear KIND:TARGET, or list", highlight=False)
    stop = threading.Event()
    # Before "serving" is printed: whoever waits for that line may signal at once.
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack
    out.print("serving; Ctrl-C or SIGTERM stops", highlight=False)
    try:
        server.run_realtime(stop)
    finally:
        # A stop is bounded: should a thread keep the emulators from closing, print every
        # thread's stack and exit 1 rather than hang on the service engineer's terminal.
        faulthandler.dump_traceback_later(STOP_WITHIN_S, exit=True)
        controller.close()
        server.close()
        faulthandler.cancel_dump_traceback_later()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print("stopped", highlight=False)


@app.command()
def fault(
    action: Annotated[
        str, typer.Argument(metavar="inject|clear|list", help="What to do.", show_default=False)
    ],
    spec: Annotated[
        str | None,
        typer.Argument(
            metavar="[KIND:TARGET[@TIME]]",
            help="The fault, as for `adc sim serve --fault` (TIME: from now).",
            show_default=False,
        ),
    ] = None,
    serve_path: Annotated[
        Path | None,
        typer.Option(
            "--serve",
            metavar="PATH",
            help="The control socket of the running `adc sim serve` (default: the one it prints).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Inject, clear or list the faults of a running `adc sim serve`."""
    from adc.errors import BadInput, CheckFailed
    from adc.sim.faults import parse_fault_spec
    from adc.sim.serve import default_control_path, send_fault_command

    if action not in ("inject", "clear", "list"):
        raise BadInput(f"unknown action {action!r}: inject, clear or list")
    if (action == "list") != (spec is None):
        raise BadInput("list takes no fault" if spec else f"{action} needs KIND:TARGET")
    if spec is not None:
        parse_fault_spec(spec)  # a typo is exit 2 here, before anything is sent
    path = serve_path if serve_path is not None else default_control_path()
    try:
        answer = send_fault_command(path, f"{action} {spec or ''}".strip())
    except OSError as err:
        raise CheckFailed(
            f"no adc sim serve listens at {path} ({err.strerror or err}): start one, or give "
            "the --serve PATH it printed"
        ) from None
    errors = [line.removeprefix("error: ") for line in answer if line.startswith("error: ")]
    if errors:  # the served cabinet has no such target, or the command was malformed
        raise BadInput("; ".join(errors))
    out = console()
    for line in answer:
        out.print(line.removeprefix("ok: "), highlight=False)


def _check_out_dir(out_dir: Path) -> None:
    """--out names a directory to create (or reuse) in one that exists: not a tree of new ones
    (a typo would scatter results), not an empty string (that is the current directory), not a
    name with invisible or control characters."""
    from adc.errors import BadInput

    text = str(out_dir)
    if not text.strip() or text == ".":
        raise BadInput("--out takes a directory name, got an empty one")
    if not text.isprintable():
        raise BadInput(f"--out {text[:60]!r}: the name has control or invisible characters")
    parent = out_dir.absolute().parent
    if not parent.is_dir():
        raise BadInput(f"--out {text[:60]}: directory {str(parent)[:60]} does not exist")


@app.command()
def run(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario file (TOML), e.g. scenarios/ward-7day.toml.")
    ],
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            max=SEED_MAX,
            help="Seed (default: the scenario's).",
            show_default=False,
        ),
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(
            "--days",
            min=0.01,
            max=DAYS_MAX,
            help=f"Simulated days, at most {DAYS_MAX} (default: the scenario's).",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write events.jsonl and kpis.json (and plots) here.",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="With --out: PNG plots (needs matplotlib).")
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="A new database for the run (default: in memory).",
            show_default=False,
        ),
    ] = None,
    wire: Annotated[
        bool,
        typer.Option(
            "--wire", help="Drive the cabinets through the Modbus/lock-board drivers and emulators."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a scenario in simulated time through the real controller; print its KPIs."""
    from adc.errors import BadInput
    from adc.scenario import load_scenario, run_scenario
    from adc.scenario.kpis import kpi_rows, kpis_json

    if plot and out_dir is None:
        raise BadInput("--plot writes PNG files: give --out DIR too")
    if out_dir is not None:
        _check_out_dir(out_dir)
    loaded = load_scenario(scenario)  # exits 2 listing every problem, before anything runs
    if out_dir is not None:
        try:
            out_dir.mkdir(exist_ok=True)
        except OSError as err:
            raise BadInput(f"--out {str(out_dir)[:60]}: {err.strerror}") from None
    total_days = days if days is not None else loaded.scenario.days
    if as_json:
        result = run_scenario(loaded, seed=seed, days=days, db_url=db, wire=wire)
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[when]}"),
            TimeElapsedColumn(),
            console=console(),
            transient=True,
        ) as bar:
            task = bar.add_task(loaded.scenario.name, total=total_days * 86400, when="go-live")

            def progress(done: float, _total: float) -> None:
                day, rest = divmod(int(done), 86400)
                bar.update(task, completed=done, when=f"day {day} {rest // 3600:02d}:00")

            result = run_scenario(
                loaded, seed=seed, days=days, db_url=db, wire=wire, progress=progress
            )
    kpis = result.kpis
    if out_dir is not None:
        import json

        (out_dir / "kpis.json").write_text(kpis_json(kpis), encoding="utf-8")
        with (out_dir / "events.jsonl").open("w", encoding="utf-8") as events:
            for event in result.world.events:
                events.write(json.dumps(event, sort_keys=True) + "\n")
        if plot:
            from adc.scenario.plots import write_plots

            write_plots(result.world, out_dir)
    if as_json:
        print_json(kpis)
    else:
        from rich.table import Table

        table = Table(
            title=f"{loaded.scenario.name}: {total_days:g} day(s), seed {result.world.seed}",
            title_justify="left",
        )
        # KPI names are short and never cut; the figures wrap (a long word folds, no "…").
        table.add_column("KPI", style="bold", no_wrap=True)
        table.add_column("figure", overflow="fold")
        for what, figure in kpi_rows(kpis):
            table.add_row(what, figure)
        out = console()
        out.print(table)
        rate = result.transactions / result.wall_s if result.wall_s else 0.0
        out.print(
            f"{result.transactions} transactions in {result.wall_s:.1f} s wall time ({rate:,.0f}/s)",
            highlight=False,
            style="dim",
        )
        if out_dir is not None:
            out.print(
                f"wrote {out_dir}/kpis.json, events.jsonl" + (", *.png" if plot else ""),
                highlight=False,
            )
    if not kpis["audit"]["verified"]:
        from adc.errors import CheckFailed

        raise CheckFailed(f"audit chain of the run does not verify: {kpis['audit']['error']}")


@app.command()
def sweep(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario file (TOML), e.g. scenarios/ward-7day.toml.")
    ],
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            metavar="SEEDS",
            help="Seeds to run: a range 1..100, a list 1,2,5, or both (1..10,20).",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write runs.csv, runs.jsonl, summary.json, summary.csv and kpi-*.png here.",
            show_default=False,
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=V1,V2",
            help="Sweep a scenario key, by its dotted path, over values (repeatable: every "
            "combination runs; examples above).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=512,
            help="Local worker processes (default: the number of cores).",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="tcp://HOST:PORT",
            help="Run on this Dask distributed scheduler's workers instead (needs Dask: adc's "
            "cluster extra).",
            show_default=False,
        ),
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(
            "--days",
            min=0.01,
            max=DAYS_MAX,
            help="Simulated days of each run (default: the scenario's).",
            show_default=False,
        ),
    ] = None,
    plot_kpi: Annotated[
        list[str] | None,
        typer.Option(
            "--plot-kpi",
            metavar="KPI",
            help="Plot this KPI's distribution (repeatable; dotted name as in summary.csv). "
            "Default: removals.refused, stock_outs.hours_out, discrepancies.total_opened, "
            "removals.mean_wait_s.",
            show_default=False,
        ),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Write no PNG plots.")] = False,
) -> None:
    """Run a scenario over many seeds and parameter values; write every run and the statistics.

    Each run is a normal `sim run` with its own in-memory database.

    Example: --seeds 1..20 --set cabinets[0].stock[2].par=8,12,16 --set faults.rates.lock_jammed=0,0.01

    Exit 1 if a run failed (its error is in runs.csv; the others still ran), 130 after Ctrl-C (finished runs are kept).
    """
    import importlib.util

    from adc.errors import BadInput, CheckFailed
    from adc.scenario.sweep_spec import plan_sweep

    if scheduler is not None and workers is not None:
        raise BadInput("--workers sizes the local pool; with --scheduler the cluster's workers run")
    if plot_kpi and no_plot:
        raise BadInput("--plot-kpi and --no-plot: choose one")
    _check_out_dir(out_dir)
    if scheduler is not None:
        from adc.scenario.sweep_exec import check_address

        check_address(scheduler)
    if plot_kpi and importlib.util.find_spec("matplotlib") is None:
        raise BadInput("--plot-kpi needs matplotlib: pip install 'adc[plot]'")
    plan = plan_sweep(scenario, seeds, set_ or [], days)  # exit 2 naming a bad seed, key or value
    client = None
    if scheduler is not None:
        from adc.scenario.sweep_exec import connect

        client = connect(scheduler)
    try:
        try:
            out_dir.mkdir(exist_ok=True)
        except OSError as err:
            raise BadInput(f"--out {str(out_dir)[:60]}: {err.strerror}") from None
        count = workers or _cores()
        where = f"Dask cluster {scheduler}" if scheduler else f"{min(count, plan.total)} worker(s)"
        result = _run_sweep_with_bar(plan, out_dir, count, client, where)
    finally:
        if client is not None:
            client.close()
    _report_sweep(plan, out_dir, result, where, plot_kpi, no_plot)
    if result.failed:
        errors = sorted({r["error"] for r in result.failed})
        raise CheckFailed(
            f"{len(result.failed)} of {len(result.rows)} runs failed (errors in "
            f"{out_dir}/runs.csv); first: {errors[0][:200]}"
        )


def _cores() -> int:
    """The cores this process may run on (a container or `taskset` may allow fewer than exist)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _run_sweep_with_bar(plan, out_dir: Path, workers: int, client, where: str):  # type: ignore[no-untyped-def]
    """The sweep under a progress bar over runs; after Ctrl-C, one line saying what was kept."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from adc.scenario.sweep import run_sweep
    from adc.session.interrupts import ignored_sigint

    out = console()
    combos = len(plan.combos)
    out.print(
        f"[bold]{plan.name}[/]: {plan.total} runs ({combos} combination(s) × "
        f"{len(plan.seeds)} seeds) on {where}",
        highlight=False,
    )
    with Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=out,
        transient=True,
    ) as bar:
        task = bar.add_task("runs", total=plan.total, failed="")
        failed = 0

        def on_row(row: dict) -> None:  # type: ignore[type-arg]
            nonlocal failed
            failed += row["status"] != "ok"
            bar.update(task, advance=1, failed=f"[red]{failed} failed[/]" if failed else "")

        try:
            result = run_sweep(plan, out_dir, workers=workers, client=client, on_row=on_row)
        except KeyboardInterrupt as err:
            kept = getattr(err, "sweep_result", None)
            with ignored_sigint():
                bar.stop()
                if kept is not None:
                    out.print(
                        f"stopped: kept the {len(kept.rows)} finished run(s) of {plan.total} in "
                        f"{out_dir}/runs.csv, runs.jsonl, summary.json, summary.csv",
                        highlight=False,
                        markup=False,
                    )
            raise
    return result


def _report_sweep(plan, out_dir: Path, result, where: str, plot_kpi, no_plot: bool) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from rich.markup import escape
    from rich.table import Table

    from adc.scenario.sweep_plots import DEFAULT_KPIS

    out = console()
    shown = list(plot_kpi or DEFAULT_KPIS)
    # One row per (combination, KPI): KPI names are never cut; a combination is said once.
    keys = ", ".join(plan.keys)
    title = f"{plan.name} over {len(plan.seeds)} seed(s)" + (f"; values of {keys}" if keys else "")
    table = Table(title=escape(title), title_justify="left")
    table.add_column("values" if keys else "scenario", overflow="fold")
    table.add_column("ok", justify="right", no_wrap=True)
    table.add_column("KPI", style="bold", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("min–max", justify="right", overflow="fold")
    for entry in result.summary:
        said = ", ".join(str(v) for v in entry["params"].values()) or "as in the file"
        ok = f"{entry['ok']}/{entry['runs']}"
        for index, kpi in enumerate(shown):
            stats = entry["kpis"].get(kpi)
            figures = ["–", "", ""]
            if stats is not None:
                figures = [f"{stats['mean']:.3g}", "", f"{stats['min']:.3g}–{stats['max']:.3g}"]
                if stats["ci95_low"] is not None:
                    figures[1] = f"{stats['ci95_low']:.3g} to {stats['ci95_high']:.3g}"
            first = index == 0
            table.add_row(
                escape(said) if first else "",
                ok if first else "",
                escape(kpi),
                *figures,
                end_section=index == len(shown) - 1,
            )
    out.print(table)
    rate = len(result.rows) / result.wall_s if result.wall_s else 0.0
    out.print(
        f"{len(result.rows)} runs ({len(result.failed)} failed) in {result.wall_s:.1f} s on "
        f"{where} ({rate:.2f} runs/s)",
        highlight=False,
        style="dim",
    )
    written = ["runs.csv", "runs.jsonl", "summary.json", "summary.csv"]
    if not no_plot:
        if importlib.util.find_spec("matplotlib") is None:
            out.print(
                "no plots: matplotlib is not installed (pip install 'adc[plot]')", markup=False
            )
        else:
            from adc.scenario.sweep_plots import write_sweep_plots

            pngs = write_sweep_plots(out_dir, plan.name, result.rows, result.summary, shown)
            written += [path.name for path in pngs.values()]
            missing = [k for k in shown if k not in pngs]
            if missing and len(result.rows) > len(result.failed):
                out.print(
                    f"no run reports {', '.join(missing)}: nothing to plot (KPI names: "
                    f"{out_dir}/summary.csv)",
                    highlight=False,
                    markup=False,
                )
    out.print(f"wrote {out_dir}/" + ", ".join(written), highlight=False, markup=False)
