"""Modbus emulators: a VirtualCabinet's Modbus devices served on TCP and on an RTU serial line.

Why not pymodbus's server: a request for a device id the server does not have raises KeyError inside
it (a traceback in the log and exception 04 on the wire, where a real RTU bus stays silent and a
gateway answers 0x0B); its datastore holds copies of values, where the virtual devices compute theirs
at the moment of the read; and it cannot corrupt a CRC or pace bytes at a baud rate. So the serving
is ~150 lines over `adc.drivers.modbus_frames` (plain struct, checked against pymodbus's encoder and
against mbpoll in the tests).

What a client sees (docs/wire-protocols.md has the register maps):
- functions 1, 2, 3, 4, 5, 6, 15, 16; anything else: exception 01 (TCP; over RTU a frame whose
  length cannot be known is line noise and gets no answer);
- a device that raises `VirtualDeviceOffline`: no answer at all (the client times out);
- a unit id no device on the bus has: silence on RTU, exception 0x0B (gateway target failed to
  respond) on TCP, and nothing in the log either way;
- unit id 0 (broadcast), RTU and TCP: a write is carried out by every Modbus device on the bus
  that can, and nobody answers; a broadcast read is ignored;
- the virtual device's errors as their exception codes (02, 03, 04, 06 ...);
- `cabinet.bus_noise(bus)`: that share of answers gets one byte flipped on RTU (a bad CRC) and is
  lost on TCP (which has its own checksums), drawn from `cabinet.rng_for(bus)` so a seeded run
  repeats.

Thread safety: each emulator serves from its own thread(s) and takes `lock` around every touch of
the cabinet. Whoever advances the SimPy environment (a test, `adc sim serve`) holds the same lock.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any

from adc.drivers import modbus_frames as mf
from adc.sim.emulator_line import (
    Line,
    LineTiming,
    PtyLine,
    SerialUrlLine,
    paced_write,
    serial_settings,
    sleep_until,
)
from adc.sim.errors import VirtualDeviceOffline, VirtualHardwareError

if TYPE_CHECKING:
    from adc.sim.cabinet import VirtualCabinet

log = logging.getLogger(__name__)

SILENT = None  # `ModbusService.answer` result: send nothing


class UnknownUnit(Exception):
    """No device on this bus has the unit id (RTU: silence; TCP gateway: exception 0x0B)."""


class ModbusService:
    """Answers request PDUs for the Modbus devices on one bus of a VirtualCabinet."""

    def __init__(
        self, cabinet: VirtualCabinet, bus: str, lock: AbstractContextManager[Any] | None = None
    ) -> None:
        self.cabinet = cabinet
        self.bus = bus
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        self.served = 0  # answers sent (any kind)
        self.dropped = 0  # requests that got no answer
        self.broadcasts = 0  # broadcast writes carried out (unit id 0, never answered)

    def answer(self, unit: int, pdu: bytes) -> bytes | None:
        """The response PDU, None for silence; raises UnknownUnit for an id nobody has."""
        with self.lock:
            device = self.cabinet.device_at(self.bus, unit)
            if device is None or not hasattr(device, "read_registers"):
                raise UnknownUnit(unit)
            function = pdu[0] if pdu else 0
            try:
                request = mf.decode_request(pdu)
                response = self._execute(device, request)
            except VirtualDeviceOffline:
                self.dropped += 1
                return SILENT
            except mf.ModbusFrameError as err:
                if not device.online:
                    self.dropped += 1
                    return SILENT
                code = err.exception_code or mf.ExceptionCode.ILLEGAL_VALUE
                response = mf.ExceptionResponse(function & 0x7F, code)
            except VirtualHardwareError as err:
                response = mf.ExceptionResponse(
                    function, err.modbus_code or mf.ExceptionCode.DEVICE_FAILURE
                )
            self.served += 1
            return mf.encode_response(response)

    def broadcast(self, pdu: bytes) -> None:
        """Unit id 0: a write is carried out by every Modbus device on the bus that can (each
        on its own; one refusing does not stop the others), a read is ignored; never answered."""
        with self.lock:
            try:
                request = mf.decode_request(pdu)
            except mf.ModbusFrameError:
                return
            if isinstance(request, mf.ReadRequest):
                return
            for device in list(self.cabinet.devices.values()):
                if device.bus != self.bus or not hasattr(device, "read_registers"):
                    continue
                with suppress(VirtualHardwareError):
                    self._execute(device, request)
            self.broadcasts += 1

    @staticmethod
    def _execute(device: Any, request: mf.Request) -> mf.Response:
        fc = request.function
        if isinstance(request, mf.ReadRequest):
            if fc in mf.BIT_READS:
                table = "coils" if fc == mf.Function.READ_COILS else "discrete_inputs"
                return mf.BitsResponse(
                    fc, tuple(device.read_bits(table, request.address, request.count))
                )
            table = "holding" if fc == mf.Function.READ_HOLDING_REGISTERS else "input"
            return mf.RegistersResponse(
                fc, tuple(device.read_registers(table, request.address, request.count))
            )
        if isinstance(request, mf.WriteSingleRequest):
            if fc == mf.Function.WRITE_COIL:
                device.write_coil(request.address, bool(request.value))
            else:
                device.write_register(request.address, request.value)
            return mf.WriteResponse(fc, request.address, request.value)
        if fc == mf.Function.WRITE_COILS:  # all or nothing: checked before any coil is written
            device.write_coils(request.address, [bool(v) for v in request.values])
        else:
            for offset, value in enumerate(request.values):
                device.write_register(request.address + offset, value)
        return mf.WriteResponse(fc, request.address, len(request.values))

    def noise_hits(self) -> bool:
        """Whether the bus's noise spoils the next frame (seeded, so runs repeat)."""
        with self.lock:
            return noise_hits(self.cabinet, self.bus)


