"""The Modbus driver: the driver port over Modbus TCP and RTU (pymodbus, through `modbus_client`).

URIs (adc/drivers/registry.py):
    modbus-tcp://HOST:PORT            every Modbus device of the profile through one TCP gateway
    modbus-rtu://PORT?baudrate=19200  every Modbus device of the profile on one serial line; PORT is
                                      a device path, a pty path or a pyserial URL (socket://, loop://)
    profile:                          every bus as the profile names it (adc/drivers/buses.py)
Query parameters: baudrate, bytesize, parity, stopbits (RTU), timeout_ms, retries, profile (a shipped
name or path, when no profile is passed in).

Reads follow the block plan (`modbus_plan`): a snapshot takes the fewest requests the limits allow.
Single reads (`input_active`, `weight` ...) read just what they need. Devices keep their own rules,
as the register map in docs/wire-protocols.md says: a coil the layout uses as a lock is a pulse
output in the device (writing 1 starts a pulse of `solenoid.pulse_ms`, the device clears it), and a
write inside the re-arm window is answered with exception 06, which becomes `RearmRefused`.
With `coil_mode = "latched"` (a plain output module) the driver writes 1, then 0 after
`pulse_ms` and reads the coil back (`adc/drivers/latched.py`: a timer on the real clock, else the
next call into the driver). The driver keeps the re-arm window itself on every module.
The driver never sleeps: a re-arming lock is refused, not waited for.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence

from adc.drivers.base import (
    DeviceFault,
    DeviceHealth,
    DeviceOffline,
    Quality,
    RearmRefused,
    TemperatureReading,
    WeightReading,
)
from adc.drivers.buses import Clock, WireDriver, clock_option, parse_query
from adc.drivers.cabinet_points import PointInfo, classify_points
from adc.drivers.latched import LatchedOffWrites
from adc.drivers.modbus_client import (
    ModbusBusy,
    ModbusClient,
    ModbusExceptionReply,
    SerialEndpoint,
    TcpEndpoint,
)
from adc.drivers.modbus_plan import ReadBlock, Table, plan_reads, point_items
from adc.drivers.unlock import account_after_failed_write, coil_span, pulse_each
from adc.errors import BadInput
from adc.profiles.models import (
    LockboardBus,
    ModbusDIO,
    ModbusLoadcell,
    ModbusRtuBus,
    ModbusTcpBus,
    Polarity,
    Profile,
)
from adc.profiles.points import PointRef

_QUALITY = {0: Quality.OK, 1: Quality.UNSTABLE, 2: Quality.OVERLOAD, 3: Quality.FAULT}


def decode_float32(words: list[int], word_order: str) -> float:
    high, low = (words[0], words[1]) if word_order == "big" else (words[1], words[0])
    return float(struct.unpack(">f", struct.pack(">HH", high, low))[0])


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def weight_reading(words: list[int], status: int, word_order: str) -> WeightReading:
    """A load-cell channel's reading from its two float32 words and its status register."""
    return WeightReading(decode_float32(words, word_order), _QUALITY.get(status, Quality.FAULT))


def temperature_reading(raw: int, model: ModbusDIO) -> TemperatureReading:
    """A DIO module's analog input register (signed where the profile says so), scaled to °C."""
    counts = _signed16(raw) if model.analog_signed else raw
    return TemperatureReading(counts * model.analog_scale)


