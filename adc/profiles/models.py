"""Pydantic models of a hardware profile: buses, devices and layout, kept apart.

A profile is data (as in pyvisa-sim): what the cabinet is made of and how it is wired. Device *kinds*
fix which points a device has; device *instances* say where it sits on which bus; the *layout* says
which points lock, sense and light each drawer and pocket. Structural rules live here; rules that look
across sections (a pocket's lock exists and is an output, no output is used twice ...) live in
`checks.py`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPEC_MAJOR = 1
SPEC_VERSION = "1.0"

# Modbus application-protocol limits (see docs/profile-reference.md).
MODBUS_MAX_READ_REGISTERS = 125
MODBUS_MAX_READ_BITS = 2000

Identifier = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$",
        description="A short name: a letter, then letters, digits, '_', '.', '-' (32 at most).",
    ),
]
PointRefStr = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,31}:[a-z]+\.[0-9]{1,4}$",
        description="A device point, DEVICE:POINT, for example 'dio1:coil.3' or 'lb1:input.15'.",
        examples=["dio1:coil.0", "lb1:lock.3", "lc1:ch.2", "dio1:ai.0"],
    ),
]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a profile must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------- buses
class Transport(StrEnum):
    MODBUS_RTU = "modbus-rtu"
    MODBUS_TCP = "modbus-tcp"
    LOCKBOARD = "lockboard"


class _BusBase(_Strict):
    timeout_ms: int = Field(200, ge=5, le=60_000, description="Reply timeout per request.")
    retries: int = Field(2, ge=0, le=10, description="Retries after a timeout before giving up.")
    description: str = ""


class _SerialBus(_BusBase):
    port: str = Field(
        ...,
        min_length=1,
        description="A pyserial port or URL: /dev/ttyUSB0, COM3, loop://, socket://host:port.",
    )
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class ModbusRtuBus(_SerialBus):
    transport: Literal["modbus-rtu"]


class LockboardBus(_SerialBus):
    transport: Literal["lockboard"]
    protocol: Literal["cu16", "cu48"] = Field(
        "cu16",
        description="Lock-board family on this line: 'cu16' (16 locks, STX ADDR CMD ETX SUM "
        "frames); 'cu48' is recognised but not implemented (its boards use other frames).",
    )


class ModbusTcpBus(_BusBase):
    transport: Literal["modbus-tcp"]
    host: str = Field(
        ..., min_length=1, description="Host name or address of the Modbus TCP server."
    )
    port: int = Field(502, ge=1, le=65535)


Bus = Annotated[ModbusRtuBus | ModbusTcpBus | LockboardBus, Field(discriminator="transport")]


# ------------------------------------------------------------------------------------------- devices
class DeviceKind(StrEnum):
    LOCKBOARD_CU16 = "lockboard-cu16"
    MODBUS_DIO = "modbus-dio"
    MODBUS_LOADCELL = "modbus-loadcell"


class Polarity(StrEnum):
    """How an input bit maps to 'active' (closed, locked, item present)."""

    ACTIVE_HIGH = "active-high"
    ACTIVE_LOW = "active-low"


class Solenoid(_Strict):
    """Solenoid drive limits: a lock is pulsed, never held, and must cool down before the next pulse."""

    pulse_ms: int = Field(500, ge=20, le=5_000, description="How long one unlock pulse energises.")
    rearm_ms: int = Field(
        2_000, ge=0, le=60_000, description="Minimum time from one pulse's start to the next."
    )

    @model_validator(mode="after")
    def _rearm_covers_pulse(self) -> Solenoid:
        if self.rearm_ms and self.rearm_ms < self.pulse_ms:
            raise ValueError("rearm_ms must be 0 or at least pulse_ms")
        return self


class _DeviceBase(_Strict):
    bus: Identifier = Field(..., description="Name of the bus (a key of [buses]) the device is on.")
    description: str = ""


class LockboardCU16(_DeviceBase):
    """CU16-style RS-485 lock board: 16 solenoid outputs `lock.0..15`, 16 inputs `input.0..15`."""

    kind: Literal["lockboard-cu16"]
    address: int = Field(..., ge=0, le=15, description="Board number (DIP switches), 0–15.")
    input_polarity: Polarity = Polarity.ACTIVE_HIGH
    lock_polarity: Polarity = Field(
        Polarity.ACTIVE_HIGH, description="How a lock-feedback bit maps to 'locked'."
    )
    solenoid: Solenoid = Solenoid()


class RegisterBlock(_Strict):
    """A contiguous run of one Modbus table: protocol address of the first item and how many."""

    start: int = Field(0, ge=0, le=65535)
    count: int = Field(..., ge=1, le=65536)

    @model_validator(mode="after")
    def _fits(self) -> RegisterBlock:
        if self.start + self.count > 65536:
            raise ValueError(f"block {self.start}+{self.count} runs past address 65535")
        return self

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.start + self.count


class _ModbusDeviceBase(_DeviceBase):
    address: int = Field(..., ge=1, le=247, description="Modbus unit id (device id), 1–247.")
    max_read_registers: int = Field(
        MODBUS_MAX_READ_REGISTERS,
        ge=1,
        le=MODBUS_MAX_READ_REGISTERS,
        description="Most registers this device answers in one read (some answer only 32).",
    )
    max_read_bits: int = Field(
        MODBUS_MAX_READ_BITS,
        ge=1,
        le=MODBUS_MAX_READ_BITS,
        description="Most coils or discrete inputs this device answers in one read.",
    )


class ModbusDIO(_ModbusDeviceBase):
    """Digital I/O module: coils `coil.N` (locks, lights), discrete inputs `di.N` (switches), and
    optional input registers `ai.N` (analog inputs, e.g. temperature in 0.1 °C)."""

    kind: Literal["modbus-dio"]
    coils: RegisterBlock = RegisterBlock(start=0, count=8)
    discrete_inputs: RegisterBlock = RegisterBlock(start=0, count=8)
    analog_inputs: RegisterBlock | None = None
    analog_scale: float = Field(0.1, gt=0, description="Engineering units per count of `ai.N`.")
    analog_signed: bool = True
    input_polarity: Polarity = Polarity.ACTIVE_HIGH
    solenoid: Solenoid = Solenoid()
    coil_mode: Literal["pulse-output", "latched"] = Field(
        "pulse-output",
        description="How a lock coil behaves: 'pulse-output' (writing 1 starts a pulse the module "
        "times itself) or 'latched' (a plain output holding what is written: the driver writes 1, "
        "then 0 after solenoid.pulse_ms, and reads the coil back).",
    )


class ModbusLoadcell(_ModbusDeviceBase):
    """Weighing module: per channel `ch.N` a float32 gross weight in grams (two input registers) and
    a status register; a holding command register per channel (zero, tare, save)."""

    kind: Literal["modbus-loadcell"]
    channels: int = Field(4, ge=1, le=32)
    weight_start: int = Field(
        0, ge=0, le=65535, description="Input register of channel 0's weight."
    )
    status_start: int = Field(
        100, ge=0, le=65535, description="Input register of channel 0's status word."
    )
    command_start: int = Field(
        0, ge=0, le=65535, description="Holding register of channel 0's command word."
    )
    word_order: Literal["big", "little"] = "big"
    capacity_g: float = Field(5_000.0, gt=0, description="Full scale of each channel.")

    def weight_block(self) -> RegisterBlock:
        return RegisterBlock(start=self.weight_start, count=2 * self.channels)

    def status_block(self) -> RegisterBlock:
        return RegisterBlock(start=self.status_start, count=self.channels)

    def command_block(self) -> RegisterBlock:
        return RegisterBlock(start=self.command_start, count=self.channels)


Device = Annotated[LockboardCU16 | ModbusDIO | ModbusLoadcell, Field(discriminator="kind")]


# -------------------------------------------------------------------------------------------- layout
class PocketKind(StrEnum):
    MATRIX = "matrix"
    LIDDED = "lidded"
    CUBIE = "cubie"
    FRIDGE = "fridge"
    RETURN_BIN = "return-bin"


class SensorKind(StrEnum):
    WEIGHT = "weight"
    PRESENCE = "presence"
    NONE = "none"


class Sensor(_Strict):
    kind: SensorKind = SensorKind.NONE
    point: PointRefStr | None = Field(None, description="Load-cell channel or presence input.")

    @model_validator(mode="after")
    def _point_matches_kind(self) -> Sensor:
        if self.kind is SensorKind.NONE and self.point is not None:
            raise ValueError("a sensor of kind 'none' takes no point")
        if self.kind is not SensorKind.NONE and self.point is None:
            raise ValueError(f"a sensor of kind '{self.kind}' needs a point")
        return self


class Pocket(_Strict):
    id: Identifier
    kind: PocketKind
    sensor: Sensor = Sensor()
    lock: PointRefStr | None = Field(None, description="Own lock (cubie, fridge, return-bin).")
    switch: PointRefStr | None = Field(None, description="Own door switch (cubie, fridge, bin).")
    lid_lock: PointRefStr | None = Field(None, description="Lid lock of a lidded pocket.")
    lid_switch: PointRefStr | None = Field(None, description="Lid switch of a lidded pocket.")
    light: PointRefStr | None = Field(None, description="Guide light output.")
    temperature: PointRefStr | None = Field(None, description="Temperature input (fridge).")
    capacity: int = Field(
        50, ge=1, le=100_000, description="Most units the pocket physically holds."
    )

    @model_validator(mode="after")
    def _points_match_kind(self) -> Pocket:
        kind = self.kind
        problems: list[str] = []
        if kind is PocketKind.LIDDED:
            if not self.lid_lock or not self.lid_switch:
                problems.append("a lidded pocket needs lid_lock and lid_switch")
        elif self.lid_lock or self.lid_switch:
            problems.append(f"only lidded pockets have a lid (this one is {kind})")
        if kind in (PocketKind.CUBIE, PocketKind.FRIDGE, PocketKind.RETURN_BIN) and not self.lock:
            problems.append(f"a {kind} pocket needs its own lock")
        if kind in (PocketKind.MATRIX, PocketKind.LIDDED) and (self.lock or self.switch):
            problems.append(f"a {kind} pocket has no lock or switch of its own")
        if kind is PocketKind.FRIDGE and not self.temperature:
            problems.append("a fridge needs a temperature point")
        if kind is not PocketKind.FRIDGE and self.temperature:
            problems.append("only a fridge has a temperature point")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Drawer(_Strict):
    id: Identifier
    lock: PointRefStr = Field(..., description="The drawer's solenoid lock (an output point).")
    switch: PointRefStr = Field(..., description="Drawer-closed switch (an input point).")
    light: PointRefStr | None = None
    pockets: list[Pocket] = Field(..., min_length=1)


class Layout(_Strict):
    drawers: list[Drawer] = Field(..., min_length=1)


class SimSettings(_Strict):
    """Parameters of the virtual cabinet only; real hardware ignores them."""

    tare_g: float = Field(150.0, ge=0, description="Empty-pocket weight on each load cell.")
    noise_g: float = Field(0.2, ge=0, description="Standard deviation of load-cell noise.")
    fridge_temperature_c: float = Field(5.0, ge=-40, le=40)
    fridge_drift_c_per_h: float = Field(0.0, ge=-10, le=10)
    actuation_ms: int = Field(40, ge=0, le=5_000, description="Latch release after a pulse.")
    initial_units: int = Field(0, ge=0, description="Units placed in every sensed pocket at start.")
    unit_weight_g: float = Field(
        2.0, gt=0, le=10_000, description="Weight of each of the initial units."
    )
    settle_ms: int = Field(
        300, ge=0, le=60_000, description="A load cell reads UNSTABLE this long after a change."
    )


# ----------------------------------------------------------------------------------------- profile
_SPEC_RE = re.compile(r"^(\d+)\.(\d+)$")


class Profile(_Strict):
    """A whole cabinet: what it is made of (buses, devices) and how it is laid out."""

    spec: str = Field(..., description=f"Profile format version, '{SPEC_VERSION}'.")
    name: Identifier
    description: str = ""
    extends: str | None = Field(
        None, description="Path of a profile this one inherits from (relative to this file)."
    )
    buses: dict[Identifier, Bus] = Field(..., min_length=1)
    devices: dict[Identifier, Device] = Field(..., min_length=1)
    layout: Layout
    sim: SimSettings = SimSettings()

    @field_validator("spec")
    @classmethod
    def _known_spec(cls, value: str) -> str:
        match = _SPEC_RE.match(value)
        if not match:
            raise ValueError(f"spec must look like '{SPEC_VERSION}', got {value!r}")
        if int(match.group(1)) != SPEC_MAJOR:
            raise ValueError(
                f"spec {value} is not supported: this adc reads spec {SPEC_MAJOR}.x profiles"
            )
        return value

    # Convenience views used by drivers, the virtual cabinet and the controller.
    def pockets(self) -> list[tuple[Drawer, Pocket]]:
        return [(drawer, pocket) for drawer in self.layout.drawers for pocket in drawer.pockets]

    def drawer(self, drawer_id: str) -> Drawer:
        for drawer in self.layout.drawers:
            if drawer.id == drawer_id:
                return drawer
        raise KeyError(drawer_id)

    def pocket(self, pocket_id: str) -> tuple[Drawer, Pocket]:
        for drawer, pocket in self.pockets():
            if pocket.id == pocket_id:
                return drawer, pocket
        raise KeyError(pocket_id)

    def devices_on(self, bus: str) -> dict[str, LockboardCU16 | ModbusDIO | ModbusLoadcell]:
        return {name: dev for name, dev in self.devices.items() if dev.bus == bus}
