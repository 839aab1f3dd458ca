"""Errors of the virtual hardware, shaped like the answers real devices give.

The register-level view (`adc.sim.devices`) raises these so that each tier can translate them the way
its real counterpart would: the wire emulators answer with the Modbus exception code (`modbus_code`)
or stay silent (`VirtualDeviceOffline`), the in-process driver maps them onto the driver port's typed
errors. `SimInputError` is different: it is a mistake in a test's or scenario's `sim_*` input (a
pocket that does not exist, taking from a closed drawer), so it is a `BadInput` a person can fix.
"""

from __future__ import annotations

from adc.errors import BadInput


class VirtualHardwareError(Exception):
    """Base of what a virtual device answers instead of data."""

    modbus_code: int | None = None

    def __init__(self, device: str, detail: str) -> None:
        super().__init__(f"{device}: {detail}")
        self.device = device
        self.detail = detail


class VirtualDeviceOffline(VirtualHardwareError):
    """No answer at all (unplugged, powered off, failed): on the wire, a timeout."""


class IllegalFunction(VirtualHardwareError):
    """A table the device does not have (Modbus exception 01)."""

    modbus_code = 0x01


class IllegalAddress(VirtualHardwareError):
    """An address outside the device's register blocks (Modbus exception 02)."""

    modbus_code = 0x02


class IllegalValue(VirtualHardwareError):
    """A value or a quantity the device does not accept (Modbus exception 03)."""

    modbus_code = 0x03


class DeviceFailure(VirtualHardwareError):
    """The device could not carry out a valid request (Modbus exception 04)."""

    modbus_code = 0x04


class DeviceBusy(VirtualHardwareError):
    """The device refuses for now, e.g. a solenoid pulse inside its re-arm window (exception 06).

    `retry_after_s` says when it would accept again; the wire does not carry it, the in-process
    driver passes it on.
    """

    modbus_code = 0x06

    def __init__(self, device: str, detail: str, retry_after_s: float = 0.0) -> None:
        super().__init__(device, detail)
        self.retry_after_s = retry_after_s


class SimInputError(BadInput):
    """A `sim_*` input that cannot happen in the modelled cabinet; names what is wrong."""