class ModbusPart:
    """The Modbus devices of some buses: their I/O for a `WireDriver`."""

    has_feedback = False  # a coil lock has no feedback: the WireDriver infers engagement

    def __init__(
        self,
        profile: Profile,
        clients: dict[str, ModbusClient],
        devices: set[str],
        clock: Clock = time.monotonic,
    ) -> None:
        self.profile = profile
        self.clients = clients
        self.devices = {
            d for d in devices if isinstance(profile.devices[d], ModbusDIO | ModbusLoadcell)
        }
        self.clock = clock
        plan = plan_reads(profile)
        self.plan: list[ReadBlock] = [
            block for blocks in plan.values() for block in blocks if block.device in self.devices
        ]
        self._last_pulse: dict[str, float] = {}
        self._points = classify_points(profile)
        self.latched = LatchedOffWrites(
            clock,
            lambda info: self.write_output(info, False),
            self.read_output,
            lambda device: self._client(device).health_of(device),
            real_time=clock is time.monotonic,
        )

    # -------------------------------------------------------------------------------- helpers
    def _model(self, device: str) -> ModbusDIO | ModbusLoadcell:
        model = self.profile.devices[device]
        assert isinstance(model, ModbusDIO | ModbusLoadcell)
        return model

    def _dio(self, info: PointInfo) -> ModbusDIO:
        model = self._model(info.ref.device)
        assert isinstance(model, ModbusDIO)
        return model

    def _client(self, device: str) -> ModbusClient:
        return self.clients[self.profile.devices[device].bus]

    def _read(self, info: PointInfo, table: Table, start: int, count: int) -> list[int]:
        device = info.ref.device
        return self._client(device).read(
            device, self._model(device).address, table, start, count, point=info.text
        )

    # ---------------------------------------------------------------------------------- ports
    def health(self) -> dict[str, DeviceHealth]:
        out: dict[str, DeviceHealth] = {}
        for client in set(self.clients.values()):
            out.update({k: v for k, v in client.health.items() if k in self.devices})
        return out

    def _is_latched(self, info: PointInfo) -> bool:
        return self._dio(info).coil_mode == "latched"

    def service(self) -> None:
        """Deferred work due now: latched coils whose pulse is over are switched off."""
        self.latched.service()

    def pulse(self, info: PointInfo) -> None:
        model = self._dio(info)
        device = info.ref.device
        address = model.coils.start + info.ref.index
        self.check_rearm(info)  # the driver's own limit, before anything goes on the wire
        if self._is_latched(info):
            self.latched.check(info)
        now = self.clock()
        rearm_ms = max(model.solenoid.rearm_ms, model.solenoid.pulse_ms)
        last = self._last_pulse.get(info.text)
        try:
            self._client(device).write_coil(device, model.address, address, True, point=info.text)
        except ModbusBusy as busy:
            ours = last is not None and (now - last) * 1000 < rearm_ms
            if busy.attempt > 0 and not ours:
                # An earlier attempt reached the device (its answer was lost): that pulse is on.
                self._last_pulse[info.text] = now
                return
            remaining = rearm_ms - (now - last) * 1000 if ours and last is not None else rearm_ms
            raise RearmRefused(info.text, max(remaining, 1.0)) from None
        self._last_pulse[info.text] = now
        if self._is_latched(info):
            self.latched.started(info, model.solenoid.pulse_ms / 1000)

    def lock_feedback(self, info: PointInfo) -> bool | None:
        return None

    # --------------------------------------------------------------------- unlock_together
    def _rearm_ms(self, info: PointInfo) -> float:
        solenoid = self._dio(info).solenoid
        return max(solenoid.rearm_ms, solenoid.pulse_ms)

    def check_rearm(self, info: PointInfo) -> None:
        """RearmRefused inside the re-arm window of our own last pulse of the lock (no I/O)."""
        last = self._last_pulse.get(info.text)
        if last is None:
            return
        left = self._rearm_ms(info) - (self.clock() - last) * 1000
        if left > 0:
            raise RearmRefused(info.text, left)

    def _lock_coils(self, group: Sequence[PointInfo]) -> tuple[int, list[int]]:
        """(first index, coil bits from it to the group's last lock), in as few reads as the
        device's read limit allows (one for any drawer and its pocket)."""
        model = self._dio(group[0])
        first = min(info.ref.index for info in group)
        count = max(info.ref.index for info in group) - first + 1
        bits: list[int] = []
        for offset in range(0, count, model.max_read_bits):
            n = min(model.max_read_bits, count - offset)
            bits += self._read(group[0], Table.COILS, model.coils.start + first + offset, n)
        return first, bits

    def probe(self, group: Sequence[PointInfo]) -> None:
        """One read of the group's coils: the device must answer, and no lock coil of ours may be
        on (a pulse another master started: the device would refuse ours)."""
        first, bits = self._lock_coils(group)
        for info in group:
            if bits[info.ref.index - first]:
                raise RearmRefused(info.text, self._rearm_ms(info))

    def pulse_group(self, group: Sequence[PointInfo]) -> None:
        """The locks of one DIO device: one write-multiple-coils of the run from the first to the
        last where every coil between is a lock (0 is written to the others between: a pulse
        output ignores it), else back-to-back single writes. After a failed write one read of
        the same coils says which pulses went out."""
        span = coil_span(group, self._points)
        if span is None or self._is_latched(group[0]):
            # latched coils: one by one (a 0 written between would end another pulse early)
            pulse_each(group, self.pulse)
            return
        first, last = span
        model = self._dio(group[0])
        device = group[0].ref.device
        ours = {info.ref.index for info in group}
        values = [index in ours for index in range(first, last + 1)]
        now = self.clock()
        try:
            self._client(device).write_coils(
                device, model.address, model.coils.start + first, values, point=group[0].text
            )
        except (ModbusExceptionReply, DeviceOffline, DeviceFault) as err:
            busy_ms = self._rearm_ms(group[0]) if isinstance(err, ModbusBusy) else None
            cause = RearmRefused(group[0].text, busy_ms) if busy_ms is not None else err
            released, failed = account_after_failed_write(
                group, first, cause, lambda: self._lock_coils(group)[1], busy_ms
            )
            for info in released:
                self._last_pulse[info.text] = now
            if failed is not None:
                raise failed from None
            return
        for info in group:
            self._last_pulse[info.text] = now

    def read_output(self, info: PointInfo) -> bool:
        model = self._dio(info)
        return bool(self._read(info, Table.COILS, model.coils.start + info.ref.index, 1)[0])

    def write_output(self, info: PointInfo, on: bool) -> None:
        model = self._dio(info)
        device = info.ref.device
        self._client(device).write_coil(
            device, model.address, model.coils.start + info.ref.index, on, point=info.text
        )

    def read_input(self, info: PointInfo) -> bool:
        model = self._dio(info)
        address = model.discrete_inputs.start + info.ref.index
        bit = bool(self._read(info, Table.DISCRETE_INPUTS, address, 1)[0])
        return bit != (model.input_polarity is Polarity.ACTIVE_LOW)

    def read_weight(self, info: PointInfo) -> WeightReading:
        model = self._model(info.ref.device)
        assert isinstance(model, ModbusLoadcell)
        i = info.ref.index
        words = self._read(info, Table.INPUT, model.weight_start + 2 * i, 2)
        status = self._read(info, Table.INPUT, model.status_start + i, 1)
        return weight_reading(words, status[0], model.word_order)

    def read_temperature(self, info: PointInfo) -> TemperatureReading:
        model = self._dio(info)
        assert model.analog_inputs is not None
        raw = self._read(info, Table.INPUT, model.analog_inputs.start + info.ref.index, 1)[0]
        return temperature_reading(raw, model)

    def read_all(self, points: set[str]) -> dict[str, object]:
        """Run the block plan; a device that times out is not asked again in this snapshot."""
        raw: dict[tuple[str, Table], dict[int, int]] = {}
        dead: set[str] = set()
        for block in self.plan:
            if block.device in dead:
                continue
            client = self._client(block.device)
            try:
                values = client.read(
                    block.device, block.unit, block.table, block.start, block.count
                )
            except DeviceOffline:
                dead.add(block.device)
                continue
            except DeviceFault:
                continue
            raw.setdefault((block.device, block.table), {}).update(
                zip(range(block.start, block.end), values, strict=True)
            )
        out: dict[str, object] = {}
        for text in points:
            value = self._decode(PointRef.parse(text), raw)
            if value is not None:
                out[text] = value
        return out

    def _decode(self, ref: PointRef, raw: dict[tuple[str, Table], dict[int, int]]) -> object:
        model = self._model(ref.device)
        words: list[int] = []
        for table, item in point_items(model, ref):
            got = raw.get((ref.device, table), {})
            for address in range(item.address, item.end):
                if address not in got:
                    return None
                words.append(got[address])
        if isinstance(model, ModbusLoadcell):
            return weight_reading(words[:2], words[2], model.word_order)
        if ref.family == "di":
            return bool(words[0]) != (model.input_polarity is Polarity.ACTIVE_LOW)
        if ref.family == "ai":
            return temperature_reading(words[0], model)
        return bool(words[0])

    def close(self) -> None:
        self.latched.close()
        for client in set(self.clients.values()):
            client.close()


