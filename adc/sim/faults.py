"""Faults the virtual cabinet can be given, what each one targets, and what it does to the parts.

| kind               | target        | params (default)        | effect                                        |
|--------------------|---------------|-------------------------|-----------------------------------------------|
| lock_jammed        | lock point    |                         | pulses are accepted, the bolt never retracts  |
| lock_no_reengage   | lock point    |                         | once retracted the bolt stays retracted       |
| switch_stuck       | input point   | active (current value)  | the input reads `active` whatever happens     |
| loadcell_stuck     | channel point |                         | the value freezes; the module reports FAULT   |
| loadcell_drift     | channel point | rate_g_per_h (10.0)     | the reading creeps; the module reports UNSTABLE |
| loadcell_noisy     | channel point | noise_g (20.0)          | noise of that sigma; the module reports UNSTABLE |
| loadcell_offline   | channel point |                         | the cell is disconnected: nan, FAULT          |
| device_offline     | device name   |                         | the device does not answer at all             |
| bus_noise          | bus name      | probability (0.5)       | the wire tier corrupts that share of frames   |
| power_loss         | (none)        | duration_s (until clear)| locks drop out, no device answers; zero/tare revert to saved |
| fridge_failure     | temperature point | rate_c_per_h (6.0), ceiling_c (22.0) | the fridge stops cooling: its probe warms at that rate up to the room |
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import simpy

from adc.sim.errors import SimInputError
from adc.sim.wiring import Parts, canonical


class FaultKind(StrEnum):
    LOCK_JAMMED = "lock_jammed"
    LOCK_NO_REENGAGE = "lock_no_reengage"
    SWITCH_STUCK = "switch_stuck"
    LOADCELL_STUCK = "loadcell_stuck"
    LOADCELL_DRIFT = "loadcell_drift"
    LOADCELL_NOISY = "loadcell_noisy"
    LOADCELL_OFFLINE = "loadcell_offline"
    DEVICE_OFFLINE = "device_offline"
    BUS_NOISE = "bus_noise"
    POWER_LOSS = "power_loss"
    FRIDGE_FAILURE = "fridge_failure"


_TARGET = {
    FaultKind.LOCK_JAMMED: "lock",
    FaultKind.LOCK_NO_REENGAGE: "lock",
    FaultKind.SWITCH_STUCK: "input",
    FaultKind.LOADCELL_STUCK: "channel",
    FaultKind.LOADCELL_DRIFT: "channel",
    FaultKind.LOADCELL_NOISY: "channel",
    FaultKind.LOADCELL_OFFLINE: "channel",
    FaultKind.DEVICE_OFFLINE: "device",
    FaultKind.BUS_NOISE: "bus",
    FaultKind.POWER_LOSS: None,
    FaultKind.FRIDGE_FAILURE: "temperature",
}
_PARAMS: dict[FaultKind, set[str]] = {
    FaultKind.SWITCH_STUCK: {"active"},
    FaultKind.LOADCELL_DRIFT: {"rate_g_per_h"},
    FaultKind.LOADCELL_NOISY: {"noise_g"},
    FaultKind.BUS_NOISE: {"probability"},
    FaultKind.POWER_LOSS: {"duration_s"},
    FaultKind.FRIDGE_FAILURE: {"rate_c_per_h", "ceiling_c"},
}


@dataclass(frozen=True)
class Fault:
    """One active fault: what, where, with which parameters, since when (SimPy seconds)."""

    kind: FaultKind
    target: str | None
    params: tuple[tuple[str, Any], ...]
    since: float


def parse_kind(kind: FaultKind | str) -> FaultKind:
    try:
        return FaultKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise SimInputError(f"unknown fault {kind!r}; known: {known}") from None


def resolve_target(parts: Parts, kind: FaultKind, target: str | None) -> str | None:
    """The canonical target of a fault, or SimInputError saying what the fault needs."""
    wanted = _TARGET[kind]
    if wanted is None:
        if target is not None:
            raise SimInputError(f"fault {kind} affects the whole cabinet and takes no target")
        return None
    if target is None:
        raise SimInputError(f"fault {kind} needs a target: a {wanted}")
    if wanted in ("device", "bus"):
        known = parts.devices if wanted == "device" else parts.bus_noise
        if target not in known:
            raise SimInputError(f"fault {kind}: no {wanted} {target!r} (known: {', '.join(known)})")
        return target
    try:
        point = canonical(target)
    except ValueError as err:
        raise SimInputError(f"fault {kind}: {err}") from None
    table = {
        "lock": parts.solenoids,
        "input": parts.inputs,
        "channel": parts.channels,
        "temperature": parts.thermometers,
    }[wanted]
    if point not in table:
        raise SimInputError(f"fault {kind} needs a {wanted} point; {point} is not one")
    return point


def apply(parts: Parts, kind: FaultKind, target: str | None, params: dict[str, Any]) -> None:
    """Put a fault into the parts (target already resolved)."""
    _check_params(kind, params)
    now = parts.env.now
    if kind is FaultKind.LOCK_JAMMED:
        parts.solenoids[target].jammed = True  # type: ignore[index]
    elif kind is FaultKind.LOCK_NO_REENGAGE:
        parts.solenoids[target].set_no_reengage(True)  # type: ignore[index]
    elif kind is FaultKind.SWITCH_STUCK:
        slot = parts.inputs[target]  # type: ignore[index]
        slot.stuck = bool(params.get("active", slot.active()))
    elif kind in _CHANNEL_FAULTS:
        channel = parts.channels[target]  # type: ignore[index]
        if kind is FaultKind.LOADCELL_STUCK:
            channel.stuck_value = channel.reading()[0]
        elif kind is FaultKind.LOADCELL_DRIFT:
            channel.drift_g_per_h = float(params.get("rate_g_per_h", 10.0))
            channel.drift_since = now
        elif kind is FaultKind.LOADCELL_NOISY:
            channel.noisy_sigma_g = float(params.get("noise_g", 20.0))
        else:
            channel.disconnected = True
    elif kind is FaultKind.DEVICE_OFFLINE:
        parts.devices[target].failed = True  # type: ignore[index]
    elif kind is FaultKind.BUS_NOISE:
        parts.bus_noise[target] = float(params.get("probability", 0.5))  # type: ignore[index]
    elif kind is FaultKind.FRIDGE_FAILURE:
        probe = parts.thermometers[target]  # type: ignore[index]
        if probe.failed_at is None:
            probe.failed_at = now
        probe.fail_rate_c_per_h = float(params.get("rate_c_per_h", 6.0))
        probe.ceiling_c = float(params.get("ceiling_c", 22.0))
    else:
        _power_off(parts, params.get("duration_s"))


def _check_params(kind: FaultKind, params: dict[str, Any]) -> None:
    """Refuse a bad parameter before anything changes."""
    unknown = set(params) - _PARAMS.get(kind, set())
    if unknown:
        raise SimInputError(f"fault {kind} takes no parameter {', '.join(sorted(unknown))}")
    probability = params.get("probability", 0.5)
    if not 0.0 <= float(probability) <= 1.0:
        raise SimInputError(f"bus noise probability must be 0..1, not {probability}")
    duration = params.get("duration_s")
    if duration is not None and float(duration) <= 0:
        raise SimInputError(f"power loss duration must be positive, not {duration}")
    rate = params.get("rate_c_per_h", 6.0)
    if not 0.0 < float(rate) <= 100.0:
        raise SimInputError(
            f"fridge failure rate_c_per_h must be above 0 and at most 100, not {rate}"
        )


_CHANNEL_FAULTS = {
    FaultKind.LOADCELL_STUCK,
    FaultKind.LOADCELL_DRIFT,
    FaultKind.LOADCELL_NOISY,
    FaultKind.LOADCELL_OFFLINE,
}


def remove(parts: Parts, kind: FaultKind, target: str | None) -> None:
    """Take a fault out of the parts again."""
    if kind is FaultKind.LOCK_JAMMED:
        parts.solenoids[target].jammed = False  # type: ignore[index]
    elif kind is FaultKind.LOCK_NO_REENGAGE:
        parts.solenoids[target].set_no_reengage(False)  # type: ignore[index]
    elif kind is FaultKind.SWITCH_STUCK:
        parts.inputs[target].stuck = None  # type: ignore[index]
    elif kind in _CHANNEL_FAULTS:
        channel = parts.channels[target]  # type: ignore[index]
        if kind is FaultKind.LOADCELL_STUCK:
            channel.stuck_value = None
        elif kind is FaultKind.LOADCELL_DRIFT:
            channel.drift_g_per_h = 0.0
        elif kind is FaultKind.LOADCELL_NOISY:
            channel.noisy_sigma_g = None
        else:
            channel.disconnected = False
    elif kind is FaultKind.DEVICE_OFFLINE:
        parts.devices[target].failed = False  # type: ignore[index]
    elif kind is FaultKind.BUS_NOISE:
        parts.bus_noise[target] = 0.0  # type: ignore[index]
    elif kind is FaultKind.FRIDGE_FAILURE:
        parts.thermometers[target].failed_at = None  # type: ignore[index]  # repaired: cold again
    else:
        power_on(parts)


def _power_off(parts: Parts, duration_s: float | None) -> None:
    parts.power.on = False
    parts.power.outages += 1
    for solenoid in parts.solenoids.values():
        solenoid.cut_power()
    for output in parts.outputs.values():
        output.value = False
    if duration_s is not None:
        parts.env.process(_restore_after(parts, float(duration_s), parts.power.outages))


def _restore_after(
    parts: Parts, duration_s: float, outage: int
) -> Generator[simpy.Event, Any, None]:
    yield parts.env.timeout(duration_s)
    # Only the outage that scheduled this restore ends here; a newer one runs its own course.
    if parts.power.outages == outage:
        power_on(parts)


def power_on(parts: Parts) -> None:
    """Power back: devices answer again, coils start de-energised, cells revert to saved settings."""
    if parts.power.on:
        return
    parts.power.on = True
    for channel in parts.channels.values():
        channel.power_cycled()
    parts.notify()


# ---------------------------------------------------------------------------------- fault specs
@dataclass(frozen=True)
class FaultSpec:
    """A fault as a person writes it on a command line: `KIND[:TARGET][@TIME][,PARAM=VALUE...]`.

    TARGET is a point (`dio1:coil.0`, `lc1:ch.0`), a device or a bus name, none for `power_loss`;
    TIME is when, in seconds after the start (`30`, `30s`, `2m`, `1h`; default: at once);
    PARAM=VALUE are the kind's parameters (`rate_g_per_h=600`, `active=true`, ...)."""

    kind: FaultKind
    target: str | None
    at_s: float | None
    params: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        text = self.kind.value + (f":{self.target}" if self.target else "")
        if self.at_s is not None:
            text += f"@{self.at_s:g}s"
        return text + "".join(f",{k}={v}" for k, v in self.params)


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_time(text: str, what: str) -> float:
    """`30`, `30s`, `2m`, `1.5h` as seconds (>= 0), or SimInputError naming `what`."""
    stripped = text.strip().lower()
    number = stripped.rstrip("minsh")
    unit = stripped[len(number) :]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise SimInputError(f"{what}: time {text!r} is not SECONDS (or 2m, 1h)") from None
    if not 0 <= value < 10 * 365 * 86400 or value != value:
        raise SimInputError(f"{what}: time {text!r} must be 0 or more")
    return value


