"""CLI basics (issue 20, item 8): `--version`, shell completion, help that reads as typer's usually
does, and start-up (item 11): `adc --help` imports no command module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import run_adc


def test_version() -> None:
    from adc import __version__

    result = run_adc("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"adc {__version__}"


def test_shell_completion_is_offered_and_completes_nested_commands() -> None:
    help_text = run_adc("--help", env={"COLUMNS": "200"}).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    shown = run_adc("--show-completion", env={"SHELL": "/bin/bash"})
    assert shown.returncode == 0 and "_adc_completion" in shown.stdout
    for words, cword, expected in (
        ("adc di", "1", {"diag", "discrepancy"}),
        ("adc diag ca", "2", {"calibrate"}),
        ("adc restock --cab", "2", {"--cabinet"}),
    ):
        got = run_adc(
            env={"_ADC_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        )
        assert set(got.stdout.split()) == expected, (words, got.stdout, got.stderr)


@pytest.mark.parametrize("command", ["init", "restock", "count", "demo"])
def test_completion_is_offered_once_on_adc_not_on_each_command(command: str) -> None:
    """Completion installs for `adc` as a whole; a command's own help does not offer it again."""
    result = run_adc(command, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "--install-completion" not in result.stdout and "--show-completion" not in result.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["sim", "--help"], ["sim", "run", "--help"], ["restock", "--help"]]
)
def test_help_shows_no_bool_label(args: list[str]) -> None:
    result = run_adc(*args, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "--help" in result.stdout


def test_usage_names_an_argument_in_capitals() -> None:
    usage = run_adc("sim", "run", "--help", env={"COLUMNS": "200"}).stdout
    assert "Usage: adc sim run [OPTIONS] SCENARIO" in usage and "{scenario}" not in usage
    missing = run_adc("sim", "run")
    assert missing.returncode == 2 and "scenario" in missing.stderr


def test_each_listed_line_is_the_commands_own_help() -> None:
    """`adc --help` lists commands from `adc.cli.COMMANDS` without importing them: each line must
    say what the command's own help says first."""
    from adc.cli import COMMANDS, load_command

    for name, _, line in COMMANDS:
        command = load_command(name)
        first = (command.help or "").strip().split("\n\n")[0]
        assert " ".join(first.split()) == line, name


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\nfrom adc.cli import app\ntry:\n    app(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('adc.commands.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['adc.commands.common']"


def test_a_sub_command_imports_only_its_module() -> None:
    code = (
        "import sys\nfrom adc.cli import app\ntry:\n    app(['profile', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('adc.commands.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['adc.commands.common', 'adc.commands.profile']"


def test_bench_compares_against_a_two_command_group_app() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "bench" / "cli_startup.py").read_text()
    assert text.count("@app.command()") >= 2 and "ratio" in text


def test_empty_tables_say_so(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty report says what it found nothing of instead of drawing an empty table."""
    from tests.controller.site import build_site, fast_pins

    fast_pins(monkeypatch)
    url = f"sqlite:///{tmp_path / 'adc.db'}"
    build_site(url).ctl.db.close()
    env = {"ADC_DATABASE_URL": url, "ADC_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    for args, said in (
        (["discrepancy", "list"], "no discrepancies"),
        (["report", "discrepancies"], "no discrepancies"),
        (["report", "expiring", "--within", "7"], "no lots expiring within 7 days"),
        (["report", "refill"], "no pockets below par: nothing to refill"),
        (["report", "recalls"], "no recalled stock"),
    ):
        result = run_adc(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.strip() == said, (args, result.stdout)
