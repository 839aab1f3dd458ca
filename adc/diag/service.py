"""Service functions that are not part of the driver port: load-cell zero / tare / save commands.

The driver port (adc/drivers/base.py) is what the controller may ask of hardware; writing a
weighing module's command register is a service engineer's business, so it is reached here, on
the backend's own service surface: the Modbus client of the bus part that owns the module (wire
backends), or the virtual module's register view (the in-process backend). Either way it is the
same register write the emulators and real modules understand (`command_start + channel`:
1 zero, 2 tare, 3 save), and errors come back as the port's typed errors.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Protocol

from adc.drivers.base import CabinetDriver, DeviceFault, DeviceOffline, DriverError
from adc.profiles.models import ModbusLoadcell, Profile
from adc.profiles.points import PointRef


class LoadcellCommand(IntEnum):
    ZERO = 1
    TARE = 2
    SAVE = 3


class ServiceAccess(Protocol):
    def loadcell_command(self, point: str, command: LoadcellCommand) -> None:
        """Write a command to the channel's command register (raises the port's errors)."""
        ...

    def last_command(self, point: str) -> int:
        """The channel's command register read back (the last command it accepted)."""
        ...


def _channel(profile: Profile, point: str) -> tuple[str, ModbusLoadcell, int]:
    ref = PointRef.parse(point)
    model = profile.devices.get(ref.device)
    if not isinstance(model, ModbusLoadcell) or ref.family != "ch":
        raise DriverError(f"{point} is not a load-cell channel")
    return ref.device, model, model.command_start + ref.index


class WireService:
    """Through the Modbus client of the bus part that owns the module."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def _client(self, device: str) -> Any:
        bus = self.driver.profile.devices[device].bus
        for part in self.driver.parts:
            clients = getattr(part, "clients", {})
            if device in part.devices and bus in clients:
                return clients[bus]
        raise DeviceOffline(device, "no bus of this backend reaches it")

    def loadcell_command(self, point: str, command: LoadcellCommand) -> None:
        device, model, address = _channel(self.driver.profile, point)
        self._client(device).write_register(
            device, model.address, address, int(command), point=point
        )

    def last_command(self, point: str) -> int:
        from adc.drivers.modbus_plan import Table

        device, model, address = _channel(self.driver.profile, point)
        return int(
            self._client(device).read(
                device, model.address, Table.HOLDING, address, 1, point=point
            )[0]
        )


class VirtualService:
    """Through the register view of the in-process virtual cabinet's module."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def _call(self, device: str, point: str, action: Any) -> Any:
        from adc.sim.errors import VirtualDeviceOffline, VirtualHardwareError

        try:
            return action(self.driver.cabinet.device(device))
        except VirtualDeviceOffline as err:
            raise DeviceOffline(device, err.detail, point) from None
        except VirtualHardwareError as err:
            raise DeviceFault(device, f"exception {err.modbus_code}: {err.detail}", point) from None

    def loadcell_command(self, point: str, command: LoadcellCommand) -> None:
        device, _, address = _channel(self.driver.profile, point)
        self._call(device, point, lambda dev: dev.write_register(address, int(command)))

    def last_command(self, point: str) -> int:
        device, _, address = _channel(self.driver.profile, point)
        return int(
            self._call(device, point, lambda dev: dev.read_registers("holding", address, 1))[0]
        )


class NoService:
    """A backend without a service surface this module knows."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def loadcell_command(self, point: str, command: LoadcellCommand) -> None:
        raise DriverError(f"this backend cannot send load-cell commands ({point})")

    def last_command(self, point: str) -> int:
        raise DriverError(f"this backend cannot read load-cell commands ({point})")


def service_for(driver: CabinetDriver) -> ServiceAccess:
    """The service surface of a backend, found by what it has (bus parts, or a cabinet)."""
    if hasattr(driver, "parts"):
        return WireService(driver)
    if hasattr(getattr(driver, "cabinet", None), "device"):
        return VirtualService(driver)
    return NoService(driver)