def _param_value(kind: FaultKind, name: str, text: str, spec: str) -> Any:
    if name == "active":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SimInputError(f"fault {spec!r}: active={text!r} is not true or false")
    try:
        return float(text)
    except ValueError:
        raise SimInputError(f"fault {spec!r}: {name}={text!r} is not a number") from None


def parse_fault_spec(text: str) -> FaultSpec:
    """Parse `KIND[:TARGET][@TIME][,PARAM=VALUE...]` (the target is checked against a cabinet
    later, by `VirtualCabinet.sim_check_fault`). One-line SimInputError naming what is wrong."""
    head, *param_texts = text.strip().split(",")
    where, at_sep, at_text = head.rpartition("@")
    if not at_sep:
        where, at_text = head, ""
    kind_text, _, target = where.partition(":")
    if not kind_text:
        raise SimInputError(
            f"fault {text!r}: wants KIND:TARGET[@TIME], e.g. lock_jammed:dio1:coil.0"
        )
    try:
        kind = FaultKind(kind_text.strip().lower().replace("-", "_"))
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise SimInputError(
            f"fault {text!r}: unknown kind {kind_text!r} (known: {known})"
        ) from None
    at_s = parse_time(at_text, f"fault {text!r}") if at_sep else None
    params: dict[str, Any] = {}
    for param in param_texts:
        name, eq, value = param.partition("=")
        name = name.strip()
        if not eq or not name:
            raise SimInputError(f"fault {text!r}: {param!r} is not PARAM=VALUE")
        if name not in _PARAMS.get(kind, set()):
            allowed = ", ".join(sorted(_PARAMS.get(kind, set()))) or "none"
            raise SimInputError(f"fault {text!r}: {kind} takes no parameter {name!r} ({allowed})")
        params[name] = _param_value(kind, name, value, text)
    try:
        _check_params(kind, params)
    except SimInputError as err:
        raise SimInputError(f"fault {text!r}: {err.message}") from None
    return FaultSpec(kind, target.strip() or None, at_s, tuple(sorted(params.items())))
