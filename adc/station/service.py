"""The station process: hold the cabinet, poll it, supervise it, serve it.

    Station(ctl, cabinet, open_driver, ...)
    start()      the cabinet lock on this host (lease.py), the station on record (Refused while
                 another holds the cabinet; a previous station that ended without a stop has
                 every access still open flagged), interrupted accesses of dead processes
                 flagged (`recover_interrupted`), then the driver opened once and the server
                 started (Refused where the listen address is taken)
    step()       one poll: a snapshot (the planner's minimal reads), the supervision rules on it
                 (scales and temperatures looked at every `slow_s`, against the on-hand on
                 record), findings recorded, dead clients' accesses flagged every `recover_s`,
                 scheduled work (`station_schedule.run_due`: expiry sweep, escalation, shortage
                 delivery) every `schedule_s`, the status file written
    run(stop)    step() every `fast_s` on the waiter until `stop` is set
    close(why)   server stopped, the stop on record, the driver closed, the lock released

The watch's memory (`supervision.WatchState`) holds only what the hardware said earlier: after a
restart it is rebuilt from the first snapshots. Everything else is read from the database.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adc.controller import station_schedule, supervision
from adc.controller.access_log import recover_interrupted
from adc.controller.supervision import WatchState
from adc.drivers.base import DriverError
from adc.station.lease import CabinetLock, state_dir, status_path

if TYPE_CHECKING:
    from adc.controller.access import Alarm
    from adc.controller.context import Controller
    from adc.drivers.base import CabinetDriver, Snapshot
    from adc.drivers.station import StationServer
    from adc.waiting import Waiter

FAST_S = 0.1  # switches and locks
SLOW_S = 1.0  # scales and temperatures
RECOVER_S = 5.0  # dead clients' accesses
SCHEDULE_S = 30.0  # scheduled work: is a period without its run on record?
STATUS_S = 0.5  # status file


@dataclass
class Station:
    ctl: Controller
    cabinet: str
    open_driver: Callable[[], CabinetDriver]
    backend: str = ""
    listen: str | None = None
    directory: Path = field(default_factory=state_dir)
    waiter: Waiter | None = None
    fast_s: float = FAST_S
    slow_s: float = SLOW_S
    recover_s: float = RECOVER_S
    schedule_s: float = SCHEDULE_S
    left_open_s: float = supervision.LEFT_OPEN_S
    take_over: bool = False
    real_time: bool = False  # wait in wall time (a simulated cabinet kept in step)
    # run time, rebuilt at each start
    driver: CabinetDriver | None = None
    server: StationServer | None = None
    layout: supervision.Layout | None = None
    state: WatchState = field(default_factory=WatchState)
    alarms: list[Alarm] = field(default_factory=list)
    started: supervision.Started | None = None
    polls: int = 0
    last_snapshot: Snapshot | None = None
    last_snapshot_wall: float | None = None
    last_error: str | None = None
    bus_lock: threading.Lock = field(default_factory=threading.Lock)
    _lock: CabinetLock | None = None
    _last_slow: float | None = None
    _last_recover: float | None = None
    _last_schedule: float | None = None
    scheduled: list[station_schedule.Run] = field(default_factory=list)
    _schedule_seen: dict[str, str] = field(default_factory=dict)
    _last_status: float = 0.0
    _started_wall: float = 0.0

    # ------------------------------------------------------------------------------ start
    def start(self) -> None:
        from adc.session.timing import interactive_waiter
        from adc.waiting import waiter_for

        self._lock = CabinetLock(self.directory, self.cabinet)
        self._lock.acquire()
        try:
            self.started = supervision.station_started(
                self.ctl,
                self.cabinet,
                listen=self.listen,
                backend=self.backend,
                take_over=self.take_over,
            )
            self.alarms.extend(self.started.flagged)
            self.alarms.extend(_as_alarms(recover_interrupted(self.ctl, self.cabinet)))
            self.layout = supervision.load_layout(self.ctl, self.cabinet)
            self.driver = self.open_driver()
            if self.waiter is None:
                pick = interactive_waiter if self.real_time else waiter_for
                self.waiter = pick(self.driver)
            if self.listen:
                self._serve()
        except BaseException:
            self._abort()
            raise
        self._started_wall = time.time()

    def _serve(self) -> None:
        from adc.drivers.station import StationServer

        assert self.driver is not None
        profile = self.driver.profile
        self.server = StationServer(
            self.driver,
            str(self.listen),
            bus_lock=self.bus_lock,
            authorize=self._authorize,
            info={
                "cabinet": self.cabinet,
                "profile": profile.name,
                "profile_path": self._profile_path(),
                "pid": os.getpid(),
            },
            status=self.status,
        )
        self.server.start()

    def _profile_path(self) -> str:
        from adc.controller.cabinets import get_cabinet

        with self.ctl.read() as session:
            path = get_cabinet(session, self.cabinet).profile_path
        return path if path and Path(path).exists() else ""

    def _authorize(self, method: str, locks: list[str], pid: int | None) -> None:
        from adc.errors import Refused

        assert self.layout is not None
        peer = supervision.owner_of_pid(pid) if pid else None
        if peer is None:
            raise Refused(
                f"the station refuses to {method.replace('_', ' ')} {', '.join(locks)}: the "
                "calling process is not known"
            )
        supervision.authorize_unlock(self.ctl, self.cabinet, self.layout, locks, peer=peer)

    def _abort(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.driver is not None:
            self.driver.close()
            self.driver = None
        if self._lock is not None:
            self._lock.release()

    # ------------------------------------------------------------------------------- poll
    def step(self) -> list[Alarm]:
        """One poll of the cabinet; the alarms recorded."""
        assert self.driver is not None and self.layout is not None and self.waiter is not None
        now_s = self.waiter.now()
        raised: list[Alarm] = []
        if self._last_recover is None or now_s - self._last_recover >= self.recover_s:
            self._last_recover = now_s
            raised.extend(_as_alarms(recover_interrupted(self.ctl, self.cabinet)))
            self.layout = supervision.load_layout(self.ctl, self.cabinet)  # assignments change
        if self._last_schedule is None or now_s - self._last_schedule >= self.schedule_s:
            self._last_schedule = now_s
            self.scheduled.extend(
                station_schedule.run_due(self.ctl, self.cabinet, self._schedule_seen)
            )
        try:
            with self.bus_lock:
                snap = self.driver.snapshot()
        except DriverError as err:
            self.last_error = err.message
            self._write_status()
            return raised
        self.last_error = None
        self.polls += 1
        self.last_snapshot, self.last_snapshot_wall = snap, time.time()
        slow = self._last_slow is None or now_s - self._last_slow >= self.slow_s
        if slow:
            self._last_slow = now_s
        accesses = supervision.current_accesses(self.ctl, self.cabinet)
        recorded = (
            supervision.recorded_on_hand(self.ctl, self.cabinet)
            if slow or accesses or self.state.before_access
            else None
        )
        self.state, findings = supervision.evaluate(
            self.state,
            snap,
            accesses,
            self.layout,
            self.ctl.now(),
            left_open_s=self.left_open_s,
            weights=slow,
            recorded=recorded,
        )
        raised.extend(supervision.record(self.ctl, self.cabinet, findings))
        self.alarms.extend(raised)
        self._write_status()
        return raised

    def run(self, stop: threading.Event) -> None:
        assert self.waiter is not None
        while not stop.is_set():
            begun = time.monotonic()
            self.step()
            spent = time.monotonic() - begun
            if stop.is_set():
                break
            self.waiter.sleep(max(self.fast_s - spent, 0.0))

    # ------------------------------------------------------------------------------ close
    def close(self, reason: str = "stopped") -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            if self.started is not None:
                supervision.station_stopped(self.ctl, self.cabinet, self.started.event_id, reason)
        finally:
            if self.driver is not None:
                with self.bus_lock:
                    self.driver.close()
                self.driver = None
            self._write_status(running=False, force=True)
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    # ----------------------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        snap = self.last_snapshot
        doors_open = sorted(
            f"{pocket or drawer}"
            for sw, drawer, pocket in (self.layout.doors() if self.layout else [])
            if snap is not None and snap.inputs.get(sw) is False
        )
        return {
            "cabinet": self.cabinet,
            "pid": os.getpid(),
            "backend": self.backend,
            "listen": self.server.address if self.server is not None else self.listen,
            "started_at": datetime.fromtimestamp(self._started_wall, UTC).isoformat()
            if self._started_wall
            else None,
            "polls": self.polls,
            "last_snapshot_at": datetime.fromtimestamp(self.last_snapshot_wall, UTC).isoformat()
            if self.last_snapshot_wall
            else None,
            "last_error": self.last_error,
            "calls_served": self.server.calls if self.server is not None else 0,
            "doors_open": doors_open,
            "power_out": self.state.power_out,
            "bus": {
                name: {
                    "online": h.online,
                    "requests": h.requests,
                    "timeouts": h.timeouts,
                    "errors": h.errors,
                    "retries": h.retries,
                    "last_error": h.last_error,
                }
                for name, h in (snap.health.items() if snap is not None else [])
            },
            "rates_s": {"fast": self.fast_s, "slow": self.slow_s},
        }

    def _write_status(self, *, running: bool = True, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_S:
            return
        self._last_status = now
        path = status_path(self.directory, self.cabinet)
        data = {**self.status(), "running": running, "written_at": datetime.now(UTC).isoformat()}
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1, default=str))
            os.replace(tmp, path)
        except OSError:
            pass  # a status file helps; the station watches on without it


def _as_alarms(found: list[Any]) -> list[Alarm]:
    from adc.controller.access import Alarm

    return [
        Alarm("failed", f"access {f.access_id} interrupted", f.drawer, f.pocket,
              event_id=f.maintenance_event)
        for f in found
    ]  # fmt: skip
