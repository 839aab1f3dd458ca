"""Choose a backend by URI, in one place, importing it only when it is asked for.

Like python-can's interface registry: each scheme maps to "module:factory", so a missing optional
dependency surfaces as a clear BackendUnavailable when that backend is opened, not as an ImportError
at start-up. URIs:

    sim:PROFILE                      in-process virtual cabinet (profile name or path)
    modbus-tcp://HOST:PORT           the profile's Modbus devices through one TCP gateway
    modbus-rtu://PORT?baudrate=N     the profile's Modbus devices on one serial line (PORT: a device,
                                     a pty path or a pyserial URL such as socket://HOST:PORT)
    lockboard://PORT?baudrate=N      the profile's CU16 lock boards on one serial line
    profile:[NAME-OR-PATH][?BUS=PORT]  every bus as the profile names it (ports may be moved)
    station:PATH · station://127.0.0.1:PORT  the driver port by proxy through a running station
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from adc.drivers.base import BackendUnavailable
from adc.errors import BadInput

if TYPE_CHECKING:
    from adc.drivers.base import CabinetDriver
    from adc.profiles.models import Profile


class BackendFactory(Protocol):
    def __call__(
        self, target: str, profile: Profile | None, **options: object
    ) -> CabinetDriver: ...


BACKENDS: dict[str, str] = {
    "sim": "adc.drivers.sim:open_backend",
    "modbus-tcp": "adc.drivers.modbus:open_tcp_backend",
    "modbus-rtu": "adc.drivers.modbus:open_rtu_backend",
    "lockboard": "adc.drivers.lockboard:open_backend",
    "profile": "adc.drivers.buses:open_backend",
    "station": "adc.drivers.station:open_backend",
}


def split_uri(uri: str) -> tuple[str, str]:
    """`sim:tcp-6drawer` → ('sim', 'tcp-6drawer'); `modbus-tcp://h:1` → ('modbus-tcp', 'h:1')."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme:
        raise BadInput(
            f"backend {uri!r} is not a URI: expected one of "
            + ", ".join(f"{name}:..." for name in BACKENDS)
        )
    return scheme, rest.removeprefix("//")


def open_backend(uri: str, profile: Profile | None = None, **options: object) -> CabinetDriver:
    """Open the backend a URI names; `profile` describes the cabinet where the URI does not."""
    scheme, target = split_uri(uri)
    entry = BACKENDS.get(scheme)
    if entry is None:
        raise BadInput(f"unknown backend {scheme!r} in {uri!r}; known: {', '.join(BACKENDS)}")
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendUnavailable(f"backend {scheme!r} is unavailable: {err}") from None
    factory: BackendFactory = getattr(module, attr)
    return factory(target, profile, **options)
