"""The diversion analytics' settings as text: signal weights and the site's shift changes.

Kept apart from the computation so `policy.parse_setting` can check a value (`adc settings set
diversion-weights ...`) without importing the analytics, and the analytics read the same parse.
"""

from __future__ import annotations

import re

from adc.errors import BadInput

# Every signal the analytics compute, with its default weight in a user's score. A weight says
# how much one robust standard deviation above the peers counts; 0 switches a signal off.
DEFAULT_WEIGHTS: dict[str, float] = {
    "removals_per_shift": 1.0,
    "waste_share": 1.0,
    "wasted_units_per_shift": 0.5,
    "late_wastes": 1.0,
    "witness_concentration": 0.5,
    "discrepancies_after_access": 1.5,
    "null_accesses": 1.0,
    "cancelled_accesses": 0.5,
    "end_of_shift_removals": 1.0,
    "count_differences": 0.5,
    "returns": 0.3,
    "alarms_near_access": 1.0,
}
SIGNALS = tuple(DEFAULT_WEIGHTS)

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_weights(raw: str) -> dict[str, float]:
    """`"waste_share=2,returns=0"` → the default weights with those replaced (BadInput if not)."""
    weights = dict(DEFAULT_WEIGHTS)
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in weights:
            raise BadInput(
                f"diversion-weights takes signal=weight pairs, not {part!r}; signals: "
                + ", ".join(SIGNALS)
            )
        try:
            weight = float(value)
        except ValueError:
            raise BadInput(f"diversion-weights: {name} takes a number, got {value!r}") from None
        if not 0 <= weight <= 100:
            raise BadInput(f"diversion-weights: {name} must be between 0 and 100, got {value}")
        weights[name] = weight
    return weights


def parse_shift_changes(raw: str) -> list[int]:
    """`"07:00,19:00"` → sorted minutes after midnight at which one shift ends and the next begins."""
    minutes = []
    for part in (p.strip() for p in raw.split(",")):
        match = _HHMM.match(part)
        if match is None:
            raise BadInput(
                f"diversion-shift-changes takes times of day like 07:00,19:00, not {part!r}"
            )
        minutes.append(int(match.group(1)) * 60 + int(match.group(2)))
    if len(set(minutes)) != len(minutes):
        raise BadInput(f"diversion-shift-changes names a time twice: {raw!r}")
    return sorted(minutes)


def check_setting(name: str, raw: str) -> str:
    """The stored text of `diversion-weights` or `diversion-shift-changes`, once it parses."""
    if name.replace("-", "_") == "diversion_weights":
        parse_weights(raw)
    else:
        parse_shift_changes(raw)
    return raw
