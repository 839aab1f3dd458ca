"""DESIGN.md's layering, checked on the source: arrows point down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "adc"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _files(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py"))


@pytest.mark.parametrize("path", _files("controller"), ids=lambda p: p.name)
def test_controller_knows_no_backend(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if name.startswith(
            (
                "adc.sim",
                "adc.drivers.sim",
                "adc.drivers.modbus",
                "adc.drivers.lockboard",
                "pymodbus",
                "serial",
                "simpy",
                "adc.cli",
                "adc.commands",
            )
        )
    }
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", _files("drivers") + _files("profiles"), ids=lambda p: p.name)
def test_drivers_and_profiles_import_nothing_above(path: Path) -> None:
    bad = {n for n in _imports(path) if n.startswith(("adc.controller", "adc.cli", "adc.commands"))}
    if path.name != "sim.py":
        bad |= {n for n in _imports(path) if n.startswith("adc.sim")}
    assert not bad, f"{path} imports {bad}"


def test_virtual_hardware_does_not_import_the_controller() -> None:
    top_floor = {"scenario.py", "people.py", "workload.py"}
    for path in _files("sim"):
        if path.name in top_floor or path.parent.name == "scenario":
            continue
        bad = {n for n in _imports(path) if n.startswith(("adc.controller", "adc.cli"))}
        assert not bad, f"{path} imports {bad}"