def noise_hits(cabinet: VirtualCabinet, bus: str) -> bool:
    """Whether the bus's noise spoils the next frame, drawn from the bus's seeded stream."""
    noise = cabinet.bus_noise(bus)
    return noise > 0 and cabinet.rng_for(bus).random() < noise


# ------------------------------------------------------------------------------------------- TCP
class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        service = self.server.service
        decoder = mf.MbapDecoder()
        self.server.track(sock, True)
        try:
            while not self.server.stopping.is_set():
                try:
                    data = sock.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                decoder.feed(data)
                while True:
                    try:
                        frame = decoder.next_frame()
                    except mf.ModbusFrameError:
                        return  # not Modbus TCP: drop the connection, as gateways do
                    if frame is None:
                        break
                    reply = self._reply(service, frame)
                    # TCP has its own checksums: noise on the gateway's field side shows as a
                    # lost answer (the client times out and retries), never as a wrong value.
                    if reply is not None and not (self.server.noisy and service.noise_hits()):
                        sock.sendall(reply)
        except OSError:
            return
        finally:
            self.server.track(sock, False)

    @staticmethod
    def _reply(service: ModbusService, frame: mf.MbapFrame) -> bytes | None:
        if frame.unit == 0:
            service.broadcast(frame.pdu)  # broadcast: carried out, never answered
            return None
        try:
            pdu = service.answer(frame.unit, frame.pdu)
        except UnknownUnit:
            function = frame.pdu[0] & 0x7F if frame.pdu else 0
            pdu = mf.encode_response(
                mf.ExceptionResponse(function, mf.ExceptionCode.GATEWAY_TARGET_NO_RESPONSE)
            )
        if pdu is None:
            return None
        return mf.encode_mbap(frame.transaction, frame.unit, pdu)


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    # listen() backlog: socketserver's default of 5 let a burst of connects overflow the accept
    # queue (dropped SYNs: 1 s retransmit stalls for clients during a connect storm). Accepting
    # costs ~0.3 ms (a thread per connection), a client on loopback connects in ~0.04 ms: 1024
    # (the kernel caps it at net.core.somaxconn) absorbs 1,000 back-to-back connect/close cycles.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], service: ModbusService, noisy: bool) -> None:
        self.service = service
        self.noisy = noisy
        self.stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        super().__init__(address, _TcpHandler)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._clients_lock:
            (self._clients.add if alive else self._clients.discard)(sock)

    def drop_clients(self) -> None:
        with self._clients_lock:
            for sock in list(self._clients):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("modbus tcp emulator: error serving %s", client_address, exc_info=True)


class ModbusTcpEmulator:
    """Serves one bus's Modbus devices on TCP, as a gateway would (one address, many unit ids).

    `port=0` takes any free port; `address` reports the bound (host, port) once started.
    The cabinet's bus noise drops that share of answers (`noise=False` ignores it): TCP has its
    own checksums, so noise behind a gateway shows as a lost answer, never as a bad frame.
    """

    def __init__(
        self,
        cabinet: VirtualCabinet,
        bus: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        lock: AbstractContextManager[Any] | None = None,
        noise: bool = True,
    ) -> None:
        self.service = ModbusService(cabinet, bus, lock)
        self._server = _TcpServer((host, port), self.service, noise)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> ModbusTcpEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"modbus-tcp-emulator-{self.service.bus}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.stopping.set()
        self._server.drop_clients()
        if self._thread is not None and self._thread.is_alive():
            # socketserver's shutdown() waits for serve_forever without a bound: ask it in a
            # helper thread, and wait here only as long as one accept and a poll take.
            threading.Thread(target=self._server.shutdown, daemon=True).start()
            self._thread.join(timeout=5)
        self._server.drop_clients()  # a connection accepted while the loop stopped
        self._server.server_close()

    def __enter__(self) -> ModbusTcpEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------- RTU
