"""What a diagnostics run reports: one `Check` per point tested, each with its verdict and reason.

Every command ends in a `Report`, which the CLI renders as a table or JSON and which is recorded
as a maintenance event. The verdicts are few on purpose, so a service engineer reads them the same
way in every command: PASS, FAIL, and NOT_EXERCISED (the test could not be carried out here, e.g.
nobody was at the cabinet to open a drawer, or a controlled-substance pocket without a witness;
this is not a pass, and the reason says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_EXERCISED = "not exercised"


@dataclass
class Check:
    """The verdict on one point (a lock, a switch, a sensor, a device) and why."""

    subject: str  # what was tested, as a person names it: "lock D1", "sensor D1-P2", "device lc1"
    point: str | None  # the device point or device it concerns
    verdict: Verdict
    reason: str
    data: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # short names: jammed, stuck, noisy, offline ...

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAIL

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "point": self.point,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "flags": list(self.flags),
            **({"data": self.data} if self.data else {}),
        }


@dataclass
class Report:
    """One command's checks, plus what the command wants to say in general (notes)."""

    command: str
    target: str  # the backend or bus that was tested
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def count(self, verdict: Verdict) -> int:
        return sum(1 for c in self.checks if c.verdict is verdict)

    @property
    def ok(self) -> bool:
        """No failure. (A check not exercised is reported but does not fail the run.)"""
        return not any(c.failed for c in self.checks)

    @property
    def refused(self) -> bool:
        """A rule kept some checks from running (e.g. no witness for a controlled substance)."""
        return any("refused" in c.flags for c in self.checks)

    @property
    def result(self) -> str:
        return "fail" if not self.ok else "refused" if self.refused else "pass"

    def summary(self) -> str:
        parts = [f"{self.count(Verdict.PASS)} passed", f"{self.count(Verdict.FAIL)} failed"]
        if n := self.count(Verdict.NOT_EXERCISED):
            parts.append(f"{n} not exercised")
        return f"{self.command}: " + ", ".join(parts)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "target": self.target,
            "result": self.result,
            "summary": self.summary(),
            "checks": [c.as_json() for c in self.checks],
            "notes": list(self.notes),
            **({"data": self.data} if self.data else {}),
        }
