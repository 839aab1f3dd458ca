"""Site policy: the numbers a pharmacy tunes (short-dated window, lock-out, timeouts, time zone).

Stored in the `setting` table so every station and every command of one site agrees; changed only
through `settings.set_setting`, which audits the change.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adc.errors import BadInput


@dataclass(frozen=True)
class Policy:
    short_dated_days: int = 30  # stock expiring within this many days needs a confirmation
    max_pin_failures: int = 5  # failed PIN attempts before a user is locked out
    unlock_timeout_s: int = 30  # an unlocked pocket not opened in this time re-latches
    settle_timeout_s: int = 10  # a scale still unsettled after this falls back to a count
    weight_tolerance: float = 0.3  # units: how far from a whole number a weighed count may be
    cs_discrepancy_hours: int = 24  # controlled-substance discrepancies must be resolved by then
    timezone: str = "UTC"  # the site's time zone: what "today" means for expiry
    shortage_sink: str = ""  # file:PATH or command:COMMAND; empty = stored only
    # diversion analytics (adc/controller/diversion.py): signal weights as `signal=weight,...`
    # (empty: the defaults there), the score that flags a user, what counts as a late waste,
    # the site's shift changes (HH:MM,...) and how soon after an access an alarm is near it
    diversion_weights: str = ""
    diversion_flag_score: float = 3.0
    diversion_late_waste_min: int = 60
    diversion_shift_changes: str = "07:00,19:00"
    diversion_alarm_window_min: int = 30

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_LIMITS: dict[str, tuple[float, float]] = {
    "short_dated_days": (0, 3650),
    "max_pin_failures": (1, 100),
    "unlock_timeout_s": (1, 3600),
    "settle_timeout_s": (0, 600),
    "weight_tolerance": (0.05, 0.49),
    "cs_discrepancy_hours": (1, 24 * 14),
    "diversion_flag_score": (0.5, 1000),
    "diversion_late_waste_min": (1, 24 * 60),
    "diversion_alarm_window_min": (1, 24 * 60),
}


def setting_names() -> list[str]:
    return [f.name.replace("_", "-") for f in fields(Policy)]


def parse_setting(name: str, raw: str) -> tuple[str, Any]:
    """Validate one setting given as text; returns (field name, typed value) or raises BadInput."""
    key = name.replace("-", "_")
    field = {f.name: f for f in fields(Policy)}.get(key)
    if field is None:
        raise BadInput(f"unknown setting {name!r}; known: {', '.join(setting_names())}")
    if key == "timezone":
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadInput(f"timezone {raw!r} is not an IANA time zone name") from None
        return key, raw
    if key == "shortage_sink":
        if raw and not raw.startswith(("file:", "command:")):
            raise BadInput("shortage-sink must be empty, file:PATH or command:COMMAND")
        if raw in ("file:", "command:"):
            raise BadInput(f"shortage-sink {raw!r} names no target")
        return key, raw
    if key in ("diversion_weights", "diversion_shift_changes"):
        from adc.controller.diversion_settings import check_setting

        return key, check_setting(name, raw)
    kind = float if key in ("weight_tolerance", "diversion_flag_score") else int
    try:
        value = kind(raw)
    except ValueError:
        raise BadInput(
            f"setting {name} takes a{'' if kind is int else ' decimal'} number, got {raw!r}"
        ) from None
    low, high = _LIMITS[key]
    if not low <= value <= high:
        raise BadInput(f"setting {name} must be between {low:g} and {high:g}, got {raw}")
    return key, value


def policy_from_settings(rows: dict[str, str]) -> Policy:
    """Build the policy from stored text; a stored value that no longer parses is an error."""
    values: dict[str, Any] = {}
    for key, raw in rows.items():
        if key.startswith("policy."):
            name, value = parse_setting(key.removeprefix("policy."), raw)
            values[name] = value
    return replace(Policy(), **values)
