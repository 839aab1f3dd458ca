"""The exceptions a person may see, each carrying the exit code the CLI turns it into.

Every layer raises these (or subclasses) for anything a user can cause or fix, so the CLI can print one
clear line instead of a traceback. Exit codes follow DESIGN.md: 2 bad usage or bad input, 1 a rule
refused the action or a check failed.
"""

from __future__ import annotations


class AdcError(Exception):
    """Base of every error meant for a person rather than a developer."""

    exit_code: int = 2

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[str] = list(details or [])


class BadInput(AdcError):
    """Input the user can correct: a malformed file, argument, barcode or URL."""

    exit_code = 2


class Refused(AdcError):
    """A rule of the pharmacy or of the hardware said no; nothing was changed."""

    exit_code = 1


class CheckFailed(AdcError):
    """A verification ran and found a problem (broken audit chain, failed self-test)."""

    exit_code = 1
