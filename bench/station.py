"""The station's figures, against the virtual cabinet served on Modbus TCP in real time (what
`adc sim serve` runs), on a SQLite file:

- forced opening → alarm: a drawer switch forced open (the `switch_stuck` fault) until the
  station has recorded `alarm-unauthorized-access` (goal ≤ 1 s at the default rates);
- idle bus requests per second the station spends (every device's request counter);
- the extra latency of a proxied call over a direct driver: `snapshot`, `input_active` and
  `unlock_together` (an access on record for the bench's process; one per re-arm window), and
  the station's authorization check alone (`supervision.authorize_unlock`, one raw query).

    .venv/bin/python bench/station.py [--idle-s 5] [--calls 300] [--unlocks 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adc.commands.access import SystemClock
from adc.controller import access_log, cabinets
from adc.controller.context import Controller
from adc.drivers.registry import open_backend
from adc.drivers.station import StationDriver
from adc.profiles import load_profile, resolve_profile_path
from adc.sim.serve import CabinetServer, realtime_cabinet
from adc.station.service import Station
from tests.controller.site import CABINET, build_site, fast_pins


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.2f} ms, p95 {sorted(samples)[int(len(samples) * 0.95) - 1] * 1000:.2f} ms"


def _timed(call, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--unlocks", type=int, default=4)
    args = parser.parse_args()

    import pytest

    mp = pytest.MonkeyPatch()
    fast_pins(mp)
    tmp = Path(tempfile.mkdtemp(prefix="adc-bench-station-"))
    site = build_site(f"sqlite:///{tmp / 'adc.db'}", with_cabinet=False)
    ctl = Controller(site.ctl.db, SystemClock())
    cabinets.add_cabinet(ctl, site.service, CABINET, "tcp-6drawer")
    profile = load_profile(resolve_profile_path("tcp-6drawer"))
    server = CabinetServer(realtime_cabinet(profile), tcp=("127.0.0.1", 0))
    served = server.start()
    stop_sim = threading.Event()
    threading.Thread(target=server.run_realtime, args=(stop_sim,), daemon=True).start()
    uri = f"modbus-tcp://{served[0].where}"
    sock = tmp / "st.sock"
    station = Station(
        ctl,
        CABINET,
        lambda: open_backend(uri, profile),
        backend=uri,
        listen=str(sock),
        directory=tmp / "run",
        real_time=True,
    )
    station.start()
    stop = threading.Event()
    runner = threading.Thread(target=station.run, args=(stop,), daemon=True)
    runner.start()
    time.sleep(1.5)
    print(f"station over {uri}, fast {station.fast_s} s, slow {station.slow_s} s")

    # idle bus load
    def requests() -> int:
        snap = station.last_snapshot
        return sum(h.requests for h in snap.health.values()) if snap else 0

    r0, t0 = requests(), time.monotonic()
    time.sleep(args.idle_s)
    r1, t1 = requests(), time.monotonic()
    print(f"idle: {(r1 - r0) / (t1 - t0):.1f} bus requests/s ({station.polls} polls so far)")

    # forced opening → alarm
    seen = len(station.alarms)
    with server.lock:
        server.cabinet.sim_inject_fault("switch_stuck", "dio1:di.0", active=False)
    forced = time.monotonic()
    while not any(a.kind == "alarm-unauthorized-access" for a in station.alarms[seen:]):
        if time.monotonic() - forced > 10:
            print("forced opening: no alarm within 10 s")
            break
        time.sleep(0.002)
    else:
        print(f"forced opening → alarm recorded: {(time.monotonic() - forced) * 1000:.0f} ms")
    with server.lock:
        server.cabinet.sim_clear_fault("switch_stuck", "dio1:di.0")
    time.sleep(0.5)

    # proxied vs direct
    direct = open_backend(uri, profile)
    proxy = StationDriver(str(sock), profile)
    for name, call_d, call_p in (
        ("snapshot", direct.snapshot, proxy.snapshot),
        (
            "input_active",
            lambda: direct.input_active("dio1:di.1"),
            lambda: proxy.input_active("dio1:di.1"),
        ),
    ):
        d = _timed(call_d, args.calls)
        p = _timed(call_p, args.calls)
        extra = (statistics.median(p) - statistics.median(d)) * 1000
        print(f"{name}: direct {_ms(d)}; proxied {_ms(p)}; extra {extra:.2f} ms (median)")
    row = access_log.open_access(ctl, site.nurse, CABINET, "D2", "D2-P1", "bench")
    lock = ["dio1:coil.1"]
    auth = _timed(lambda: station._authorize("unlock_together", lock, os.getpid()), args.calls)
    print(f"authorize_unlock alone (the station's check before a client's pulse): {_ms(auth)}")
    d, p = [], []
    for _ in range(args.unlocks):
        d += _timed(lambda: direct.unlock_together(lock), 1)
        time.sleep(2.2)  # the solenoid's re-arm window
        p += _timed(lambda: proxy.unlock_together(lock), 1)
        time.sleep(2.2)
    extra = (statistics.median(p) - statistics.median(d)) * 1000
    print(
        f"unlock_together: direct median {statistics.median(d) * 1000:.2f} ms; proxied "
        f"median {statistics.median(p) * 1000:.2f} ms (authorization included); extra "
        f"{extra:.2f} ms"
    )
    access_log.close_access(ctl, row, "bench")
    proxy.close()
    direct.close()
    stop.set()
    runner.join(5)
    station.close("bench over")
    stop_sim.set()
    server.close()


if __name__ == "__main__":
    main()
