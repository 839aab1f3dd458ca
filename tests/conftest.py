"""Fixtures shared by every layer's tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """A suite started as a background job of a non-interactive shell (`cmd &`, nohup) inherits
    SIGINT ignored, and so would every `adc` it spawns (an ignored signal survives exec): the
    Ctrl-C tests would then test nothing but a timeout. Ctrl-C is restored to Python's default
    here, for this process and its children."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


PROFILES = ROOT / "hardware-profiles"
SHIPPED_PROFILES = sorted(PROFILES.glob("*.toml"))


def run_adc(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `adc` entry point in a subprocess, as a person would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "adc", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
        input=input,
    )


@pytest.fixture
def adc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep each test's default database out of the user's real data directory."""
    home = tmp_path / "adc-home"
    monkeypatch.setenv("ADC_HOME", str(home))
    monkeypatch.delenv("ADC_DATABASE_URL", raising=False)
    return home


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skips summed up by reason, one line each (`-rs` would list every skipped test: 147 lines
    of the same reason when PostgreSQL is not configured). `-rs` on the command line still lists
    them one by one."""
    from collections import Counter

    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped or "s" in (terminalreporter.config.option.reportchars or ""):
        return
    reasons: Counter[str] = Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    terminalreporter.section("skipped, by reason", sep="-")
    for reason, count in reasons.most_common():
        terminalreporter.line(f"{count:4d} × {reason}")
