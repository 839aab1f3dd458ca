"""`adc demo` through the real entry point: the cabinet responds, bad input is one clear line."""

from __future__ import annotations

import time

import pytest

from tests.conftest import run_adc


@pytest.mark.parametrize(
    ("profile", "changed"),
    [
        ("tcp-6drawer", "D1-P1 weight"),
        ("rs485-2bus", "D1-P1 weight"),
        ("cs-small", "C1-01 presence"),
    ],
)
def test_demo_takes_two_items_and_the_drawer_relocks(profile: str, changed: str) -> None:
    started = time.monotonic()
    result = run_adc("demo", "--profile", profile, env={"COLUMNS": "120"})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 10, f"adc demo took {elapsed:.1f} s"
    out = result.stdout
    assert "a person pulls drawer" in out and "it opens" in out
    row = next(line for line in out.splitlines() if changed in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[-2] != cells[-1], f"no change shown in {row!r}"
    assert "relocked" in out and "a pull no longer opens it" in out


def test_demo_weights_drop_by_two_units() -> None:
    result = run_adc("demo", env={"COLUMNS": "120"})
    row = next(line for line in result.stdout.splitlines() if "D1-P1 weight" in line)
    assert "≈ 10 units" in row and "≈ 8 units" in row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--offline", "lc1"], "error: device lc1 (point lc1:ch.0) does not answer"),
        (["--drawer", "D9"], "error: no drawer 'D9' in tcp-6drawer"),
        (["--offline", "zz"], "error: fault device_offline: no device 'zz'"),
        (["--profile", "no-such-cabinet"], "no-such-cabinet: file not found"),
    ],
)
def test_demo_bad_input_is_one_clear_line(args: list[str], message: str) -> None:
    result = run_adc("demo", *args, env={"COLUMNS": "200"})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
