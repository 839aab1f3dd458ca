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


@pytest.mark.parametrize("path", _files("sim"), ids=lambda p: str(p.relative_to(PKG)))
def test_virtual_hardware_imports_nothing_above_the_driver_port(path: Path) -> None:
    """adc/sim/ is the hardware floor: the virtual cabinet and its emulators. The scenario runner
    (adc/scenario/) is the only part of the simulator that may import the controller."""
    above = ("adc.controller", "adc.session", "adc.diag", "adc.scenario", "adc.station", "adc.cli")
    bad = {n for n in _imports(path) if n.startswith((*above, "adc.commands"))}
    assert not bad, f"{path} imports {bad}"


def test_the_scenario_runner_is_its_own_floor() -> None:
    """The move of issue 13: no scenario module is left under the hardware floor."""
    assert not (PKG / "sim" / "scenario").exists()
    assert (PKG / "scenario" / "runner.py").exists()


@pytest.mark.parametrize(
    "path", _files("session") + _files("diag"), ids=lambda p: str(p.relative_to(PKG))
)
def test_session_and_diag_do_not_import_the_scenario_or_the_station(path: Path) -> None:
    """session/ and diag/ sit beside scenario/ and station/, not above them."""
    bad = {n for n in _imports(path) if n.startswith(("adc.scenario", "adc.station"))}
    assert not bad, f"{path} imports {bad}"


def test_general_helpers_live_below_their_users() -> None:
    """Clock waiting (adc/waiting.py) serves session/, diag/ and station/: it imports no adc."""
    assert not {n for n in _imports(PKG / "waiting.py") if n.startswith("adc")}


# ------------------------------------------------------------------ the application floor
APPLICATION = ("session", "diag", "scenario", "station")


@pytest.mark.parametrize(
    "path", [p for sub in APPLICATION for p in _files(sub)], ids=lambda p: str(p.relative_to(PKG))
)
def test_application_services_do_not_import_the_cli(path: Path) -> None:
    """session/, diag/ and the scenario sit under the CLI: they import no command module."""
    bad = {n for n in _imports(path) if n.startswith(("adc.cli", "adc.commands"))}
    assert not bad, f"{path} imports {bad}"


def test_emulators_import_nothing_above_the_virtual_hardware() -> None:
    for path in _files("sim"):
        if not path.name.startswith("emulator"):
            continue
        bad = {
            n
            for n in _imports(path)
            if n.startswith(("adc.controller", "adc.session", "adc.diag", "adc.scenario"))
        }
        assert not bad, f"{path} imports {bad}"


# --------------------------------------------------------------- one access (issue 13)
def _unlock_calls(path: Path) -> list[str]:
    """`x.pulse(...)` and `x.unlock_together(...)` calls in a module, as 'line: source'."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("pulse", "unlock_together")
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _may_unlock(path: Path) -> bool:
    rel = path.relative_to(PKG)
    return (
        rel == Path("controller/access.py")
        or rel.parts[0] == "drivers"
        or (rel.parts[0] == "sim" and rel.name.startswith("emulator"))
    )


@pytest.mark.parametrize(
    "path", [p for p in sorted(PKG.rglob("*.py")) if not _may_unlock(p)],
    ids=lambda p: str(p.relative_to(PKG)),
)  # fmt: skip
def test_only_the_access_machine_pulses_a_lock(path: Path) -> None:
    """Every unlock goes through adc/controller/access.py (`PocketAccess`, or `service_pulse`
    for a lock cycled with nobody taking anything); only the drivers and the emulators below
    it pulse."""
    calls = _unlock_calls(path)
    assert not calls, f"{path} unlocks outside adc/controller/access.py: {calls}"


def test_the_unlock_rule_sees_a_pulse() -> None:
    """The check above would catch one (it reads calls, not text)."""
    assert _unlock_calls(PKG / "controller" / "access.py")
