"""Our thin adapter around pymodbus's sync clients: the one file that knows pymodbus's API.

pymodbus renames between minor releases (`unit=` → `slave=` → `device_id=`, module moves), so every
call into it is here, and the driver speaks only this adapter's small vocabulary: read a block,
write a coil or a register, per device, with typed errors that name the device and the point.

What the adapter adds to pymodbus (see ../shared/protocols.md for why each matters on a real bus):
- **One outstanding request per bus.** RS-485 is half duplex and Modbus TCP gateways serialise
  anyway: a lock around every exchange, so threads sharing a driver cannot interleave frames.
- **Timeouts and retries, counted.** pymodbus is told `retries=0`; the adapter retries itself so it
  can count attempts, timeouts and errors per device (`DeviceHealth`).
- **A dead device does not take the bus down.** A device that used up its retries is marked offline
  and is then tried once per request (not `1 + retries` times), so a snapshot of a bus with one dead
  device costs one timeout for it, and the others are read as before. One answer marks it online.
- **Stale replies discarded.** pymodbus matches TCP transaction ids and drops bytes waiting before a
  serial send; the adapter also checks that an answer has the function and the size it asked for,
  so a late answer to an earlier request of the same device is never taken for this one's.
- **Reconnect with backoff.** The sync clients do not reconnect by themselves: after a lost
  connection the next request connects again; a failed connect waits an exponentially growing
  delay (real time, `backoff_s` … `backoff_max_s`) before the next try, and requests in between
  fail at once with `DeviceOffline` instead of hanging.
- **Exceptions become typed errors.** 0x0A/0x0B (gateway: target did not answer) → `DeviceOffline`;
  06 busy → `ModbusBusy`; others → `ModbusExceptionReply` (both `DeviceFault`s) with the code named.

Serial ports are pyserial URLs: pymodbus opens them with `serial.serial_for_url(...,
exclusive=True)`, so `/dev/ttyUSB0`, a pty path, `socket://host:port` and `loop://` all work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from adc.drivers.base import DeviceFault, DeviceHealth, DeviceOffline
from adc.drivers.modbus_plan import Table

_EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "device failure",
    0x05: "acknowledge",
    0x06: "device busy",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}


class ModbusExceptionReply(DeviceFault):
    """The device answered with a Modbus exception; `code` is the exception code."""

    def __init__(self, device: str, code: int, point: str | None = None, what: str = "") -> None:
        name = _EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(
            device, f"Modbus exception {code:02X} ({name})" + (f" on {what}" if what else ""), point
        )
        self.code = code
        self.attempt = 0  # 0: the first attempt; more: an earlier attempt's answer was lost


class ModbusBusy(ModbusExceptionReply):
    """Exception 06: the device refuses for now (a solenoid inside its re-arm window)."""


@dataclass(frozen=True)
class TcpEndpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SerialEndpoint:
    url: str  # a device path, a pty path or any pyserial URL
    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    def __str__(self) -> str:
        return f"{self.url}@{self.baudrate}"


Endpoint = TcpEndpoint | SerialEndpoint


class _Stale(Exception):
    """An answer that is not the answer to this request."""


def _quiet_pymodbus() -> None:
    """pymodbus logs every timeout at ERROR; the adapter reports them as typed errors and health
    counters instead, so unless someone configured pymodbus's logger, keep it to CRITICAL."""
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


class BusHealth:
    """What every bus client (Modbus, lock board) keeps per device: its health counters, marked
    online by any answer, and the verdict once every attempt of a request has failed."""

    bus: str
    clock: Callable[[], float]
    health: dict[str, DeviceHealth]

    def health_of(self, device: str) -> DeviceHealth:
        if device not in self.health:
            self.health[device] = DeviceHealth(device)
        return self.health[device]

    def _seen(self, health: DeviceHealth) -> None:
        health.online = True
        health.last_seen = self.clock()

    def _give_up(
        self,
        device: str,
        point: str | None,
        health: DeviceHealth,
        last: str,
        timed_out: bool,
        attempts: int,
    ) -> NoReturn:
        health.last_error = last
        if not timed_out:
            # Every attempt got an answer, none of them sound: the device is there, the line is
            # bad.
            raise DeviceFault(device, f"{last} in {attempts} attempt(s)", point)
        health.online = False
        raise DeviceOffline(device, f"{last} on bus {self.bus} after {attempts} attempt(s)", point)


