"""`adc station run|status`: the always-on process that owns a cabinet's hardware and watches it.

`run` holds the cabinet (one station per cabinet: a lock file on the host and the station on
record in the database), opens the driver once, polls it and records what the supervision rules
find; with `--listen` it serves the driver port to clients (`--backend station:PATH`). SIGTERM or
SIGINT: it stops polling, records the stop, closes the bus and exits 0.
`status` shows what the database and the station's status file say; `alarms` the alarm
history (--json, --csv); `notifications` and `ack` what pharmacists must act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from adc.commands.access import UserOption
from adc.commands.common import (
    DbOption,
    JsonOption,
    command_group,
    console,
    id_argument,
    print_json,
)
from adc.commands.reports import CabinetList

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
        out.print(f"quarantines: {len(info['quarantines'])}")
        for q in info["quarantines"]:
            out.print(f"  #{q['id']} {q['pocket']}: {q['qty']} units — {q['reason']}",
                      markup=False)  # fmt: skip
        out.print(f"notifications to pharmacists pending: {len(info['notifications'])}")
        for n in info["notifications"]:
            out.print(f"  #{n['id']} {n['kind']}: {n['detail']}", markup=False)
        out.print(f"alarms since the station started: {len(info['alarms'])}")
        for a in info["alarms"][-20:]:
            out.print(f"  {a['at']} {a['kind']}: {a['detail']}")
    if not info["station"]["running"]:
        raise typer.Exit(1)


@dataclass(frozen=True)
class AlarmRow:
    """One alarm or failure of the cabinet, as `adc station alarms` prints it."""

    id: int
    at: str
    cabinet: str
    kind: str
    drawer: str | None
    pocket: str | None
    detail: str


def _since(text: str) -> Any:
    """--since 12h / 7d / 30m: that long before now."""
    import re
    from datetime import timedelta

    from adc.errors import BadInput

    match = re.fullmatch(r"\s*(\d{1,5})\s*([mhd])\s*", text)
    if not match:
        raise BadInput(f"--since takes a duration like 30m, 12h or 7d, got {text[:40]!r}")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(minutes=n) if unit == "m" else timedelta(hours=n if unit == "h" else 24 * n)


@app.command("alarms")
def alarms(
    cabinet: CabinetOption,
    start: Annotated[
        str | None,
        typer.Option("--from", help="From this day (YYYY-MM-DD, site time).", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="To this day, included (YYYY-MM-DD).", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="The last 30m, 12h or 7d (instead of --from/--to).", show_default=False
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV: a header row, then one row per alarm.")
    ] = False,
) -> None:
    """The cabinet's alarm history: every alarm and failure recorded (default: the last 30 days)."""
    from adc.commands.reports import _period, report_controller, show_rows
    from adc.controller.supervision import alarm_history
    from adc.errors import BadInput

    ctl = report_controller(db, cabinet)
    if since is not None:
        if start is not None or end is not None:
            raise BadInput("--since goes without --from/--to")
        lower, upper = ctl.now() - _since(since), None
    else:
        lower, upper = _period(ctl, start, end)
    rows = [
        AlarmRow(e.id or 0, e.at.isoformat(), e.cabinet_id, e.kind, e.drawer_code,
                 e.pocket_code, e.detail)
        for e in alarm_history(ctl, cabinet, since=lower, until=upper)
    ]  # fmt: skip
    show_rows(
        rows,
        AlarmRow,
        as_json=as_json,
        as_csv=as_csv,
        title=f"alarms of cabinet {cabinet}",
        empty=f"no alarms of cabinet {cabinet} in the period",
        columns=["id", "at", "kind", "where", "detail"],
        cells=lambda a: [str(a.id), a.at[:19], a.kind, a.pocket or a.drawer or "", a.detail],
        priority=[1, 1, 1, 1, 2],
    )


@app.command("notifications")
def notifications_(
    cabinet: CabinetList = None,
    all_: Annotated[bool, typer.Option("--all", help="Also the acknowledged ones.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """What pharmacists must act on: quarantines, expired lots, escalations, recounts due.

    Pending ones; --all lists every one."""
    from adc.commands.reports import cabinet_list, report_controller
    from adc.controller.notifications import list_notifications

    cabinets = cabinet_list(cabinet)
    ctl = report_controller(db, cabinets)  # a misspelt cabinet is an error, not an empty list
    rows = list_notifications(ctl, cabinets, pending_only=not all_)
    if as_json:
        print_json([n.as_json() for n in rows])
        return
    out = console()
    if not rows:
        out.print("no notifications" + ("" if all_ else " pending"), highlight=False)
    for n in rows:
        seen = f" (acknowledged by {n.acknowledged_by})" if n.acknowledged_by else ""
        out.print(f"#{n.id} {n.created_at[:19]} {n.cabinet} {n.kind}{seen}: {n.detail}",
                  highlight=False, markup=False)  # fmt: skip


@app.command("ack")
def ack(
    notification_id: Annotated[
        int, id_argument("Notification id (see adc station notifications).")
    ],
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """A pharmacist acknowledges a notification (audited; anyone else is refused)."""
    from adc.commands.access import login, open_controller
    from adc.controller.notifications import acknowledge

    ctl = open_controller(db)
    note = acknowledge(ctl, login(ctl, user), notification_id)
    console().print(f"notification {note.id} acknowledged by {note.acknowledged_by}",
                    highlight=False)  # fmt: skip
