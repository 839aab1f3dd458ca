"""The lock-board driver: CU16-style RS-485 boards over pyserial (`serial.serial_for_url`).

URI `lockboard://PORT?baudrate=19200` (PORT: a device path, a pty path or a pyserial URL) drives
every lock board of the profile on that line; `profile:` opens lock-board buses with the rest.
Frames, their public sources and the choices made where those are silent (unlock time, the
all-status layout) are in `lockboard_protocol.py` and docs/wire-protocols.md. The bus's
`protocol` must be `cu16`: the 48-lock CU48 family speaks other frames and is refused by name.

- Unlock (0x31) pulses one lock. It is sent once and never repeated (public CU16 firmware does
  not answer it, and a board may have pulsed whatever the line said); the driver confirms it by
  reading the lock's status (0x30) until the bolt shows out, within the pulse: `LockNotReleased`
  if it never does. It honours the re-arm time itself (boards do not refuse a second pulse, and a
  coil pulsed too often overheats): inside `max(rearm_ms, pulse_ms)` of its own last pulse it
  raises `RearmRefused` without sending anything.
- Before a board's first unlock its unlock time is set from the profile's `pulse_ms` (0x37) and
  read back (0x38).
- Status (0x30) reads one board's 16 lock-feedback bits and 16 inputs; polarity comes from the
  profile (`lock_polarity`, `input_polarity`). A snapshot takes one status request per board.
- Query all (0x32, to the broadcast address 0xF0, answered by every board with 0x36) and unlock
  all (0x33) are service functions (`LockboardPart.query_all`,
  `unlock_all`), not part of the driver port.
- One outstanding request per bus; before each request stale bytes are dropped; a reply from
  another board, or of the wrong kind, is discarded; bad frames are counted and retried; timeouts
  and retries are per bus; a board that used up its retries is marked offline and tried once per
  request until it answers; a port that cannot be opened is retried with exponential backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from adc.drivers import lockboard_protocol as lp
from adc.drivers.base import (
    BackendUnavailable,
    DeviceFault,
    DeviceHealth,
    DeviceOffline,
    LockNotReleased,
    RearmRefused,
    TemperatureReading,
    WeightReading,
)
from adc.drivers.buses import Clock, WireDriver
from adc.drivers.cabinet_points import PointInfo
from adc.drivers.modbus_client import BusHealth, SerialEndpoint
from adc.drivers.unlock import pulse_each
from adc.profiles.models import LockboardBus, LockboardCU16, Polarity, Profile


class LockboardClient(BusHealth):
    """The master on one lock-board line."""

    def __init__(
        self,
        bus: str,
        endpoint: SerialEndpoint,
        *,
        timeout_s: float = 0.15,
        retries: int = 2,
        backoff_s: float = 0.2,
        backoff_max_s: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.bus = bus
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.health: dict[str, DeviceHealth] = {}
        self.exchanges = 0
        self.exchanges_sent = False  # whether the last request's bytes were written
        self._lock = threading.Lock()
        self._port: Any = None
        self._decoder = lp.StreamDecoder()
        self._backoff = 0.0
        self._next_open = 0.0

    def close(self) -> None:
        with self._lock:
            self._close_port()

    # ------------------------------------------------------------------------------ exchanges
    def exchange(
        self,
        device: str,
        request: lp.Frame,
        board: int,
        *,
        point: str | None = None,
        reply: lp.Cmd = lp.Cmd.STATUS_REPLY,
    ) -> lp.Frame:
        """Send `request` (retried: only for requests that may be repeated, never an unlock),
        return the board's `reply` frame (its status, by default)."""

        def accept(frame: lp.Frame) -> bool:
            return frame.board == board and frame.cmd is reply

        health = self.health_of(device)
        attempts = 1 + (self.retries if health.online else 0)
        with self._lock:
            health.requests += 1
            last, timed_out = "no answer", False
            for attempt in range(attempts):
                if attempt:
                    health.retries += 1
                port = self._open(device, health, point)
                frames, errors, failure = self._send_and_collect(
                    port, request, lambda got: any(accept(f) for f in got)
                )
                health.errors += errors
                mine = [f for f in frames if accept(f)]
                if mine:
                    self._seen(health)
                    return mine[0]
                if failure:
                    last, timed_out = failure, True
                    self._close_port()
                elif errors:
                    last = "corrupted answer (bad checksum or malformed frame)"
                else:
                    health.timeouts += 1
                    last, timed_out = "no answer within the timeout", True
            self._give_up(device, point, health, last, timed_out, attempts)

    def send_once(
        self, device: str, request: lp.Frame, board: int, *, point: str | None = None
    ) -> lp.Frame | None:
        """Send a command that must never be repeated (an unlock) exactly once, and take the
        board's answer if one comes within the timeout. Silence is no failure: public CU16
        firmware does not answer an unlock, and a board may have pulsed all the same. Raises
        DeviceOffline only when the port cannot be opened or written (nothing went out)."""

        def accept(frame: lp.Frame) -> bool:
            return frame.board == board and frame.cmd is lp.Cmd.STATUS_REPLY

        health = self.health_of(device)
        with self._lock:
            health.requests += 1
            port = self._open(device, health, point)
            frames, errors, failure = self._send_and_collect(
                port, request, lambda got: any(accept(f) for f in got)
            )
            health.errors += errors
            if failure and not self.exchanges_sent:
                self._close_port()
                health.last_error = failure
                raise DeviceOffline(device, failure, point)
            if failure:
                self._close_port()
            mine = [f for f in frames if accept(f)]
            if mine:
                self._seen(health)
                return mine[0]
            return None

    def collect_all(self, boards: dict[int, str]) -> dict[int, lp.Frame]:
        """Query all (0x32): every board answers in turn; wait for the ones in `boards`."""
        with self._lock:
            first = next(iter(boards.values()))
            port = self._open(first, self.health_of(first), None)
            frames, _errors, _ = self._send_and_collect(
                port,
                lp.query_all_request(),
                lambda got: set(boards) <= {f.board for f in got if f.cmd in lp.STATUS_FRAMES},
                timeout_s=self.timeout_s * max(1, len(boards)),
            )
            out = {f.board: f for f in frames if f.cmd in lp.STATUS_FRAMES}
            for board, device in boards.items():
                health = self.health_of(device)
                health.requests += 1
                if board in out:
                    self._seen(health)
                else:
                    health.timeouts += 1
            return out

    def _send_and_collect(
        self,
        port: Any,
        request: lp.Frame,
        done: Callable[[list[lp.Frame]], bool],
        timeout_s: float | None = None,
    ) -> tuple[list[lp.Frame], int, str | None]:
        """(frames received, bad frames, I/O failure or None) of one request."""
        import serial

        frames: list[lp.Frame] = []
        errors = 0
        try:
            port.reset_input_buffer()  # stale answers to earlier requests
            self._decoder.reset()
            self.exchanges_sent = False
            port.write(lp.encode(request))
            self.exchanges_sent = True
            self.exchanges += 1
            deadline = time.monotonic() + (timeout_s or self.timeout_s)
            while not done(frames):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                port.timeout = left
                data = port.read(max(1, port.in_waiting))
                if not data:
                    break
                self._decoder.feed(data)
                got, bad = self._decoder.drain()
                frames += got
                errors += len(bad)
        except (serial.SerialException, OSError) as err:
            return frames, errors, f"I/O error on {self.endpoint.url}: {err}"
        return frames, errors, None

    def _open(self, device: str, health: DeviceHealth, point: str | None) -> Any:
        if self._port is not None:
            return self._port
        import serial

        now = time.monotonic()
        if now < self._next_open:
            health.online = False
            raise DeviceOffline(
                device,
                f"port {self.endpoint.url} of bus {self.bus} is not open; "
                f"next attempt in {self._next_open - now:.1f} s",
                point,
            )
        ep = self.endpoint
        try:
            self._port = serial.serial_for_url(
                ep.url,
                baudrate=ep.baudrate,
                bytesize=ep.bytesize,
                parity=ep.parity,
                stopbits=ep.stopbits,
                timeout=self.timeout_s,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as err:
            self._backoff = min(max(2 * self._backoff, self.backoff_s), self.backoff_max_s)
            self._next_open = now + self._backoff
            health.online = False
            raise DeviceOffline(
                device, f"cannot open {ep.url} (bus {self.bus}): {err}", point
            ) from None
        self._backoff = 0.0
        return self._port

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None


class LockboardPart:
    """The lock boards of some buses: their I/O for a `WireDriver`."""

    has_feedback = True

    def __init__(
        self,
        profile: Profile,
        clients: dict[str, LockboardClient],
        devices: set[str],
        clock: Clock = time.monotonic,
        wait: Callable[[float], None] | None = None,
    ) -> None:
        self.profile = profile
        self.clients = clients
        self.devices = {d for d in devices if isinstance(profile.devices[d], LockboardCU16)}
        self.clock = clock
        # How the driver lets time pass while it waits for a bolt to show out after an unlock.
        # None: it cannot (a caller-owned clock that stands still during the call, e.g. a
        # scenario step); the unlock is then confirmed by one status read only.
        self.wait = wait
        self._last_pulse: dict[str, float] = {}
        self._timed: set[str] = set()  # boards whose unlock time was set from the profile

    def _model(self, device: str) -> LockboardCU16:
        model = self.profile.devices[device]
        assert isinstance(model, LockboardCU16)
        return model

    def _client(self, device: str) -> LockboardClient:
        return self.clients[self.profile.devices[device].bus]

    def status(self, device: str, point: str | None = None) -> tuple[int, int]:
        """Raw (lock bits, input bits) of one board."""
        model = self._model(device)
        reply = self._client(device).exchange(
            device, lp.status_request(model.address), model.address, point=point
        )
        return reply.locks, reply.inputs

    # ---------------------------------------------------------------------------------- ports
    def health(self) -> dict[str, DeviceHealth]:
        out: dict[str, DeviceHealth] = {}
        for client in set(self.clients.values()):
            out.update({k: v for k, v in client.health.items() if k in self.devices})
        return out

    def check_rearm(self, info: PointInfo) -> None:
        """RearmRefused inside the re-arm window of our own last pulse of the lock (no I/O)."""
        model = self._model(info.ref.device)
        rearm_ms = max(model.solenoid.rearm_ms, model.solenoid.pulse_ms)
        last = self._last_pulse.get(info.text)
        elapsed_ms = None if last is None else (self.clock() - last) * 1000
        if elapsed_ms is not None and elapsed_ms < rearm_ms:  # rearm_ms 0: the pulse itself
            raise RearmRefused(info.text, rearm_ms - elapsed_ms)

    def probe(self, group: Sequence[PointInfo]) -> None:
        """One status request to the group's board: it must answer."""
        self.status(group[0].ref.device, group[0].text)

    def pulse_group(self, group: Sequence[PointInfo]) -> None:
        """Back-to-back unlock frames (0x31): a CU16 board has no frame that opens a chosen set
        of locks (0x33 opens all sixteen)."""
        pulse_each(group, self.pulse)

    confirm_step_s = 0.005  # between the status reads that wait for the bolt

    def pulse(self, info: PointInfo) -> None:
        """Unlock (0x31) sent once, never repeated; then the lock's status (0x30, reads may
        retry) until its feedback shows the bolt out. LockNotReleased if it still shows the bolt
        in at the end of the pulse; DeviceOffline if the board answers neither the unlock nor
        the status reads (the lock may have pulsed: unconfirmed)."""
        device = info.ref.device
        model = self._model(device)
        self.check_rearm(info)
        self._ensure_unlock_time(device, info.text)
        sent_at = self.clock()
        self._client(device).send_once(
            device, lp.unlock_request(model.address, info.ref.index), model.address, point=info.text
        )
        self._last_pulse[info.text] = sent_at  # answered or not: it may have pulsed
        self._confirm(info, sent_at)

    def _ensure_unlock_time(self, device: str, point: str) -> None:
        """Before a board's first unlock: set its unlock (pulse) time to the profile's
        `pulse_ms` (0x37) and read it back (0x38). A board that keeps another time is a
        DeviceFault naming both; both requests may be repeated, so they retry like reads."""
        if device in self._timed:
            return
        model = self._model(device)
        client, board, want = self._client(device), model.address, model.solenoid.pulse_ms
        client.exchange(
            device,
            lp.set_unlock_time_request(board, want),
            board,
            point=point,
            reply=lp.Cmd.UNLOCK_TIME,
        )
        got = client.exchange(
            device,
            lp.read_unlock_time_request(board),
            board,
            point=point,
            reply=lp.Cmd.UNLOCK_TIME,
        ).ms
        if got != want:
            raise DeviceFault(
                device, f"keeps an unlock time of {got} ms; the profile's pulse_ms is {want}", point
            )
        self._timed.add(device)

    def _confirm(self, info: PointInfo, sent_at: float) -> None:
        """Read the lock's feedback until the bolt is out, waiting (via `wait`) up to the end of
        its pulse; without a way to wait, one read. Never pulses again."""
        pulse_s = self._model(info.ref.device).solenoid.pulse_ms / 1000
        reads = 0
        while True:
            engaged = self.lock_feedback(info)
            reads += 1
            if not engaged:
                return
            elapsed = self.clock() - sent_at
            left = pulse_s - elapsed
            if self.wait is None:
                return  # the caller owns time: it reads the feedback after the retract time
            if left <= 0 or reads > pulse_s / self.confirm_step_s + 2:
                raise LockNotReleased(info.ref.device, info.text, elapsed * 1000)
            self.wait(min(self.confirm_step_s, left))

    def lock_feedback(self, info: PointInfo) -> bool:
        locks, _ = self.status(info.ref.device, info.text)
        active_low = self._model(info.ref.device).lock_polarity is Polarity.ACTIVE_LOW
        return bool(locks >> info.ref.index & 1) != active_low

    def read_input(self, info: PointInfo) -> bool:
        _, inputs = self.status(info.ref.device, info.text)
        active_low = self._model(info.ref.device).input_polarity is Polarity.ACTIVE_LOW
        return bool(inputs >> info.ref.index & 1) != active_low

    def read_output(self, info: PointInfo) -> bool:
        return not self.lock_feedback(info)

    def write_output(self, info: PointInfo, on: bool) -> None:
        raise DeviceFault(info.ref.device, "a lock board has only solenoid outputs", info.text)

    def read_weight(self, info: PointInfo) -> WeightReading:
        raise DeviceFault(info.ref.device, "a lock board has no load cells", info.text)

    def read_temperature(self, info: PointInfo) -> TemperatureReading:
        raise DeviceFault(info.ref.device, "a lock board has no analog inputs", info.text)

    def read_all(self, points: set[str]) -> dict[str, object]:
        """One status request per board that has a wanted point."""
        out: dict[str, object] = {}
        for device in sorted({p.partition(":")[0] for p in points} & self.devices):
            try:
                locks, inputs = self.status(device)
            except (DeviceOffline, DeviceFault):
                continue
            model = self._model(device)
            lock_low = model.lock_polarity is Polarity.ACTIVE_LOW
            input_low = model.input_polarity is Polarity.ACTIVE_LOW
            for i in range(16):
                out[f"{device}:lock.{i}"] = bool(locks >> i & 1) != lock_low
                out[f"{device}:input.{i}"] = bool(inputs >> i & 1) != input_low
        return {p: v for p, v in out.items() if p in points}

    # ----------------------------------------------------------------------- service functions
    def query_all(self, bus: str | None = None) -> dict[str, tuple[int, int] | None]:
        """Query all boards of a bus at once (0x32): raw bits per board, None for a silent one."""
        out: dict[str, tuple[int, int] | None] = {}
        for name, client in self.clients.items():
            if bus is not None and name != bus:
                continue
            boards = {
                self._model(d).address: d
                for d in sorted(self.devices)
                if self._model(d).bus == name
            }
            if not boards:
                continue
            frames = client.collect_all(boards)
            for board, device in boards.items():
                frame = frames.get(board)
                out[device] = None if frame is None else (frame.locks, frame.inputs)
        return out

    def unlock_all(self, device: str) -> tuple[int, int]:
        """Pulse every lock of a board that is not re-arming (0x33); its status afterwards."""
        model = self._model(device)
        now = self.clock()
        self._client(device).send_once(device, lp.unlock_all_request(model.address), model.address)
        for i in range(16):
            self._last_pulse.setdefault(f"{device}:lock.{i}", now)
        return self.status(device)

    def close(self) -> None:
        for client in set(self.clients.values()):
            client.close()


# --------------------------------------------------------------------------------- opening
def check_protocol(name: str, bus: LockboardBus) -> None:
    """Only the CU16 protocol is spoken; a CU48 bus is refused with a clear message."""
    if bus.protocol != "cu16":
        raise BackendUnavailable(
            f"bus {name}: lock-board protocol {bus.protocol!r} is not implemented (the 48-lock "
            "CU48 family uses other, longer frames); only 'cu16' boards can be driven"
        )


def lockboard_client(
    name: str,
    bus: LockboardBus,
    port: str | None = None,
    timeout_s: float | None = None,
    clock: Clock = time.monotonic,
) -> LockboardClient:
    check_protocol(name, bus)
    endpoint = SerialEndpoint(
        port or bus.port, bus.baudrate, bus.bytesize, bus.parity, bus.stopbits
    )
    return LockboardClient(
        name,
        endpoint,
        timeout_s=timeout_s if timeout_s is not None else bus.timeout_ms / 1000,
        retries=bus.retries,
        clock=clock,
    )


def open_backend(target: str, profile: Profile | None = None, **options: object) -> WireDriver:
    """Registry factory for `lockboard://PORT?baudrate=N`: every lock board of the profile on one
    line. Query: baudrate, timeout_ms, retries, profile. Options: clock, timeout_s, wait."""
    from adc.drivers.buses import wait_option
    from adc.drivers.modbus import _int, _open_target, _timeout_s

    options = dict(options)
    wait_given = options.pop("wait", None)
    base, params, profile, clock, timeout_s = _open_target(
        "lockboard", target, profile, options, "a port: lockboard://PORT"
    )
    wait = wait_option({"wait": wait_given}, clock)
    buses = {n: b for n, b in profile.buses.items() if isinstance(b, LockboardBus)}
    for name, bus in buses.items():
        check_protocol(name, bus)
    first = next(iter(buses.values()), None)
    client = LockboardClient(
        f"lockboard://{base}",
        SerialEndpoint(
            base, _int(params, "baudrate", first.baudrate if first else 19200), 8, "N", 1
        ),
        timeout_s=_timeout_s(params, timeout_s, first, 150),
        retries=_int(params, "retries", first.retries if first else 2),
        clock=clock,
    )
    devices = {d for d, m in profile.devices.items() if m.bus in buses}
    part = LockboardPart(profile, dict.fromkeys(buses, client), devices, clock, wait)
    return WireDriver(profile, [part], clock)
