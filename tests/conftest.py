"""Fixtures shared by every layer's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
