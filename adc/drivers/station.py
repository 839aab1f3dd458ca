"""The driver port by proxy through a running station: URI `station:PATH` or
`station://127.0.0.1:PORT`, and the station's side of the wire.

Protocol: JSON-RPC 2.0, one request or response per line (UTF-8 JSON, `\\n`-terminated), over a
Unix stream socket (created mode 0660) or a TCP socket on loopback. Standard library only
(`socket`, `socketserver`, `json`): the messages are a dozen small calls on one machine, so an
HTTP stack would add dependencies and latency without adding anything the port needs. On a Unix
socket the station knows the calling process from the kernel (`SO_PEERCRED`), which is what lets
it check that an unlock comes from the process that opened the access on record.

Methods: `hello` (the station's cabinet and profile), every call of the driver port
(`snapshot`, `input_active`, `lock_engaged`, `weight`, `temperature`, `set_light`, `health`,
`pulse`, `unlock_together`) and `status` (what the station last saw). A driver error travels as
a JSON-RPC error whose `data` names its type and fields, and is raised again on the client as the
same typed error (`RearmRefused`, `DeviceOffline`, `PartialUnlock`, ...). A station that refuses
an unlock raises `Refused`. A station that cannot be reached is `DeviceOffline` of device
`station`.

The server here only moves calls between the socket and the driver, one at a time (the bus is
one resource); whether an unlock may go out is decided by the `authorize` callback the station
passes in (the controller's rule: `supervision.authorize_unlock`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from adc.drivers.base import (
    BackendUnavailable,
    DeviceFault,
    DeviceHealth,
    DeviceOffline,
    DriverError,
    LockNotReleased,
    PartialUnlock,
    Quality,
    RearmRefused,
    Snapshot,
    TemperatureReading,
    UnknownPoint,
    WeightReading,
    WrongPointRole,
)
from adc.errors import AdcError, BadInput, CheckFailed, Refused

if TYPE_CHECKING:
    from adc.drivers.base import CabinetDriver
    from adc.profiles.models import Profile

PROTOCOL = "adc-station/1"
MAX_LINE = 1 << 20
TIMEOUT_S = 10.0

_ERRORS: dict[str, type[AdcError]] = {
    cls.__name__: cls
    for cls in (
        AdcError,
        BadInput,
        Refused,
        CheckFailed,
        DriverError,
        UnknownPoint,
        WrongPointRole,
        DeviceOffline,
        DeviceFault,
        LockNotReleased,
        RearmRefused,
        PartialUnlock,
        BackendUnavailable,
    )
}
_FIELDS = ("point", "device", "remaining_ms", "released", "not_released", "unconfirmed")


# ---------------------------------------------------------------------------------- encoding
def encode_error(err: AdcError) -> dict[str, Any]:
    name = next((c.__name__ for c in type(err).__mro__ if c.__name__ in _ERRORS), "AdcError")
    data: dict[str, Any] = {"type": name, "details": list(err.details or [])}
    for key in _FIELDS:
        if hasattr(err, key):
            value = getattr(err, key)
            data[key] = list(value) if isinstance(value, tuple) else value
    if isinstance(err, PartialUnlock):
        data["cause"] = encode_error(err.cause)
    return {"code": -32000, "message": err.message, "data": data}


def decode_error(error: dict[str, Any]) -> AdcError:
    data = error.get("data") or {}
    cls = _ERRORS.get(str(data.get("type")), AdcError)
    message = str(error.get("message", "station error"))
    if cls is PartialUnlock:
        cause = decode_error(data.get("cause") or {"message": message})
        return PartialUnlock(
            data.get("released", []),
            data.get("not_released", []),
            cause,
            data.get("unconfirmed", []),
        )
    err = cls.__new__(cls)
    AdcError.__init__(err, message, details=list(data.get("details") or []))
    for key in _FIELDS:
        if key in data:
            setattr(err, key, data[key])
    return err


def _weight(r: WeightReading | None) -> list[Any] | None:
    return None if r is None else [r.grams, r.quality.value]


def _temp(r: TemperatureReading | None) -> list[Any] | None:
    return None if r is None else [r.celsius, r.quality.value]


def encode_snapshot(snap: Snapshot) -> dict[str, Any]:
    return {
        "time": snap.time,
        "locks_engaged": snap.locks_engaged,
        "inputs": snap.inputs,
        "weights": {p: _weight(r) for p, r in snap.weights.items()},
        "temperatures": {p: _temp(r) for p, r in snap.temperatures.items()},
        "lights": snap.lights,
        "health": {n: asdict(h) for n, h in snap.health.items()},
    }


def decode_snapshot(data: dict[str, Any]) -> Snapshot:
    return Snapshot(
        time=data["time"],
        locks_engaged=data["locks_engaged"],
        inputs=data["inputs"],
        weights={
            p: None if v is None else WeightReading(v[0], Quality(v[1]))
            for p, v in data["weights"].items()
        },
        temperatures={
            p: None if v is None else TemperatureReading(v[0], Quality(v[1]))
            for p, v in data["temperatures"].items()
        },
        lights=data["lights"],
        health={n: DeviceHealth(**h) for n, h in data["health"].items()},
    )


# ------------------------------------------------------------------------------- addresses
def parse_listen(text: str) -> tuple[str, str | tuple[str, int]]:
    """`PATH` → ('unix', PATH); `HOST:PORT` (loopback only) → ('tcp', (HOST, PORT))."""
    text = text.removeprefix("//")
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "/" not in text:
        host = host.strip("[]")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise BadInput(f"the station listens on loopback only, not {host!r} (127.0.0.1:PORT)")
        return "tcp", (host, int(port))
    if not text:
        raise BadInput("a station address is a socket path or 127.0.0.1:PORT")
    return "unix", text


# ---------------------------------------------------------------------------------- client
class StationDriver:
    """`CabinetDriver` by proxy: every call is one request to the station."""

    def __init__(self, target: str, profile: Profile | None = None) -> None:
        self.address = target
        kind, where = parse_listen(target)
        try:
            if kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(TIMEOUT_S)
                sock.connect(where)  # type: ignore[arg-type]
            else:
                sock = socket.create_connection(where, timeout=TIMEOUT_S)  # type: ignore[arg-type]
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            raise DeviceOffline(
                "station", f"no station at {target}: {err.strerror or err}"
            ) from None
        self._sock = sock
        self._file = sock.makefile("rwb")
        self._lock = threading.Lock()
        self._next = 0
        hello = self._call("hello", {"protocol": PROTOCOL, "pid": os.getpid()})
        self.cabinet: str = hello["cabinet"]
        if profile is None:
            from adc.profiles import load_profile, resolve_profile_path

            profile = load_profile(resolve_profile_path(hello["profile_path"] or hello["profile"]))
        elif profile.name != hello["profile"]:
            self.close()
            raise BadInput(
                f"the station at {target} runs cabinet {self.cabinet} ({hello['profile']}), "
                f"not profile {profile.name}"
            )
        self.profile = profile

    def _call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        with self._lock:
            self._next += 1
            request = {"jsonrpc": "2.0", "id": self._next, "method": method}
            if params:
                request["params"] = params
            try:
                self._file.write(json.dumps(request).encode() + b"\n")
                self._file.flush()
                line = self._file.readline(MAX_LINE)
            except OSError as err:
                raise DeviceOffline(
                    "station", f"lost the station at {self.address}: {err}"
                ) from None
            if not line:
                raise DeviceOffline("station", f"the station at {self.address} closed the link")
        reply = json.loads(line)
        if "error" in reply:
            raise decode_error(reply["error"])
        return reply.get("result")

    # ---------------------------------------------------------------------------------- port
    def pulse(self, point: str) -> None:
        self._call("pulse", {"point": point})

    def unlock_together(self, points: Sequence[str]) -> None:
        self._call("unlock_together", {"points": list(points)})

    def lock_engaged(self, point: str) -> bool:
        return bool(self._call("lock_engaged", {"point": point}))

    def input_active(self, point: str) -> bool:
        return bool(self._call("input_active", {"point": point}))

    def weight(self, point: str) -> WeightReading:
        grams, quality = self._call("weight", {"point": point})
        return WeightReading(grams, Quality(quality))

    def temperature(self, point: str) -> TemperatureReading:
        celsius, quality = self._call("temperature", {"point": point})
        return TemperatureReading(celsius, Quality(quality))

    def set_light(self, point: str, on: bool) -> None:
        self._call("set_light", {"point": point, "on": on})

    def health(self) -> dict[str, DeviceHealth]:
        return {n: DeviceHealth(**h) for n, h in self._call("health").items()}

    def snapshot(self) -> Snapshot:
        return decode_snapshot(self._call("snapshot"))

    def status(self) -> dict[str, Any]:
        return dict(self._call("status"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()

    def __enter__(self) -> StationDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_backend(target: str, profile: Profile | None = None, **options: object) -> StationDriver:
    """Registry factory for `station:PATH` and `station://127.0.0.1:PORT`."""
    if options:
        raise BadInput(f"the station backend has no option {', '.join(sorted(options))}")
    return StationDriver(target, profile)


# ---------------------------------------------------------------------------------- server
Authorize = Callable[[str, list[str], int | None], None]  # (method, locks, peer pid) or raise


class StationServer:
    """Serves one driver to clients, one call at a time under `bus_lock`.

    `authorize(method, locks, pid)` is asked before every `pulse` and `unlock_together` and
    raises to refuse (`pid`: the calling process, from the kernel on a Unix socket, from the
    client's hello over TCP). `info` is what `hello` answers; `status` returns what the station
    last saw."""

    def __init__(
        self,
        driver: CabinetDriver,
        listen: str,
        *,
        bus_lock: threading.Lock,
        authorize: Authorize,
        info: dict[str, Any],
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.driver = driver
        self.bus_lock = bus_lock
        self.authorize = authorize
        self.info = info
        self.status = status
        self.kind, self.where = parse_listen(listen)
        self.listen = listen
        self.calls = 0
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a thread; Refused if another process listens there already."""
        handler = _handler(self)
        if self.kind == "unix":
            path = str(self.where)
            if os.path.exists(path):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(path)
                except OSError:
                    os.unlink(path)  # a socket left by a station that is gone
                else:
                    raise Refused(f"another process listens on {path}")
                finally:
                    probe.close()
            old = os.umask(0o117)
            try:
                server: socketserver.BaseServer = _UnixServer(path, handler)
            finally:
                os.umask(old)
            os.chmod(path, 0o660)
        else:
            try:
                server = _TcpServer(self.where, handler)  # type: ignore[arg-type]
            except OSError as err:
                host, port = self.where  # type: ignore[misc]
                raise Refused(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="station-rpc", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        if self.kind == "tcp" and self._server is not None:
            host, port = self._server.server_address[:2]  # type: ignore[index, misc]
            return f"{host}:{port}"
        return str(self.where)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(str(self.where))

    # ------------------------------------------------------------------------------ calls
    def dispatch(self, method: str, params: dict[str, Any], pid: int | None) -> Any:
        self.calls += 1
        d = self.driver
        if method == "hello":
            return self.info
        if method == "status":
            return self.status()
        with self.bus_lock:
            if method == "snapshot":
                return encode_snapshot(d.snapshot())
            if method == "health":
                return {n: asdict(h) for n, h in d.health().items()}
            point = params.get("point")
            if method == "input_active":
                return d.input_active(str(point))
            if method == "lock_engaged":
                return d.lock_engaged(str(point))
            if method == "weight":
                return _weight(d.weight(str(point)))
            if method == "temperature":
                return _temp(d.temperature(str(point)))
            if method == "set_light":
                d.set_light(str(point), bool(params.get("on")))
                return None
            if method == "pulse":
                self.authorize(method, [str(point)], pid)
                d.pulse(str(point))
                return None
            if method == "unlock_together":
                points = [str(p) for p in params.get("points", [])]
                self.authorize(method, points, pid)
                d.unlock_together(points)
                return None
        raise BadInput(f"the station has no method {method!r}")


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _peer_pid(sock: socket.socket) -> int | None:
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid


def _handler(server: StationServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            kernel_pid = _peer_pid(sock)
            pid = kernel_pid
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line:
                    return
                reply: dict[str, Any] = {"jsonrpc": "2.0", "id": None}
                try:
                    request = json.loads(line)
                    reply["id"] = request.get("id")
                    method = str(request["method"])
                    params = request.get("params") or {}
                    if method == "hello" and kernel_pid is None:
                        claimed = params.get("pid")
                        pid = claimed if isinstance(claimed, int) else None
                    reply["result"] = server.dispatch(method, params, pid)
                except AdcError as err:
                    reply["error"] = encode_error(err)
                except (ValueError, KeyError, TypeError) as err:
                    reply["error"] = {"code": -32600, "message": f"bad request: {err}"}
                except Exception as err:  # never let a client take the station down
                    reply["error"] = {"code": -32603, "message": f"station error: {err!r}"}
                try:
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
                    self.wfile.flush()
                except OSError:
                    return

    return Handler
