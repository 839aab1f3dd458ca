"""`adc --help` must stay fast: it may not import the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = [
    "sqlmodel",
    "sqlalchemy",
    "pymodbus",
    "simpy",
    "biip",
    "matplotlib",
    "serial",
    "psycopg",
    "pydantic",  # typer would import it for a None `--help` value: see FastHelpGroup
]


@pytest.mark.parametrize("args", [["--help"], ["profile", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from adc.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "HEAVY=", result.stdout
