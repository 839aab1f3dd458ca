"""What a restock session reports as it goes: one event per step, rendered by whoever listens.

The terminal turns events into its screen, a script run into text lines or JSON lines
(`--json`), a test into assertions. Keeping them plain data (a kind and a JSON-able dict) is what
lets one runner serve all three without knowing which is listening.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GS = "\x1d"

# Every kind the runner emits, in the order a line usually goes through them.
KINDS = (
    "session",  # started: cabinet, user, backend, the refill list
    "line",  # a line was selected: pocket, drawer, item, quantity to load
    "scan",  # a scan was accepted: gtin, lot, expiry, days left
    "warning",  # accepted but needs a decision (short-dated)
    "refused",  # a scan or a step was refused; the reason says why, the line stays
    "unlocked",  # the drawer (and pocket lock) was pulsed; the countdown starts
    "hands",  # simulated hands did something (sim backends only)
    "opened",  # the access switch shows the pocket open
    "count",  # the count on access: match, recount (asked once), or discrepancy (with its id)
    "closed",  # closed again, the scale settled: what the sensor measured
    "timeout",  # not opened within the unlock timeout: relatched
    "not-opened",  # the person says it stayed shut when pulled: open-failed, drawer out of service
    "note",  # something the controller noted on the line (scale unreadable, relock failed)
    "recorded",  # the line was recorded in one transaction
    "skipped",  # marked out of stock: pharmacists are notified
    "unfinished",  # left without a record (nothing was accessed)
    "abandoned",  # given up after the pocket was opened: drawer flagged for a blind recount
    "interrupted",  # Ctrl-C: what was done to leave the cabinet safe and the record complete
    "error",  # hardware or input problem that ended a line; a partial unlock (`partial_unlock`)
    # names the locks `released`, `not_released`, `unconfirmed`, the `maintenance_event` recorded,
    # whether the drawer is `out_of_service`, and whether the person may `retry`
    "database",  # the database could not take a `step` (busy, connection lost): `reason` is
    # its one line; nothing of the step was written, the line stays and the step may be retried;
    # `accessed`: the pocket was unlocked in this line (ending now leaves it for the next start)
    "summary",  # the end: what was recorded, skipped, left, flagged (abandoned)
)


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"event": self.kind, **self.data}

    def json_line(self) -> str:
        return json.dumps(self.as_json(), default=str, ensure_ascii=False)


Listener = Callable[[Event], None]


def shown_scan(raw: str) -> str:
    """A scan as a person can read it: the invisible GS separator written `<GS>`."""
    return raw.replace(GS, "<GS>")


def scanner_text(typed: str) -> str:
    """A line from a keyboard-wedge scanner (or typed by a person) as the barcode data.

    Scanners send the GS1 separator as the control character 0x1D; a person who types a barcode
    writes it `<GS>` (any case), a shell or a TOML literal string `\\x1d`. The line ending the
    scanner adds is not part of the data. One normaliser for every way in: `adc scan`, the
    terminal, scripts and the controller's `parse_scan` all use `adc.controller.gs1.scanner_text`.
    """
    from adc.controller.gs1 import scanner_text as normalise

    return normalise(typed)
