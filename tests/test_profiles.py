"""Hardware profiles: the shipped ones load, and each kind of mistake is named with its key path."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from adc.profiles import ProfileError, load_profile
from adc.profiles.loader import locate_lines
from adc.profiles.models import PocketKind
from tests.conftest import PROFILES, SHIPPED_PROFILES


def test_at_least_three_profiles_ship() -> None:
    assert {p.stem for p in SHIPPED_PROFILES} >= {"tcp-6drawer", "rs485-2bus", "cs-small"}


@pytest.mark.parametrize("path", SHIPPED_PROFILES, ids=lambda p: p.stem)
def test_shipped_profiles_are_valid(path: Path) -> None:
    profile = load_profile(path)
    assert profile.pockets()


def test_profiles_cover_the_required_kinds() -> None:
    tcp = load_profile(PROFILES / "tcp-6drawer.toml")
    assert {b.transport for b in tcp.buses.values()} == {"modbus-tcp"}
    assert len(tcp.layout.drawers) == 6
    assert {p.kind for _, p in tcp.pockets()} >= {"matrix", "lidded", "cubie"}
    assert any(d.light for d in tcp.layout.drawers)
    rs = load_profile(PROFILES / "rs485-2bus.toml")
    assert {b.transport for b in rs.buses.values()} == {"lockboard", "modbus-rtu"}
    assert {d.kind for d in rs.devices.values()} == {
        "lockboard-cu16",
        "modbus-loadcell",
        "modbus-dio",
    }
    cs = load_profile(PROFILES / "cs-small.toml")
    kinds = {p.kind for _, p in cs.pockets()}
    assert {PocketKind.CUBIE, PocketKind.RETURN_BIN, PocketKind.FRIDGE} <= kinds
    assert any(p.temperature for _, p in cs.pockets())


def _mutate(tmp_path: Path, source: str, old: str, new: str, count: int = 1) -> Path:
    text = (PROFILES / source).read_text()
    assert old in text, old
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, count))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return info.value.details


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('spec = "1.0"', 'spec = "2.0"', r":\d+: spec: spec 2.0 is not supported"),
        ('spec = "1.0"', 'spec = "one"', r"spec: spec must look like"),
        (
            "address = 2\n",
            "address = 1\n",
            r"devices\.lc1\.address: address 1 on bus 'main' is already",
        ),
        (
            'bus = "main"\nkind = "modbus-loadcell"\naddress = 2',
            'bus = "nope"\nkind = "modbus-loadcell"\naddress = 2',
            r"devices\.lc1\.bus: bus 'nope' is not",
        ),
        ('"lc1:ch.2"', '"lc1:ch.9"', r"pockets\[2\]\.sensor\.point: lc1:ch\.9 is out of range"),
        ('"lc1:ch.2"', '"zz:ch.1"', r"device 'zz' is not declared"),
        (
            'lid_lock = "dio1:coil.7"',
            'lid_lock = "dio1:coil.6"',
            r"drawers\[2\]\.pockets\[1\]\.lid_lock: output dio1:coil\.6 is already used by "
            r"layout\.drawers\[2\]\.pockets\[0\]\.lid_lock",
        ),
        ('switch = "dio1:di.3"', 'switch = "dio1:coil.3"', r"drawers\[3\]\.switch: switch needs"),
        ("max_read_registers = 32", "max_read_registers = 200", r"max_read_registers: .*125"),
        ('kind = "lidded"', 'kind = "drawerish"', r"pockets\[0\]\.kind: .*'drawerish'"),
        ("retries = 2", "retries = 2\nretires = 3", r"buses\.main\.retires: unknown key"),
        ("status_start = 100", "status_start = 10", r"lc1\.status_start: input registers 10–17"),
        (
            "solenoid = { pulse_ms = 500, rearm_ms = 2000 }",
            "solenoid = { pulse_ms = 500, rearm_ms = 100 }",
            r"solenoid: rearm_ms must be",
        ),
    ],
)
def test_each_mistake_is_named_with_key_path_and_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    problems = _problems(_mutate(tmp_path, "tcp-6drawer.toml", old, new))
    assert any(re.search(expected, p) for p in problems), problems
    assert all(re.match(r".*broken\.toml(:\d+)?: ", p) for p in problems), problems


def test_every_problem_of_a_file_is_listed_at_once(tmp_path: Path) -> None:
    text = (PROFILES / "tcp-6drawer.toml").read_text()
    text = text.replace('"lc1:ch.2"', '"lc1:ch.9"').replace("address = 2\n", "address = 1\n")
    path = tmp_path / "two.toml"
    path.write_text(text)
    assert len(_problems(path)) == 2


def test_line_numbers_point_at_the_key(tmp_path: Path) -> None:
    path = _mutate(tmp_path, "tcp-6drawer.toml", '"lc1:ch.2"', '"lc1:ch.9"')
    (problem,) = _problems(path)
    line = int(problem.split(":")[1])
    assert "lc1:ch.9" in path.read_text().splitlines()[line - 1]


def test_not_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('spec = "1.0"\nname = \n')
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:2: not valid TOML")


def test_extends_inherits_and_overrides(tmp_path: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text(
        f'extends = "{PROFILES / "tcp-6drawer.toml"}"\nspec = "1.0"\nname = "lab"\n'
        '[buses.main]\nhost = "10.1.2.3"\nport = 1502\n'
    )
    profile = load_profile(child)
    assert profile.name == "lab"
    assert profile.buses["main"].host == "10.1.2.3"  # type: ignore[union-attr]
    assert profile.buses["main"].timeout_ms == 250  # inherited
    assert len(profile.layout.drawers) == 6


def test_extends_errors_point_into_the_right_file(tmp_path: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text(
        f'extends = "{PROFILES / "tcp-6drawer.toml"}"\nspec = "1.0"\nname = "lab"\n'
        "[devices.lc2]\naddress = 1\n"
    )
    problems = _problems(child)
    assert any(p.startswith(f"{child}:5: devices.lc2.address") for p in problems), problems


def test_circular_extends_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nspec = "1.0"\nname = "a"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nspec = "1.0"\nname = "b"\n')
    (problem,) = _problems(tmp_path / "a.toml")
    assert "circular extends" in problem


def test_locate_lines_follows_arrays_of_tables() -> None:
    text = (PROFILES / "tcp-6drawer.toml").read_text()
    lines = locate_lines(text)
    data = tomllib.loads(text)
    rows = text.splitlines()
    second_pocket_of_third_drawer = data["layout"]["drawers"][2]["pockets"][1]
    line = lines[("layout", "drawers", 2, "pockets", 1, "id")]
    assert second_pocket_of_third_drawer["id"] in rows[line - 1]
    assert "lc1:ch.0" in rows[lines[("layout", "drawers", 0, "pockets", 0, "sensor", "point")] - 1]
