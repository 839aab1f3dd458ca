"""`adc station run|status`: the always-on process that owns a cabinet's hardware and watches it.

`run` holds the cabinet (one station per cabinet: a lock file on the host and the station on
record in the database), opens the driver once, polls it and records what the supervision rules
find; with `--listen` it serves the driver port to clients (`--backend station:PATH`). SIGTERM or
SIGINT: it stops polling, records the stop, closes the bus and exits 0.
`status` shows what the database and the station's status file say.
"""

from __future__ import annotations

from typing import Annotated

import typer

from adc.commands.common import DbOption, JsonOption, command_group, console, print_json

app = command_group("The cabinet station: own the hardware, watch the cabinet, serve clients.")

CabinetOption = Annotated[str, typer.Option("--cabinet", "-c", help="The cabinet's id.")]


@app.command("run")
def run(
    cabinet: CabinetOption,
    backend: Annotated[
        str,
        typer.Option(
            "--backend", help="The cabinet's hardware: sim:PROFILE, modbus-tcp://..., profile:..."
        ),
    ],
    db: DbOption = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Serve clients on a Unix socket PATH (mode 0660) or 127.0.0.1:PORT.",
            show_default=False,
        ),
    ] = None,
    fast: Annotated[
        float, typer.Option("--fast-s", min=0.01, max=10.0, help="Seconds between snapshots.")
    ] = 0.1,
    slow: Annotated[
        float,
        typer.Option("--slow-s", min=0.05, max=60.0, help="Seconds between scale checks."),
    ] = 1.0,
    take_over: Annotated[
        bool,
        typer.Option(
            "--take-over",
            help="Take the cabinet from a station on another host that is known to be gone.",
        ),
    ] = False,
) -> None:
    """Run the cabinet's station until SIGTERM or SIGINT."""
    import signal
    import threading
    from pathlib import Path

    from adc.commands.access import open_controller
    from adc.controller.cabinets import get_cabinet
    from adc.drivers.registry import open_backend, split_uri
    from adc.errors import BadInput
    from adc.profiles import load_profile, resolve_profile_path
    from adc.station.service import Station

    if split_uri(backend)[0] == "station":
        raise BadInput("a station owns the hardware: its --backend cannot be another station")
    if listen is not None:
        from adc.drivers.station import parse_listen

        parse_listen(listen)  # bad address: exit 2 before anything is held
    ctl = open_controller(db)
    with ctl.read() as session:
        row = get_cabinet(session, cabinet)
        ref = row.profile_path if Path(row.profile_path).exists() else row.profile_name

    def open_driver():  # type: ignore[no-untyped-def]
        return open_backend(backend, load_profile(resolve_profile_path(ref)))

    stop = threading.Event()
    station = Station(
        ctl,
        cabinet,
        open_driver,
        backend=backend,
        listen=listen,
        fast_s=fast,
        slow_s=slow,
        take_over=take_over,
        real_time=True,
    )

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    station.start()
    out = console()
    where = f", serving {station.server.address}" if station.server is not None else ""
    out.print(f"station for cabinet {cabinet} on {backend}{where} (pid {station.status()['pid']})")
    for alarm in station.alarms:
        out.print(f"  flagged at start: {alarm.detail}")
    reason = "stopped by signal"
    try:
        station.run(stop)
    except BaseException as err:
        reason = f"stopped by error: {err!r}"
        raise
    finally:
        station.close(reason)
    out.print(f"station for cabinet {cabinet} stopped; bus closed")


@app.command("status")
def status(
    cabinet: CabinetOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accesses in progress, alarms, recount flags, last snapshot age and bus health.

    Exit 1 when no station holds the cabinet."""
    from adc.commands.access import open_controller
    from adc.station.status import station_status

    ctl = open_controller(db)
    info = station_status(ctl, cabinet)
    if as_json:
        print_json(info)
    else:
        out = console()
        st = info["station"]
        if st["running"]:
            age = info.get("snapshot_age_s")
            out.print(
                f"station: running, pid {st['pid']}, since {st['started_at']}"
                + (f", listening on {st['listen']}" if st.get("listen") else "")
            )
            out.print(
                "last snapshot: "
                + (f"{age:.2f} s ago" if age is not None else "none yet (no status file)")
            )
        else:
            out.print(f"station: not running ({st['why']})")
        for name, h in sorted((info.get("bus") or {}).items()):
            state = "online" if h["online"] else "OFFLINE"
            out.print(
                f"  {name}: {state}, {h['requests']} requests, {h['timeouts']} timeouts, "
                f"{h['errors']} errors"
            )
        out.print(f"accesses in progress: {len(info['accesses'])}")
        for a in info["accesses"]:
            out.print(
                f"  #{a['id']} {a['purpose']} of {a['pocket'] or a['drawer']} by {a['user']} "
                f"since {a['opened_at']}"
            )
        out.print(f"recount flags (drawers out of service): {len(info['recount'])}")
        for r in info["recount"]:
            out.print(f"  {r['drawer']}: {r['kind']} — {r['detail']}")
        out.print(f"alarms since the station started: {len(info['alarms'])}")
        for a in info["alarms"][-20:]:
            out.print(f"  {a['at']} {a['kind']}: {a['detail']}")
    if not info["station"]["running"]:
        raise typer.Exit(1)
