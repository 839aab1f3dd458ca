"""What a sweep runs: the seeds (`--seeds 1..100`), the parameter values (`--set key=v1,v2`) and
every (parameter combination × seed) run, checked before a single run starts.

A `--set` key is a dotted path into the scenario file (`cabinets[0].stock[2].par`,
`faults.rates.lock_jammed`); each value is written into the file's raw data and the result goes
through the scenario loader (`load_scenario(edit=...)`), so a swept value meets exactly the checks
a value written in the file meets (types, ranges, levels, profiles, formulary). A bad key or value
is one line naming the `--set` and what is wrong, before anything runs.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adc.errors import BadInput
from adc.profiles.checks import format_path
from adc.scenario.loader import LoadedScenario, ScenarioError, load_scenario

SEED_MAX = 2**32 - 1
MAX_RUNS = 100_000  # a typo such as 1..10000000 is refused, not queued
_RANGE = re.compile(r"^\s*([0-9]+)\s*\.\.\s*([0-9]+)\s*$")
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)((?:\[\d+\])*)")

Params = tuple[tuple[str, Any], ...]  # (key, value) in --set order: hashable, picklable


def parse_seeds(text: str) -> list[int]:
    """`1..100`, `1,2,5`, `1..10,20..30`, `7` → the seeds in the order given; each at most once."""
    seeds: list[int] = []
    seen: set[int] = set()
    parts = [p.strip() for p in text.split(",")]
    if not text.strip():
        raise BadInput("--seeds is empty: give e.g. 1..100 or 1,2,5")
    for part in parts:
        match = _RANGE.match(part)
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            if last < first:
                raise BadInput(f"--seeds {part}: the range runs backwards (write {last}..{first})")
            span = range(first, last + 1)
        elif part.isdigit() and part.isascii():
            span = range(int(part), int(part) + 1)
        else:
            raise BadInput(
                f"--seeds {text[:60]}: {part[:30]!r} is not a seed or a range "
                "(e.g. 1..100 or 1,2,5)"
            )
        if span.stop - 1 > SEED_MAX:
            raise BadInput(f"--seeds {part}: a seed is at most {SEED_MAX}")
        if len(seeds) + len(span) > MAX_RUNS:
            raise BadInput(f"--seeds {text[:60]}: more than {MAX_RUNS:,} seeds")
        for seed in span:
            if seed in seen:
                raise BadInput(f"--seeds {text[:60]}: seed {seed} is given twice")
            seen.add(seed)
            seeds.append(seed)
    return seeds


def split_values(text: str) -> list[str]:
    """Split `v1,v2` at the commas outside brackets and quotes (`[1,2],[3,4]` is two values)."""
    values: list[str] = []
    depth, quote, start = 0, "", 0
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:index])
            start = index + 1
    values.append(text[start:])
    return [v.strip() for v in values]


def parse_value(text: str) -> Any:
    """A value as TOML reads it (`8` int, `0.01` float, `true`, `[11, 21]`, `"08:00"`); anything
    TOML does not read is taken as a string (`all`, `08:00`)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_key(key: str) -> tuple[str | int, ...]:
    """`cabinets[0].stock[2].par` → ('cabinets', 0, 'stock', 2, 'par')."""
    path: list[str | int] = []
    for part in key.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise BadInput(
                f"--set {key[:80]}: {part[:40]!r} is not a key (keys look like "
                "cabinets[0].stock[2].par or faults.rates.lock_jammed)"
            )
        path.append(match.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(path)


def set_value(data: dict[str, Any], key: str, value: Any) -> None:
    """Write `value` at the dotted `key` of the scenario's raw data. A missing table on the way is
    created (the loader then says whether such a key exists); a list index must exist."""
    path = parse_key(key)
    node: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = format_path(path[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise BadInput(f"--set {key}: {format_path(path[:depth])} is not a list")
            if part >= len(node):
                raise BadInput(
                    f"--set {key}: {where} does not exist (the file has {len(node)} "
                    f"entr{'y' if len(node) == 1 else 'ies'} there)"
                )
        elif not isinstance(node, dict):
            raise BadInput(f"--set {key}: {format_path(path[:depth])} is not a table")
        if last:
            node[part] = value
        elif isinstance(part, int):
            node = node[part]
        else:
            if part not in node:
                if isinstance(path[depth + 1], int):
                    raise BadInput(f"--set {key}: the file has no {where} to index")
                node[part] = {}
            node = node[part]


@dataclass(frozen=True)
class Sweep:
    """A checked sweep: the scenario, its parameter combinations and seeds; runs in that order
    (every seed of the first combination, then the second's, ...)."""

    scenario: Path
    name: str
    keys: tuple[str, ...]
    combos: tuple[Params, ...]
    seeds: tuple[int, ...]
    days: float | None

    @property
    def total(self) -> int:
        return len(self.combos) * len(self.seeds)

    def tasks(self) -> list[RunTask]:
        return [
            RunTask(index, combo_index, seed, params, str(self.scenario), self.days)
            for index, (combo_index, params, seed) in enumerate(
                (c, p, s) for c, p in enumerate(self.combos) for s in self.seeds
            )
        ]


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: all a worker needs (plain data: it crosses process and host lines)."""

    run: int
    combo: int
    seed: int
    params: Params
    scenario: str
    days: float | None


def load_with(path: str | Path, params: Params) -> LoadedScenario:
    """The scenario file with the parameter values written in, checked by the loader."""

    def edit(data: dict[str, Any]) -> None:
        for key, value in params:
            set_value(data, key, value)

    return load_scenario(path, edit=edit)


def _first_problem(err: ScenarioError) -> str:
    issue = err.issues[0] if err.issues else None
    if issue is None:
        return err.message
    key = format_path(issue.path)
    return f"{key}: {issue.message}" if key else issue.message


def _check(path: Path, params: Params, what: str) -> None:
    try:
        load_with(path, params)
    except ScenarioError as err:
        raise BadInput(f"--set {what}: {_first_problem(err)}") from None


def plan_sweep(
    scenario: Path,
    seeds_text: str,
    sets: Sequence[str],
    days: float | None = None,
) -> Sweep:
    """Parse and check everything a sweep needs; BadInput (exit 2) names the first problem."""
    seeds = parse_seeds(seeds_text)
    base = load_scenario(scenario)  # the file itself: every problem listed, as `sim run` does
    keys: list[str] = []
    choices: list[list[Any]] = []
    shown: list[list[str]] = []
    for text in sets:
        key, sep, values_text = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--set {text[:80]!r}: write KEY=VALUE[,VALUE...]")
        parse_key(key)
        if key in keys:
            raise BadInput(f"--set {key}: given twice (list its values once: {key}=v1,v2)")
        if key == "seed":
            raise BadInput("--set seed: seeds are swept with --seeds")
        if key in ("spec", "name"):
            raise BadInput(f"--set {key}: names the scenario, not a parameter to sweep")
        if key == "days" and days is not None:
            raise BadInput("--set days and --days: choose one")
        raw = split_values(values_text)
        if any(not v for v in raw):
            raise BadInput(f"--set {text[:80]}: an empty value (values are comma-separated)")
        values = [parse_value(v) for v in raw]
        if len(set(map(repr, values))) != len(values):
            raise BadInput(f"--set {key}: a value is given twice")
        keys.append(key)
        choices.append(values)
        shown.append(raw)
    count = math.prod(len(c) for c in choices)
    if count * len(seeds) > MAX_RUNS:  # before the combinations are made
        raise BadInput(f"{count:,} combinations × {len(seeds)} seeds: more than {MAX_RUNS:,} runs")
    combos = tuple(tuple(zip(keys, values, strict=True)) for values in itertools.product(*choices))
    # Every combination as a whole: values fine alone may clash (a par above another's max).
    for params, texts in zip(combos, itertools.product(*shown), strict=True):
        _check(scenario, params, " ".join(f"{k}={t}" for k, t in zip(keys, texts, strict=True)))
    return Sweep(
        scenario.resolve(),
        base.scenario.name,
        tuple(keys),
        combos,
        tuple(seeds),
        days,
    )


__all__ = [
    "MAX_RUNS",
    "Params",
    "RunTask",
    "Sweep",
    "load_with",
    "parse_key",
    "parse_seeds",
    "parse_value",
    "plan_sweep",
    "set_value",
    "split_values",
]