# --------------------------------------------------------------------------------- opening
def modbus_client(
    name: str,
    bus: ModbusRtuBus | ModbusTcpBus,
    port: str | None = None,
    timeout_s: float | None = None,
    clock: Clock = time.monotonic,
) -> ModbusClient:
    """A client for one bus of a profile. `port` moves the bus: `tcp://HOST:PORT` reaches it
    through a Modbus TCP gateway (any bus), `HOST:PORT` too for a TCP bus; anything else is a
    serial port or pyserial URL spoken to in RTU (for a TCP bus too: the same devices on a line)."""
    endpoint: TcpEndpoint | SerialEndpoint
    serial = (19200, 8, "N", 1)
    if isinstance(bus, ModbusRtuBus):
        serial = (bus.baudrate, bus.bytesize, bus.parity, bus.stopbits)
    if port and port.startswith("tcp://"):
        endpoint = _tcp_endpoint(port.removeprefix("tcp://"))
    elif isinstance(bus, ModbusTcpBus) and (port is None or _looks_like_host_port(port)):
        endpoint = _tcp_endpoint(port) if port else TcpEndpoint(bus.host, bus.port)
    else:
        endpoint = SerialEndpoint(port or bus.port, *serial)  # type: ignore[union-attr]
    return ModbusClient(
        name,
        endpoint,
        timeout_s=timeout_s if timeout_s is not None else bus.timeout_ms / 1000,
        retries=bus.retries,
        clock=clock,
    )


