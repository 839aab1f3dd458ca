"""Hostile files into the loaders of profiles, scenarios and restock scripts (issue 21).

Whatever the file holds, a loader returns a checked object or raises the project's own error
(AdcError: a ProfileError/ScenarioError/ScriptError naming the file), never anything else and
never a traceback. Three kinds of file:
- arbitrary TOML documents built from hypothesis strategies of TOML values (and shaped like the
  real thing: the known top-level keys with arbitrary values);
- the shipped files (hardware-profiles/, scenarios/, a valid restock script) with their bytes
  mutated: spans deleted, repeated, swapped, bytes and text inserted, lines spliced;
- deep nesting, huge numbers, bad UTF-8, a directory (the classes of issue 21).

tests/test_profile_fuzz.py mutates a profile's parsed data (validate_data); these go through the
file, as `adc profile validate`, `adc sim run` and `adc restock --script` do.

ADC_FUZZ_EXAMPLES sets the examples per test (default 100; e.g. 10000 for a campaign).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adc.errors import AdcError
from adc.profiles import Profile, ProfileError, load_profile
from adc.scenario.loader import LoadedScenario, ScenarioError, load_scenario
from adc.session.script import Script, ScriptError, parse_script
from adc.tomlfile import MAX_DEPTH
from tests.conftest import SHIPPED_PROFILES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("ADC_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
SCRIPT = """\
# a valid restock script
cabinet = "W1"

[[line]]
scans = [
  "(01)00363323047016(17)271231(10)H1",
  "]d201003040947550381728063010ON4471\\u001d21SN0000471",
]
quantity = 10

[[line]]
pocket = "D6-P1"
scan = "(01)00309046722618(17)271231(10)AC1"
quantity = 30
accept_short_dated = true
confirm_discrepancy = true

[[line]]
pocket = "D3-P1"
scan = "(01)00309040911103(17)271231(10)MO1"
count = 0
recount = 0
quantity = 5

[[line]]
skip = "out of stock"

[[line]]
pocket = "D2-P1"
scan = "(01)00363323047016(17)271231(10)H2"
abandon = "scale disagrees, cannot recount"
"""


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """One directory for the module's files (hypothesis reruns a test many times)."""
    with tempfile.TemporaryDirectory(prefix="adc-loader-fuzz-") as name:
        yield Path(name)


# ----------------------------------------------------------------------------- TOML writing
def toml_key(key: str) -> str:
    return json.dumps(key)  # a TOML basic string (JSON's escapes are TOML's)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items())


words = st.sampled_from(
    [
        "1.0", "2.0", "main", "tcp", "modbus-tcp", "modbus-rtu", "lockboard", "lockboard-cu16",
        "modbus-dio", "modbus-loadcell", "matrix", "lidded", "cubie", "fridge", "return-bin",
        "weight", "presence", "none", "dio1:coil.0", "lb0:lock.99", "D1", "D1-P1", "W1",
        "tcp-6drawer", "cs-small", "rs485-2bus", "demo", "lock_jammed", "power_loss", "08:00",
        "25:99", "UTC", "Europe/Paris", "America", "../../etc/passwd", "/", ".", "",
        "00304094755038", "(01)00309046722618(17)271231(10)AC1", "a\x00b", "x" * 300,
    ]
)  # fmt: skip
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, -(2**63), 10**6, 36525, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    words,
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5))])),
    st.times(),
)
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        [
            "spec", "name", "extends", "buses", "devices", "layout", "drawers", "pockets",
            "kind", "address", "port", "host", "transport", "bus", "id", "lock", "sensor",
            "capacity", "cabinets", "profile", "stock", "pocket", "item", "par", "max",
            "critical_low", "faults", "scripted", "params", "target", "cabinet", "day", "time",
            "days", "seed", "timezone", "formulary", "recalls", "line", "scan", "scans",
            "quantity", "count", "recount", "skip", "abandon",
        ]
    ),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)
TOP_KEYS = {
    "profile": ["spec", "name", "description", "extends", "buses", "devices", "layout"],
    "scenario": [
        "spec", "name", "seed", "days", "start", "timezone", "formulary", "cabinets", "demand",
        "nurses", "technicians", "pharmacists", "service", "errors", "faults", "recalls",
    ],
    "script": ["cabinet", "line"],
}  # fmt: skip


def documents(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A TOML document: arbitrary keys, or the kind's own keys with arbitrary values."""
    own = st.fixed_dictionaries(
        {}, optional={key: values for key in TOP_KEYS[kind]}
    )  # shaped like the real thing
    return st.one_of(st.dictionaries(keys, values, max_size=5), own)


# ---------------------------------------------------------------------------- byte mutations
@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 4))):
        action = draw(
            st.sampled_from(["delete", "repeat", "insert", "byte", "line", "swap", "truncate"])
        )
        at = draw(st.integers(0, len(data)))
        span = draw(st.integers(1, 40))
        if action == "delete":
            del data[at : at + span]
        elif action == "repeat":
            data[at:at] = data[at : at + span]
        elif action == "insert":
            data[at:at] = draw(
                st.one_of(
                    st.text(max_size=12).map(str.encode),
                    st.sampled_from(
                        [b"[", b"]", b"{", b"}", b"=", b'"', b"'", b"\n", b"[[", b".", b",",
                         b"#", b"\\", b"0x", b"1e999", b"-", b"nan", b"\xff", b"\x00",
                         b'"""', b"[[line]]\n", b"[x]\n", b"inf", b"9" * 30]
                    ),
                )
            )  # fmt: skip
        elif action == "byte" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "line":
            lines = data.split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[j])
            data = bytearray(b"\n".join(lines))
        elif action == "swap":
            lines = data.split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        elif action == "truncate":
            del data[at:]
    return bytes(data)