class SerialEmulator(ABC):
    """Base of the serial emulators: one bus of a cabinet on a line (a pty, or a pyserial URL when
    `port` is given), a serving thread, optional line timing, and the frames decoded as they come.

    Subclasses set `_decoder` (a stream decoder with feed, next_frame and pending), `frame_error`
    (what it raises for a bad frame) and answer in `_serve_frame` and `_line_silent`.
    """

    poll_s = 0.02
    frame_error: type[Exception] = Exception

    def __init__(
        self,
        cabinet: VirtualCabinet,
        bus: str,
        port: str | None,
        *,
        line_timing: bool,
        lock: AbstractContextManager[Any] | None,
        name: str,
    ) -> None:
        serial = serial_settings(cabinet.profile.buses[bus])
        self.line: Line = PtyLine() if port is None else SerialUrlLine(port, *serial)
        self.timing = LineTiming.for_bus(*serial) if line_timing else None
        self.cabinet = cabinet
        self.bus = bus
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        self.bad_frames = 0
        self._decoder: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    @property
    def port(self) -> str:
        """Where a client connects: the pty path or the URL."""
        return self.line.name

    def start(self) -> SerialEmulator:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.line.close()

    def __enter__(self) -> SerialEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        first_byte_at: float | None = None
        while not self._stop.is_set():
            data = self.line.read(self._silence_s())
            if data:
                if first_byte_at is None or not self._pending():
                    first_byte_at = time.monotonic()
                self._received(data, first_byte_at)
                continue
            self._line_silent()
            first_byte_at = None

    def _silence_s(self) -> float:
        # A pty delivers a frame at once; silence longer than a frame gap ends a frame.
        return self.poll_s if self.timing is None else max(self.timing.gap_s, 0.002)

    def _answer_at(self, first_byte_at: float, request_len: int) -> float:
        """When a real device would start its answer: the request's wire time plus a frame gap."""
        if self.timing is None:
            return 0.0
        return first_byte_at + request_len * self.timing.char_s + self.timing.gap_s

    def _send(self, frame: bytes, start: float) -> None:
        if self.timing is not None:
            sleep_until(start)
        paced_write(self.line, frame, self.timing, max(start, time.monotonic()))

    def _corrupt(self, frame: bytes) -> bytes:
        """Flip one byte of an outgoing frame with the bus's noise probability (a bad checksum)."""
        with self.lock:
            if not noise_hits(self.cabinet, self.bus):
                return frame
            rng = self.cabinet.rng_for(self.bus)
            data = bytearray(frame)
            data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
            return bytes(data)

    def _pending(self) -> bool:
        return self._decoder.pending > 0

    def _received(self, data: bytes, first_byte_at: float) -> None:
        self._decoder.feed(data)
        while True:
            try:
                frame = self._decoder.next_frame()
            except self.frame_error:
                self.bad_frames += 1
                continue
            if frame is None:
                return
            self._serve_frame(frame, first_byte_at)
            first_byte_at = time.monotonic()

    # Subclasses: frame handling.
    @abstractmethod
    def _serve_frame(self, frame: Any, first_byte_at: float) -> None:
        """Answer one decoded frame (or stay silent, as a real device would)."""

    @abstractmethod
    def _line_silent(self) -> None:
        """The line went quiet: flush a partial frame the decoder holds."""


class ModbusRtuEmulator(SerialEmulator):
    """Serves one bus's Modbus devices as RTU on a pty (default) or a pyserial URL.

    `line_timing=True` paces the line at the bus's baud rate (see `emulator_line`).
    """

    frame_error = mf.ModbusFrameError

    def __init__(
        self,
        cabinet: VirtualCabinet,
        bus: str,
        port: str | None = None,
        *,
        line_timing: bool = False,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        super().__init__(
            cabinet,
            bus,
            port,
            line_timing=line_timing,
            lock=lock,
            name=f"modbus-rtu-emulator-{bus}",
        )
        self.service = ModbusService(cabinet, bus, self.lock)
        self._decoder = mf.RtuDecoder(requests=True)

    def _line_silent(self) -> None:
        if self._decoder.pending:
            frames, rejected = self._decoder.flush()
            self.bad_frames += rejected
            for frame in frames:
                self._serve_frame(frame, time.monotonic())

    def _serve_frame(self, frame: mf.RtuFrame, first_byte_at: float) -> None:
        if frame.unit == 0:
            self.service.broadcast(frame.pdu)  # every device carries a write out; no answer
            return
        try:
            pdu = self.service.answer(frame.unit, frame.pdu)
        except UnknownUnit:
            return  # another device's address: a real bus stays silent
        if pdu is None:
            return
        reply = self._corrupt(mf.encode_rtu(frame.unit, pdu))
        self._send(reply, self._answer_at(first_byte_at, 2 + len(frame.pdu) + 1))