def _looks_like_host_port(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and "/" not in text)


def _tcp_endpoint(text: str) -> TcpEndpoint:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"{text!r} is not HOST:PORT")
    return TcpEndpoint(host.strip("[]"), int(port))


_QUERY_KEYS = {"baudrate", "bytesize", "parity", "stopbits", "timeout_ms", "retries", "profile"}


def _split_target(target: str) -> tuple[str, dict[str, str]]:
    """Our query parameters come after the last '?'; a pyserial URL may carry its own before."""
    base, sep, _ = target.rpartition("?")
    if sep:
        _, params = parse_query(target[len(base) :])
        if set(params) <= _QUERY_KEYS:
            return base, params
    return target, {}


def _int(params: dict[str, str], key: str, default: int) -> int:
    text = params.get(key)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadInput(f"{key} must be an integer, not {text!r}") from None


def _open_target(
    scheme: str, target: str, profile: Profile | None, options: dict[str, object], needs: str
) -> tuple[str, dict[str, str], Profile, Clock, object]:
    """(base, query parameters, profile, clock, timeout_s option) of a wire backend's target;
    `needs` says what an empty base lacks."""
    base, params = _split_target(target)
    opts = dict(options)
    clock = clock_option(opts)
    timeout_s = opts.pop("timeout_s", None)
    if opts:
        raise BadInput(f"the {scheme} backend has no option {', '.join(sorted(opts))}")
    if "profile" in params:
        from adc.profiles import load_profile, resolve_profile_path

        profile = load_profile(resolve_profile_path(params["profile"]))
    if profile is None:
        raise BadInput(f"{scheme}: needs a profile (pass one, or add ?profile=NAME-OR-PATH)")
    if not base:
        raise BadInput(f"{scheme}: needs {needs}")
    return base, params, profile, clock, timeout_s


def _timeout_s(
    params: dict[str, str],
    timeout_s: object,
    first: ModbusRtuBus | ModbusTcpBus | LockboardBus | None,
    default_ms: int,
) -> float:
    """A backend client's reply timeout: the option, else the query, else the profile's first bus
    of the kind, else the default."""
    if timeout_s is not None:
        return float(timeout_s)  # type: ignore[arg-type]
    return _int(params, "timeout_ms", first.timeout_ms if first else default_ms) / 1000


def _open(
    scheme: str,
    target: str,
    profile: Profile | None,
    options: dict[str, object],
    make_endpoint: Callable[[str, dict[str, str]], TcpEndpoint | SerialEndpoint],
) -> WireDriver:
    base, params, profile, clock, timeout_s = _open_target(
        scheme, target, profile, options, f"an address: {scheme}://..."
    )
    endpoint = make_endpoint(base, params)
    buses = {n: b for n, b in profile.buses.items() if isinstance(b, ModbusRtuBus | ModbusTcpBus)}
    first = next(iter(buses.values()), None)
    client = ModbusClient(
        f"{scheme}://{base}",
        endpoint,
        timeout_s=_timeout_s(params, timeout_s, first, 200),
        retries=_int(params, "retries", first.retries if first else 2),
        clock=clock,
    )
    devices = {d for d, m in profile.devices.items() if m.bus in buses}
    part = ModbusPart(profile, dict.fromkeys(buses, client), devices, clock)
    return WireDriver(profile, [part], clock)


def open_tcp_backend(target: str, profile: Profile | None = None, **options: object) -> WireDriver:
    """Registry factory for `modbus-tcp://HOST:PORT`: every Modbus device through one gateway."""
    return _open("modbus-tcp", target, profile, options, lambda base, _: _tcp_endpoint(base))


def open_rtu_backend(target: str, profile: Profile | None = None, **options: object) -> WireDriver:
    """Registry factory for `modbus-rtu://PORT?baudrate=N`: every Modbus device on one line."""

    def endpoint(base: str, params: dict[str, str]) -> SerialEndpoint:
        return SerialEndpoint(
            base,
            _int(params, "baudrate", 19200),
            _int(params, "bytesize", 8),
            params.get("parity", "N").upper(),
            _int(params, "stopbits", 1),
        )

    return _open("modbus-rtu", target, profile, options, endpoint)
