"""Mutated profiles: always a valid profile or a clean ProfileError, never another exception."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adc.profiles import Profile, ProfileError
from adc.profiles.loader import locate_lines, validate_data
from tests.conftest import SHIPPED_PROFILES

BASES = [(p, tomllib.loads(p.read_text()), locate_lines(p.read_text())) for p in SHIPPED_PROFILES]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "modbus-dio",
            "lockboard-cu16",
            "matrix",
            "dio1:coil.0",
            "lb0:lock.99",
            "weight",
            "1.0",
            "2.0",
            "x:y.z",
            "main",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _apply(data: dict, path: tuple, action: str, value: Any) -> None:
    parent: Any = data
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = value
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    elif action == "add" and isinstance(parent, dict):
        parent[f"{key}_x"] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    mutations=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(["delete", "replace", "duplicate", "add"]),
            values,
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_profile_is_valid_or_cleanly_refused(
    base: tuple[Path, dict, dict], mutations: list[tuple[int, str, Any]]
) -> None:
    file, original, lines = base
    data = copy.deepcopy(original)
    for index, action, value in mutations:
        paths = _paths(data)
        if not paths:
            break
        _apply(data, paths[index % len(paths)], action, value)
    try:
        profile = validate_data(data, [(file, lines)])
    except ProfileError as err:
        assert err.issues  # noqa: PT017 -- any other exception type fails the test
        for issue in err.issues:
            assert issue.message
            assert str(issue).startswith(str(file))
    else:
        assert isinstance(profile, Profile)
