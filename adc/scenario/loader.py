"""Load a scenario file: TOML → pydantic model → cross-checks against profiles and formulary.

Checked like a hardware profile (`adc.profiles.loader`): every problem of the file is collected and
raised at once, each with file, key path and line, so `adc sim run` exits 2 with the whole list
before a single simulated second runs. Cross-checks: each cabinet's profile loads; each stocked
pocket exists in it (and can hold an item); each item is in the formulary; fault targets exist on
the cabinet they name; recalls name a formulary item; cabinet ids are unique.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adc.errors import AdcError, BadInput
from adc.profiles import ProfileError, ProfileIssue, load_profile, resolve_profile_path
from adc.profiles.checks import format_path
from adc.profiles.loader import KeyPath, locate_lines
from adc.profiles.models import PocketKind, Profile
from adc.scenario.model import Scenario
from adc.tomlfile import TomlFileError, read_toml

DEMO_FORMULARY = Path(__file__).resolve().parents[1] / "data" / "formulary-demo.csv"


class ScenarioError(ProfileError):
    """A scenario that cannot run; `issues` lists every problem (same shape as a profile's)."""

    def __init__(self, issues: list[ProfileIssue]) -> None:
        files = sorted({str(i.file) for i in issues})
        # BadInput's own __init__, not ProfileError's: str(err) (a sweep's failed row, a re-raise
        # by SimPy) must say "scenario" as the CLI's line does, not "hardware profile".
        BadInput.__init__(
            self,
            f"{len(issues)} problem(s) in scenario {', '.join(files)}",
            details=[str(i) for i in issues],
        )
        self.issues = issues


@dataclass(frozen=True)
class FormularyItem:
    """What the runner needs of a formulary row: how to scan it and what one unit weighs."""

    gtin: str
    ndc: str | None
    label: str
    schedule: int | None
    unit_weight_g: float


@dataclass
class LoadedScenario:
    """A validated scenario with everything it refers to resolved."""

    scenario: Scenario
    path: Path
    formulary_path: Path
    items: dict[str, FormularyItem]  # by GTIN and by NDC
    profiles: dict[int, tuple[Path, Profile]] = field(default_factory=dict)  # by cabinet spec

    def item(self, ref: str) -> FormularyItem:
        return self.items[_ref_key(ref)]


def _ref_key(ref: str) -> str:
    digits = ref.replace("-", "").strip()
    return digits.zfill(14) if len(digits) in (8, 12, 13, 14) else digits


def _read_formulary(path: Path) -> dict[str, FormularyItem]:
    from adc.controller.csvfile import read_rows
    from adc.controller.formulary import COLUMNS, parse_row

    items: dict[str, FormularyItem] = {}
    for line, raw in read_rows(path, COLUMNS):
        row = parse_row(line, raw)
        entry = FormularyItem(
            gtin=row.gtins[0],
            ndc=row.ndc,
            label=f"{row.name} {row.strength} {row.form}",
            schedule=row.schedule,
            unit_weight_g=row.unit_weight_g or 1.0,
        )
        for gtin in row.gtins:
            items[gtin] = entry
        if row.ndc:
            items[row.ndc] = entry
    return items


def _issue(path: Path, lines: dict[KeyPath, int], key: KeyPath, message: str) -> ProfileIssue:
    for cut in range(len(key), 0, -1):
        if key[:cut] in lines:
            return ProfileIssue(path, key, message, lines[key[:cut]])
    return ProfileIssue(path, key, message, None)


_INLINE_KEY = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+)\s*=""")


def _locate_array_rows(text: str, lines: dict[KeyPath, int]) -> dict[KeyPath, int]:
    """Add the rows of multi-line arrays of inline tables (`stock = [` then `{ ... },` a line),
    which scenarios use for pocket lists, so an error points at its row, not at `stock =`."""
    rows = text.splitlines()
    out = dict(lines)
    for path, number in lines.items():
        if not rows[number - 1].split("#")[0].rstrip().endswith("["):
            continue
        index = 0
        for offset, raw in enumerate(rows[number:], start=number + 1):
            stripped = raw.strip()
            if stripped.startswith("]"):
                break
            if stripped.startswith("{"):
                out.setdefault((*path, index), offset)
                for key in _INLINE_KEY.finditer(stripped):
                    out.setdefault((*path, index, key.group(1)), offset)
                index += 1
    return out


def _validation_issues(
    err: ValidationError, path: Path, lines: dict[KeyPath, int]
) -> list[ProfileIssue]:
    issues = []
    for item in err.errors(include_url=False):
        key = tuple(part for part in item["loc"] if not str(part).startswith("function-"))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        if item["type"] in ("literal_error", "enum") and "input" in item:
            message = f"{message} (got {item['input']!r})"
        issues.append(_issue(path, lines, key, message))
    return issues


def load_scenario(
    path: str | Path, *, edit: Callable[[dict[str, Any]], None] | None = None
) -> LoadedScenario:
    """Read and check a scenario file; ScenarioError (exit 2) lists every problem.

    `edit` changes the file's raw data before it is checked (`adc sim sweep --set`), so an edited
    value meets exactly the checks a value written in the file does."""
    path = Path(path)
    try:
        data, text = read_toml(path)
    except TomlFileError as err:
        raise ScenarioError([ProfileIssue(path, (), err.reason, err.line)]) from None
    if edit is not None:
        edit(data)
    lines = _locate_array_rows(text, locate_lines(text))
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_validation_issues(err, path, lines)) from None
    return _cross_check(scenario, path, lines)


def _cross_check(scenario: Scenario, path: Path, lines: dict[KeyPath, int]) -> LoadedScenario:
    issues: list[ProfileIssue] = []

    def problem(key: KeyPath, message: str) -> None:
        issues.append(_issue(path, lines, key, message))

    formulary_path = (
        DEMO_FORMULARY if scenario.formulary == "demo" else path.parent / scenario.formulary
    )
    items: dict[str, FormularyItem] = {}
    try:
        items = _read_formulary(formulary_path)
    except AdcError as err:
        problem(("formulary",), f"formulary {formulary_path}: {err.message}")
    loaded = LoadedScenario(scenario, path, formulary_path, items)

    seen: dict[str, int] = {}
    for cab_id, index in scenario.cabinet_ids():
        if cab_id in seen:
            problem(("cabinets", index, "id"), f"cabinet id {cab_id} is made twice")
        seen[cab_id] = index
    for index, spec in enumerate(scenario.cabinets):
        profile = _profile(spec.profile, path, (("cabinets", index, "profile")), problem)
        if profile is None:
            continue
        loaded.profiles[index] = profile
        pockets = {p.id: p for _, p in profile[1].pockets()}
        stocked: set[str] = set()
        for s_index, stock in enumerate(spec.stock):
            key: KeyPath = ("cabinets", index, "stock", s_index)
            pocket = pockets.get(stock.pocket)
            if pocket is None:
                problem(
                    (*key, "pocket"),
                    f"profile {profile[1].name} has no pocket {stock.pocket!r}",
                )
            elif pocket.kind is PocketKind.RETURN_BIN:
                problem((*key, "pocket"), f"pocket {stock.pocket} is a return bin: no item")
            elif stock.max > pocket.capacity:
                problem((*key, "max"), f"max {stock.max} > capacity {pocket.capacity}")
            if stock.pocket in stocked:
                problem((*key, "pocket"), f"pocket {stock.pocket} is stocked twice")
            stocked.add(stock.pocket)
            if items and _ref_key(stock.item) not in items:
                problem((*key, "item"), f"no item {stock.item!r} (GTIN or NDC) in the formulary")
    _check_faults(scenario, loaded, problem)
    _check_incidents(scenario, loaded, problem)
    for r_index, recall in enumerate(scenario.recalls):
        if items and _ref_key(recall.item) not in items:
            problem(("recalls", r_index, "item"), f"no item {recall.item!r} in the formulary")
    if issues:
        raise ScenarioError(issues)
    return loaded


def _profile(
    name: str, scenario_path: Path, key: KeyPath, problem: Any
) -> tuple[Path, Profile] | None:
    local = scenario_path.parent / name
    target = local if local.suffix == ".toml" and local.exists() else resolve_profile_path(name)
    try:
        return target, load_profile(target)
    except ProfileError as err:
        first = err.issues[0] if err.issues else None
        problem(key, f"profile {name!r}: {first.message if first else err.message}")
        return None


def _check_incidents(scenario: Scenario, loaded: LoadedScenario, problem: Any) -> None:
    """Each incident names a cabinet of the scenario and a drawer or pocket its profile has (a
    fridge pocket for a fridge failure)."""
    ids = dict(scenario.cabinet_ids())
    for index, incident in enumerate(scenario.incidents):
        key: KeyPath = ("incidents", index)
        spec_index = ids.get(incident.cabinet)
        if spec_index is None:
            problem((*key, "cabinet"), f"no cabinet {incident.cabinet!r} in this scenario")
            continue
        if spec_index not in loaded.profiles or incident.target is None:
            continue
        profile = loaded.profiles[spec_index][1]
        if incident.kind == "forced_open":
            if incident.target not in {d.id for d in profile.layout.drawers}:
                problem(
                    (*key, "target"), f"profile {profile.name} has no drawer {incident.target!r}"
                )
            continue
        try:
            _drawer, pocket = profile.pocket(incident.target)
        except KeyError:
            problem((*key, "target"), f"profile {profile.name} has no pocket {incident.target!r}")
            continue
        if incident.kind == "fridge_failure" and not pocket.temperature:
            problem((*key, "target"), f"pocket {pocket.id} is not a fridge (no temperature point)")
        if incident.kind == "unrecorded_removal" and pocket.sensor.kind.value != "weight":
            problem((*key, "target"), f"pocket {pocket.id} has no scale: nothing could tell")


def _check_faults(scenario: Scenario, loaded: LoadedScenario, problem: Any) -> None:
    """Each scripted fault is tried on a fresh virtual cabinet of its profile: the same checks
    (kind, target, parameters) as when it is injected during the run."""
    from adc.sim.cabinet import VirtualCabinet
    from adc.sim.errors import SimInputError

    ids = dict(scenario.cabinet_ids())
    for f_index, fault in enumerate(scenario.faults.scripted):
        key: KeyPath = ("faults", "scripted", f_index)
        spec_index = ids.get(fault.cabinet)
        if spec_index is None:
            problem((*key, "cabinet"), f"no cabinet {fault.cabinet!r} in this scenario")
            continue
        if spec_index not in loaded.profiles:
            continue
        odd = [
            name
            for name, value in fault.params.items()
            if isinstance(value, float) and not math.isfinite(value)
        ]
        if odd:
            problem((*key, "params"), f"parameter {odd[0]} must be a finite number")
            continue
        try:
            probe = VirtualCabinet(loaded.profiles[spec_index][1])
            probe.sim_inject_fault(fault.kind, fault.target, **fault.params)
        except SimInputError as err:
            problem((*key, "target" if "target" in err.message else "params"), err.message)
        except (TypeError, ValueError, OverflowError) as err:  # a parameter of the wrong type
            problem((*key, "params"), f"parameters do not fit fault {fault.kind}: {err}")


__all__ = ["LoadedScenario", "ScenarioError", "format_path", "load_scenario"]
