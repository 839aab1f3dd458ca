"""What the quick start prints (issue 20 item 10): no setuptools license deprecation (the SPDX
string form), and skips summed up by reason instead of one `SKIPPED` line per test."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT


def test_the_license_is_an_spdx_string_and_setuptools_knows_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    requires = project["build-system"]["requires"]
    assert "setuptools>=77" in requires  # the first setuptools that reads PEP 639 licenses


def test_skips_are_summed_up_by_reason(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_terminal_summary  # noqa: F401\n", encoding="utf-8"
    )
    (tmp_path / "test_some.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('n', range(5))\n"
        "def test_skipped(n):\n"
        "    pytest.skip('no PostgreSQL here')\n\n"
        "def test_other():\n"
        "    pytest.skip('another reason')\n",
        encoding="utf-8",
    )
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "pytest"
    ]["ini_options"]["addopts"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            f"addopts={addopts}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIPPED [" not in result.stdout, result.stdout
    assert "5 × no PostgreSQL here" in result.stdout and "1 × another reason" in result.stdout


def test_the_readme_links_every_guide_and_names_every_command() -> None:
    """A newcomer starts at the README: its documentation index links each guide and reference
    (and each link leads to a file), and its command list names every top-level `adc` command."""
    import re

    from adc.cli import COMMANDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", readme))
    for doc in ("technician-guide", "test-engineer-guide", "service-guide", "profile-reference"):
        assert f"docs/{doc}.md" in links, doc
    for link in links:
        assert (ROOT / link).is_file(), link
    commands = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name, _, _ in COMMANDS:
        assert re.search(rf"\badc (\S+ / )*{name}\b|[/·] (adc )?{name}\b", commands), name