class ModbusClient(BusHealth):
    """A Modbus master on one bus (TCP or RTU), shared by every device on that bus."""

    def __init__(
        self,
        bus: str,
        endpoint: Endpoint,
        *,
        timeout_s: float = 0.2,
        retries: int = 2,
        backoff_s: float = 0.2,
        backoff_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _quiet_pymodbus()
        from pymodbus.client import ModbusSerialClient, ModbusTcpClient
        from pymodbus.framer import FramerType

        self.bus = bus
        self.endpoint = endpoint
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.health: dict[str, DeviceHealth] = {}
        self.exchanges = 0  # frames sent on the wire (attempts), for the bench
        self._lock = threading.Lock()
        self._backoff = 0.0
        self._next_connect = 0.0
        self._received = 0  # bytes seen in the current attempt: a garbled answer is not a timeout
        self._client: Any
        if isinstance(endpoint, TcpEndpoint):
            self._client = ModbusTcpClient(
                endpoint.host,
                port=endpoint.port,
                timeout=timeout_s,
                retries=0,
                trace_packet=self._trace,
            )
        else:
            self._client = ModbusSerialClient(
                endpoint.url,
                framer=FramerType.RTU,
                baudrate=endpoint.baudrate,
                bytesize=endpoint.bytesize,
                parity=endpoint.parity,
                stopbits=endpoint.stopbits,
                timeout=timeout_s,
                retries=0,
                trace_packet=self._trace,
            )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._received = max(self._received, len(data))
        return data

    # ---------------------------------------------------------------------------------- requests
    def read(
        self,
        device: str,
        unit: int,
        table: Table,
        start: int,
        count: int,
        *,
        point: str | None = None,
    ) -> list[int]:
        """`count` values of `table` from `start` (bits as 0/1)."""
        client = self._client
        call = {
            Table.COILS: client.read_coils,
            Table.DISCRETE_INPUTS: client.read_discrete_inputs,
            Table.HOLDING: client.read_holding_registers,
            Table.INPUT: client.read_input_registers,
        }[table]
        function = table.function

        def exchange() -> list[int]:
            reply = call(start, count=count, device_id=unit)
            self._check(reply, function, device, point, f"{table} {start}+{count}")
            if table.is_bits:
                bits = list(reply.bits)
                if len(bits) < count or len(bits) >= count + 8:
                    raise _Stale(f"{len(bits)} bits for a read of {count}")
                return [int(b) for b in bits[:count]]
            registers = list(reply.registers)
            if len(registers) != count:
                raise _Stale(f"{len(registers)} registers for a read of {count}")
            return registers

        return self._execute(device, point, exchange)

    def write_coil(
        self, device: str, unit: int, address: int, value: bool, *, point: str | None = None
    ) -> None:
        def exchange() -> None:
            reply = self._client.write_coil(address, bool(value), device_id=unit)
            self._check(reply, 5, device, point, f"coil {address}")
            if getattr(reply, "address", address) != address:
                raise _Stale(f"echo of coil {reply.address}, not {address}")

        self._execute(device, point, exchange)

    def write_coils(
        self,
        device: str,
        unit: int,
        address: int,
        values: list[bool],
        *,
        point: str | None = None,
    ) -> None:
        """Write-multiple-coils (function 15): `values` from `address`, in one request."""

        def exchange() -> None:
            reply = self._client.write_coils(address, [bool(v) for v in values], device_id=unit)
            self._check(reply, 15, device, point, f"coils {address}+{len(values)}")
            got = (getattr(reply, "address", address), getattr(reply, "count", len(values)))
            if got != (address, len(values)):
                raise _Stale(f"echo of coils {got[0]}+{got[1]}, not {address}+{len(values)}")

        self._execute(device, point, exchange)

    def write_register(
        self, device: str, unit: int, address: int, value: int, *, point: str | None = None
    ) -> None:
        def exchange() -> None:
            reply = self._client.write_register(address, value, device_id=unit)
            self._check(reply, 6, device, point, f"holding register {address}")
            if getattr(reply, "address", address) != address:
                raise _Stale(f"echo of register {reply.address}, not {address}")

        self._execute(device, point, exchange)

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def __repr__(self) -> str:
        return f"<ModbusClient {self.bus} {self.endpoint}>"

    # ---------------------------------------------------------------------------------- plumbing
    @staticmethod
    def _check(reply: Any, function: int, device: str, point: str | None, what: str) -> None:
        if reply.isError():
            code = getattr(reply, "exception_code", 0)
            if code in (0x0A, 0x0B):
                raise DeviceOffline(device, f"gateway answered exception {code:02X}", point)
            cls = ModbusBusy if code == 0x06 else ModbusExceptionReply
            raise cls(device, code, point, what)
        if reply.function_code != function:
            raise _Stale(f"function {reply.function_code} answered for {function}")

    def _execute(self, device: str, point: str | None, exchange: Callable[[], Any]) -> Any:
        from pymodbus.exceptions import ConnectionException, ModbusException

        health = self.health_of(device)
        attempts = 1 + (self.retries if health.online else 0)
        with self._lock:
            health.requests += 1
            last = "no answer"
            timed_out = False
            for attempt in range(attempts):
                if attempt:
                    health.retries += 1
                try:
                    self._connect(device, point)
                except DeviceOffline as err:
                    health.online = False
                    health.last_error = str(err)
                    raise
                self.exchanges += 1
                self._received = 0
                try:
                    result = exchange()
                except (ModbusExceptionReply, DeviceOffline) as err:
                    # An exception reply is an answer: the device is there. `attempt` tells the
                    # caller whether an earlier attempt may have been carried out (its answer lost).
                    if isinstance(err, ModbusExceptionReply):
                        err.attempt = attempt
                        self._seen(health)
                    health.errors += 1
                    health.last_error = str(err)
                    if isinstance(err, DeviceOffline):
                        health.online = False
                    raise
                except _Stale as err:
                    health.errors += 1
                    last = f"stale or malformed answer ({err})"
                    continue
                except ConnectionException as err:
                    self._client.close()
                    last = f"connection lost ({err})"
                    timed_out = True
                    continue
                except ModbusException as err:
                    if self._received and isinstance(self.endpoint, TcpEndpoint):
                        # TCP has no CRC, and its framing is the stream's: what arrived was a
                        # late answer to an earlier attempt (wrong transaction), so this attempt
                        # timed out.
                        health.timeouts += 1
                        last = (
                            "no answer within the timeout (a late answer to an earlier "
                            f"request was discarded; {type(err).__name__})"
                        )
                        timed_out = True
                    elif self._received:
                        health.errors += 1
                        last = (
                            f"corrupted answer: bad CRC or malformed frame ({type(err).__name__})"
                        )
                    else:
                        health.timeouts += 1
                        last = f"no answer within the timeout ({type(err).__name__})"
                        timed_out = True
                    continue
                except OSError as err:
                    self._client.close()
                    last = f"I/O error ({err})"
                    timed_out = True
                    continue
                self._seen(health)
                return result
            self._give_up(device, point, health, last, timed_out, attempts)

    def _connect(self, device: str, point: str | None) -> None:
        if self._client.connected:
            return
        now = time.monotonic()
        if now < self._next_connect:
            raise DeviceOffline(
                device,
                f"bus {self.bus} ({self.endpoint}) is not connected; "
                f"next attempt in {self._next_connect - now:.1f} s",
                point,
            )
        if self._client.connect():
            self._backoff = 0.0
            return
        self._backoff = min(max(2 * self._backoff, self.backoff_s), self.backoff_max_s)
        self._next_connect = now + self._backoff
        raise DeviceOffline(device, f"cannot connect to bus {self.bus} ({self.endpoint})", point)
