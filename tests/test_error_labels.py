"""The label of a one-line error says what kind of failure it was: a check that failed is not a
refusal, and neither is bad input (adc/commands/common.py `print_error`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adc.commands.common import print_error
from adc.drivers.base import DriverError, RearmRefused
from adc.errors import AdcError, BadInput, CheckFailed, Refused
from tests.conftest import run_adc


@pytest.mark.parametrize(
    ("err", "label"),
    [
        (CheckFailed("audit chain broken at entry 5"), "check failed"),
        (Refused("nurse (nurse) is not allowed to load"), "refused"),
        (RearmRefused("lb0:lock.1", 1500), "refused"),  # a Refused subclass
        (BadInput("--within takes days"), "error"),
        (DriverError("device lc1 does not answer"), "error"),
    ],
)
def test_each_kind_of_failure_has_its_label(
    err: AdcError, label: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err.details.append("a detail line")
    print_error(err)
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [f"{label}: {err.message}", "  a detail line"]


def test_a_broken_audit_chain_says_check_failed_not_refused(tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    env = {"ADC_DATABASE_URL": f"sqlite:///{db}", "ADC_HOME": str(tmp_path / "home")}
    assert run_adc("init", env=env).returncode == 0
    intact = run_adc("audit", "verify", env=env)
    assert intact.returncode == 0, intact.stderr
    with sqlite3.connect(db) as con:  # what someone with database admin rights could do
        con.execute("DROP TRIGGER audit_entry_no_update")
        assert con.execute("UPDATE audit_entry SET payload = payload || ' ' WHERE seq = 1").rowcount
    broken = run_adc("audit", "verify", env=env)
    assert broken.returncode == 1
    assert broken.stderr.startswith("check failed: audit chain site broken at entry 1"), (
        broken.stderr
    )
    assert "refused" not in broken.stderr and "Traceback" not in broken.stderr
