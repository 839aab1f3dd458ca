"""Issue 21's reproductions through the real entry point (`python -m adc`, a subprocess): numbers
past 64 bits, dates at the ends of the calendar, blank reasons, unbounded runs, usage errors,
argv that is not UTF-8. Each failed with a traceback, ran for ever or printed a boxed panel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_adc
from tests.controller.site import ACETAMINOPHEN, build_site, fast_pins

HUGE = "99999999999999999999999"


@pytest.fixture(scope="module")
def site_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("bounds")
    with pytest.MonkeyPatch.context() as mp:
        fast_pins(mp)
        site = build_site(f"sqlite:///{base / 'site.db'}")
        site.assign("D1-P1", ACETAMINOPHEN)
        site.ctl.db.close()
    return {
        "ADC_DATABASE_URL": f"sqlite:///{base / 'site.db'}",
        "ADC_HOME": str(base / "home"),
        "ADC_PIN": "2468",
    }


def one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    err = result.stderr
    assert result.returncode == code, (result.returncode, err, result.stdout[-500:])
    assert "Traceback" not in err + result.stdout, err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["count", "-u", "technician", "-c", "W1", "--count", f"D1-P1={2**63}"], "--count D1-P1"),
        (["count", "-u", "technician", "-c", "W1", "--count", "D1-P1=²"], "--count D1-P1"),
        (["waste", "-u", "nurse", "-c", "W1", "--qty", "1", "--reason", "x", "--removal", HUGE],
         "--removal"),
        (["discrepancy", "resolve", "-u", "pharmacist", HUGE, "--reason", "miscount", "--note",
          "x", "-w", "nurse"], "discrepancy_id"),
        (["shortage", "ack", "-u", "pharmacist", HUGE], "shortage_id"),
        (["pocket", "assign", "D1-P1", "-c", "W1", "--item", ACETAMINOPHEN, "--par", HUGE,
          "--critical-low", "1", "--max", "20", "-u", "pharmacist"], "--par"),
    ],
)  # fmt: skip
def test_a_number_past_64_bits_is_one_line_naming_its_option(
    site_env: dict[str, str], args: list[str], option: str
) -> None:
    one_line(run_adc(*args, env=site_env), 2, option)


@pytest.mark.parametrize("report", ["cs-activity", "discrepancies"])
def test_report_dates_at_the_ends_of_the_calendar_are_bad_input(
    site_env: dict[str, str], report: str
) -> None:
    result = run_adc("report", report, "--from", "0001-01-01", "--to", "9999-12-31", env=site_env)
    one_line(result, 2, "--from 0001-01-01 is out of range")
    result = run_adc("report", report, "--from", "2026-01-01", "--to", "9999-12-31", env=site_env)
    one_line(result, 2, "--to 9999-12-31 is out of range")
    assert run_adc("report", report, "--from", "1900-01-01", env=site_env).returncode == 0


def test_a_report_of_a_cabinet_that_does_not_exist_is_an_error(site_env: dict[str, str]) -> None:
    one_line(run_adc("report", "refill", "--cabinet", "W9", env=site_env), 2, "no cabinet 'W9'")


def test_a_blank_reason_is_refused_before_anything_is_recorded(site_env: dict[str, str]) -> None:
    result = run_adc(
        "diag", "recover", "--cabinet", "W1", "-u", "service", "--drawer", "D1",
        "--mark-failed", " ", env=site_env,
    )  # fmt: skip
    one_line(result, 2, "--mark-failed cannot be empty or blank")
    result = run_adc(
        "waste", "-u", "nurse", "-c", "W1", "--qty", "1", "--pocket", "D1-P1", "--reason", "\t",
        env=site_env,
    )  # fmt: skip
    one_line(result, 2, "--reason cannot be empty or blank")
    listed = run_adc("diag", "recover", "--cabinet", "W1", "-u", "service", env=site_env)
    assert "every drawer is in service" in listed.stdout, listed.stdout + listed.stderr


def test_sim_run_days_are_bounded(site_env: dict[str, str]) -> None:
    scenario = str(ROOT / "scenarios" / "restock-delayed.toml")
    one_line(run_adc("sim", "run", scenario, "--days", "100000", env=site_env, timeout=30), 2,
             "--days", "at most 3660")  # fmt: skip


def test_a_usage_error_is_one_line_with_where_to_find_help() -> None:
    result = run_adc("restock", "--foo")
    assert one_line(result, 2) == "error: no such option: --foo (adc restock --help)\n"
    one_line(run_adc("restock"), 2, "missing option '--cabinet'")
    one_line(run_adc("frobnicate"), 2, "no such command 'frobnicate'")
    one_line(run_adc("waste", "-c", "W1", "--qty", "0", "--reason", "x"), 2, "--qty", "at least 1")
    assert run_adc("--help").returncode == 0


def test_an_argument_that_is_not_utf8_is_one_line(site_env: dict[str, str]) -> None:
    env = {**os.environ, **site_env}
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"adc", b"user", b"disable", b"-u", b"admin", b"\xff"],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    err = result.stderr.decode()
    assert result.returncode == 2 and "argument 5 is not valid UTF-8" in err, err
    assert "Traceback" not in err


def test_huge_and_unicode_arguments_do_not_traceback(site_env: dict[str, str]) -> None:
    for args in (
        ["user", "disable", "-u", "admin", "x" * 5000],
        ["shortage", "ack", "-u", "pharmacist", "9" * 5000],
        ["report", "expiring", "--within", "١٢"],
        ["settings", "set", "-u", "admin", "\u202eshort-dated-days", "٣"],
    ):
        result = run_adc(*args, env=site_env)
        assert result.returncode == 2, (args[:3], result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_sim_run_out_directory_is_checked_before_the_run(tmp_path: Path) -> None:
    scenario = str(ROOT / "scenarios" / "restock-delayed.toml")
    missing = tmp_path / "no" / "such"
    one_line(run_adc("sim", "run", scenario, "--out", str(missing), timeout=30), 2,
             "does not exist")  # fmt: skip
    assert not missing.parent.exists()