# --------------------------------------------------------------------------------- the loaders
def load_as_profile(path: Path) -> None:
    try:
        result = load_profile(path)
    except ProfileError as err:
        assert err.issues  # noqa: PT017 -- any other exception type fails the test
        for issue in err.issues:
            assert issue.message
            assert str(issue).startswith(str(issue.file))
    else:
        assert isinstance(result, Profile)


def load_as_scenario(path: Path) -> None:
    try:
        result = load_scenario(path)
    except ScenarioError as err:
        assert err.issues  # noqa: PT017
        assert all(issue.message for issue in err.issues)  # noqa: PT017
    else:
        assert isinstance(result, LoadedScenario)


def load_as_script(path: Path) -> None:
    try:
        result = parse_script(path)
    except ScriptError as err:
        assert err.problems  # noqa: PT017
        assert all(line.startswith(str(path)) for line in err.details)  # noqa: PT017
    except AdcError as err:  # the file itself could not be read
        assert str(path) in err.message  # noqa: PT017
    else:
        assert isinstance(result, Script)
        for line in result.lines:
            assert line.quantity is None or line.quantity >= 1
            assert line.count is None or line.count >= 0


LOADERS: dict[str, Callable[[Path], None]] = {
    "profile": load_as_profile,
    "scenario": load_as_scenario,
    "script": load_as_script,
}


def write(workdir: Path, kind: str, data: bytes) -> Path:
    path = workdir / f"fuzzed-{kind}.toml"
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------- tests
@FUZZ
@given(kind=st.sampled_from(sorted(LOADERS)), data=st.data())
def test_any_toml_document_is_loaded_or_cleanly_refused(
    workdir: Path, kind: str, data: st.DataObject
) -> None:
    document = data.draw(documents(kind))
    LOADERS[kind](write(workdir, kind, toml_document(document).encode()))


SHIPPED = [("profile", p.read_text()) for p in SHIPPED_PROFILES] + [
    ("scenario", p.read_text()) for p in SCENARIOS
]


@FUZZ
@given(
    base=st.sampled_from([*SHIPPED, ("script", SCRIPT)]),
    data=st.data(),
)
def test_a_mutated_shipped_file_is_loaded_or_cleanly_refused(
    workdir: Path, base: tuple[str, str], data: st.DataObject
) -> None:
    kind, text = base
    LOADERS[kind](write(workdir, kind, data.draw(mutated(text))))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@FUZZ
@given(
    base=st.sampled_from([*SHIPPED, ("script", SCRIPT)]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(["replace", "delete", "add"]), values),
        min_size=1,
        max_size=3,
    ),
)
def test_a_shipped_file_with_values_replaced_is_loaded_or_cleanly_refused(
    workdir: Path, base: tuple[str, str], edits: list[tuple[int, str, Any]]
) -> None:
    """Valid TOML close to a real file: the checks past the parser (pydantic, cross-checks,
    fault probes, pocket and barcode checks) get the hostile values."""
    kind, text = base
    data = tomllib.loads(text)
    for index, action, value in edits:
        paths = _paths(data)
        if not paths:
            break
        path = paths[index % len(paths)]
        parent: Any = data
        for part in path[:-1]:
            parent = parent[part]
        if action == "replace":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[f"{path[-1]}_x"] = value
        else:
            parent.append(value)
    LOADERS[kind](write(workdir, kind, toml_document(data).encode()))


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize(
    "content",
    [
        b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n",
        b"x = " + b"{a = " * 3000 + b"1" + b"}" * 3000 + b"\n",
        b"x = " + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"\n",
        b"[" + b".".join([b"a"] * 3000) + b"]\n",
        b"a" + b".a" * 3000 + b" = 1\n",
        b"x = " + b"1" * 5000 + b"\n",
        b"x = 0x" + b"f" * 5000 + b"\n",
        b'name = "\xff\xfe"\n',
        b"\xef\xbb\xbfname = 1\n",
        b"[" + b" " * 5000 + b"\n",
        b"x = [\n[" + b" " * 5000 + b"1,\n2]]\n",
        b'["' + b"." * 20000 + b'"]\n',
    ],
    ids=[
        "arrays-3000-deep", "inline-tables-3000-deep", "arrays-past-the-limit",
        "header-3000-parts", "dotted-key-3000-parts", "int-5000-digits", "hex-5000-digits",
        "not-utf8", "byte-order-mark", "bracket-and-spaces", "array-line-of-spaces",
        "quoted-key-of-dots",
    ],
)  # fmt: skip
def test_the_classes_of_issue_21_are_refused_with_the_file_named(
    workdir: Path, kind: str, content: bytes
) -> None:
    path = write(workdir, kind, content)
    LOADERS[kind](path)


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_a_directory_or_a_missing_file_is_refused_with_the_file_named(
    workdir: Path, kind: str
) -> None:
    for path in (workdir, workdir / "missing.toml", workdir / "a\x00b.toml"):
        LOADERS[kind](path)
