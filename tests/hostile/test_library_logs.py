"""A library's log record never reaches the person as a traceback (the crash harness saw
SQLAlchemy print "Error closing cursor" with a KeyboardInterrupt traceback when a SIGTERM landed
inside a row fetch; the command itself cleaned up and exited 130)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

LOG_AN_ERROR = """
import logging
from adc import cli
{setup}
try:
    raise KeyboardInterrupt
except KeyboardInterrupt:
    logging.getLogger("sqlalchemy.pool.impl.QueuePool").error("Error closing cursor", exc_info=True)
"""


def _stderr(setup: str) -> str:
    code = LOG_AN_ERROR.format(setup=setup)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return done.stderr


def test_sqlalchemy_errors_are_not_printed_by_the_cli() -> None:
    assert "Traceback" in _stderr("")  # what Python's last-resort handler does by default
    assert _stderr("cli._quiet_library_logs()") == ""
