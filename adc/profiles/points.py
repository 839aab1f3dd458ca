"""Device points: what a `DEVICE:POINT` reference means and which points each device kind has.

One table maps a device kind to its point families, so the profile checks, the drivers and the
virtual cabinet agree on what `lb1:lock.3` or `dio1:ai.0` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adc.profiles.models import LockboardCU16, ModbusDIO, ModbusLoadcell

AnyDevice = LockboardCU16 | ModbusDIO | ModbusLoadcell


class PointRole(StrEnum):
    OUTPUT = "output"  # a solenoid lock or a guide light
    INPUT = "input"  # a binary input: drawer/lid switch, presence sensor, lock feedback
    WEIGHT = "weight"  # a load-cell channel
    ANALOG = "analog"  # an analog input (temperature)


@dataclass(frozen=True, order=True)
class PointRef:
    device: str
    family: str
    index: int

    @classmethod
    def parse(cls, text: str) -> PointRef:
        """Parse `DEVICE:FAMILY.INDEX`; raises ValueError naming what is wrong."""
        device, sep, rest = text.partition(":")
        family, dot, index = rest.partition(".")
        if not sep or not dot or not device or not family or not index.isdigit():
            raise ValueError(f"{text!r} is not a point reference of the form DEVICE:FAMILY.INDEX")
        return cls(device, family, int(index))

    def __str__(self) -> str:
        return f"{self.device}:{self.family}.{self.index}"


def point_families(device: AnyDevice) -> dict[str, tuple[PointRole, int]]:
    """Point families of a device instance: family name → (role, how many)."""
    if isinstance(device, LockboardCU16):
        return {"lock": (PointRole.OUTPUT, 16), "input": (PointRole.INPUT, 16)}
    if isinstance(device, ModbusDIO):
        families = {
            "coil": (PointRole.OUTPUT, device.coils.count),
            "di": (PointRole.INPUT, device.discrete_inputs.count),
        }
        if device.analog_inputs is not None:
            families["ai"] = (PointRole.ANALOG, device.analog_inputs.count)
        return families
    return {"ch": (PointRole.WEIGHT, device.channels)}


def all_points(device_name: str, device: AnyDevice) -> list[tuple[PointRef, PointRole]]:
    """Every point a device instance offers, in a stable order."""
    return [
        (PointRef(device_name, family, index), role)
        for family, (role, count) in point_families(device).items()
        for index in range(count)
    ]


def role_of(ref: PointRef, devices: dict[str, AnyDevice]) -> PointRole:
    """The role of a point; raises ValueError saying why the point does not exist."""
    device = devices.get(ref.device)
    if device is None:
        raise ValueError(f"device {ref.device!r} is not declared under [devices]")
    families = point_families(device)
    if ref.family not in families:
        known = ", ".join(f"{f}.N" for f in families)
        raise ValueError(
            f"device {ref.device!r} ({device.kind}) has no point family "
            f"{ref.family!r}; it has {known}"
        )
    role, count = families[ref.family]
    if ref.index >= count:
        raise ValueError(
            f"{ref} is out of range: {ref.device} has {ref.family}.0 to {ref.family}.{count - 1}"
        )
    return role
