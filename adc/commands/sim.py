"""`adc sim serve`: the virtual cabinet on the wire, in real time, for drivers and tools to talk to.

Only typer is imported at module level; simpy, pyserial and the emulators load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adc.commands.common import command_group, console

app = command_group("Run the virtual cabinet: serve it on the wire for drivers and tools.")


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
            help="Real seconds per simulated second (1 = real time, 0.5 = twice as fast).",
        ),
    ] = 1.0,
    line_timing: Annotated[
        bool,
        typer.Option(
            "--line-timing", help="Pace serial answers at the bus's baud rate (a pty ignores it)."
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the virtual cabinet.")] = 0,
) -> None:
    """Serve the virtual cabinet's buses until Ctrl-C or SIGTERM (then exit 0)."""
    import signal
    import threading

    from adc.errors import BadInput
    from adc.profiles import load_profile, resolve_profile_path
    from adc.sim.serve import CabinetServer, realtime_cabinet

    tcp = _host_port(modbus_tcp) if modbus_tcp else None
    loaded = load_profile(resolve_profile_path(profile))
    cabinet = realtime_cabinet(loaded, realtime_factor, seed)
    server = CabinetServer(cabinet, tcp=tcp, pty=pty, line_timing=line_timing)
    try:
        served = server.start()
    except OSError as err:
        hint = "" if pty else " (serve serial buses on pseudo-terminals with --pty)"
        raise BadInput(f"cannot serve {loaded.name}: {err}{hint}") from None
    out = console()
    out.print(
        f"[bold]{loaded.name}[/]: virtual cabinet, seed {seed}, real-time factor {realtime_factor}"
    )
    for item in served:
        out.print(f"  bus {item.bus} ({item.transport}): {item.where}", highlight=False)
        out.print(f"    try: {item.hint(loaded)}", highlight=False, style="dim")
    out.print("serving; Ctrl-C or SIGTERM stops", highlight=False)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run_realtime(stop)
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print("stopped", highlight=False)
