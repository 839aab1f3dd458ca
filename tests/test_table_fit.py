"""Report tables at 80 columns (issue 20 walk-through): no word is cut to `Mor…`, the least
important columns are left out and named, and text that looks like rich markup is shown as is."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from adc.commands.fit import fitted_table
from tests.conftest import run_adc


def _render(table: object, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_a_narrow_table_keeps_words_whole_and_leaves_out_the_least_important_columns() -> None:
    columns = ("id", "opened", "item", "by", "reason")
    rows = [["7", "2026-12-03 12:50", "Morphine sulfate 2 mg/mL 1 mL cartridge", "pat", "x" * 3]]
    table, left_out = fitted_table(columns, rows, width=34, priority=(1, 3, 1, 2, 4))
    text = _render(table, 34)
    assert left_out == ["opened", "reason"]
    assert max(len(line) for line in text.splitlines()) <= 34, text
    assert "…" not in text and "Morphine" in text and "cartridge" in text, text
    table, left_out = fitted_table(columns, rows, width=200, priority=(1, 3, 1, 2, 4))
    assert left_out == [] and "Morphine sulfate 2 mg/mL 1 mL cartridge" in _render(table, 200)


def test_without_priorities_the_rightmost_columns_go_first() -> None:
    columns = ("a", "b", "c")
    rows = [["alpha" * 3, "bravo" * 3, "charlie" * 2]]
    _table, left_out = fitted_table(columns, rows, width=40)
    assert left_out == ["c"]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("fit") / "demo.db"
    url = f"sqlite:///{path}"
    result = run_adc("demo", "--db", url, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stdout + result.stderr
    return url


@pytest.mark.parametrize(
    "args",
    [
        ("report", "cs-activity"),
        ("report", "shortages"),
        ("report", "recalls"),
        ("report", "refill"),
        ("report", "expiring"),
        ("report", "discrepancies"),
        ("discrepancy", "list"),
        ("pocket", "list", "--cabinet", "W1"),
        ("item", "list"),
    ],
)
def test_reports_fit_80_columns_without_cutting_a_word(demo_db: str, args: tuple[str, ...]) -> None:
    result = run_adc(*args, "--db", demo_db, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, result.stdout
    assert "…" not in result.stdout, result.stdout


def test_a_narrow_report_names_what_it_left_out(demo_db: str) -> None:
    narrow = run_adc("report", "cs-activity", "--db", demo_db, env={"COLUMNS": "80"}).stdout
    assert "80 columns: not shown" in narrow and "witness" in narrow.split("not shown")[1]
    wide = run_adc("report", "cs-activity", "--db", demo_db, env={"COLUMNS": "250"}).stdout
    assert "not shown" not in wide and "witness" in wide


def test_a_note_in_square_brackets_is_shown_not_taken_for_markup(demo_db: str) -> None:
    """The demo's blind count that differs twice opens discrepancy 2 on the recount's row."""
    wide = run_adc("report", "cs-activity", "--db", demo_db, env={"COLUMNS": "250"}).stdout
    assert "[discrepancy 2]" in wide, wide


def test_a_flag_column_without_a_header_is_kept_by_default() -> None:
    columns = ("user", "score", "", "top signals")
    rows = [["pat", "3.2", "FLAG", "over-waste late-waste null-access"]]
    table, left_out = fitted_table(columns, rows, width=30)
    assert left_out == ["top signals"] and "FLAG" in _render(table, 30)


def test_profile_validate_prints_one_line_per_profile_at_80_columns() -> None:
    from tests.conftest import ROOT

    profiles = sorted(str(p) for p in (ROOT / "hardware-profiles").glob("*.toml"))
    result = run_adc("profile", "validate", *profiles, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(profiles), result.stdout
    assert all(line.startswith("ok ") and line.endswith("pocket(s)") for line in lines), lines


@pytest.mark.parametrize(
    "command",
    [
        ("item", "import"),
        ("recall", "--help"),
        ("discrepancy", "--help"),
        ("recall", "add"),
        ("discrepancy", "resolve"),
        ("cabinet", "add"),
        ("user", "add"),
        ("pocket", "assign"),  # a wide option column: --db's URL was cut to 'psycopg://..…'
        ("waste", "--help"),
    ],
)
def test_help_at_80_columns_cuts_no_word(command: tuple[str, str]) -> None:
    args = command if command[-1] == "--help" else (*command, "--help")
    result = run_adc(*args, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
