"""`adc sim sweep` input: --seeds syntax, --set keys and values checked against the scenario model
before anything runs (one line, exit 2), and the run plan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adc.errors import BadInput
from adc.scenario.sweep_spec import (
    parse_key,
    parse_seeds,
    parse_value,
    plan_sweep,
    set_value,
    split_values,
)
from tests.scenarios.conftest import SCENARIOS

WARD = SCENARIOS / "ward-7day.toml"


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("1..5", [1, 2, 3, 4, 5]),
        ("7", [7]),
        ("1,2,5", [1, 2, 5]),
        ("3..4, 10 ,0", [3, 4, 10, 0]),
        ("9..9", [9]),
    ],
)
def test_seeds_syntax(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10..1", "runs backwards (write 1..10)"),
        ("", "is empty"),
        ("  ", "is empty"),
        ("1,,2", "'' is not a seed"),
        ("1-5", "'1-5' is not a seed"),
        ("-1", "'-1' is not a seed"),
        ("1..3,2", "seed 2 is given twice"),
        ("1..200000", "more than 100,000 seeds"),
        ("4294967296", "a seed is at most 4294967295"),
        ("１", "is not a seed"),  # a full-width digit: isdigit() but not ASCII
    ],
)
def test_bad_seeds_are_refused(text: str, says: str) -> None:
    with pytest.raises(BadInput, match="--seeds") as err:
        parse_seeds(text)
    assert says in err.value.message


def test_values_split_at_top_level_commas_and_read_as_toml() -> None:
    assert split_values("8,12, 16") == ["8", "12", "16"]
    assert split_values('[11, 21],[5,9],"a,b"') == ["[11, 21]", "[5,9]", '"a,b"']
    assert [parse_value(v) for v in ("8", "0.01", "true", "[11, 21]", '"x"', "all", "08:00")] == [
        8,
        0.01,
        True,
        [11, 21],
        "x",
        "all",
        "08:00",
    ]


def test_keys_walk_tables_and_lists() -> None:
    assert parse_key("cabinets[0].stock[2].par") == ("cabinets", 0, "stock", 2, "par")
    data: dict = {"cabinets": [{"stock": [{}, {}, {"par": 1}]}]}
    set_value(data, "cabinets[0].stock[2].par", 8)
    set_value(data, "faults.rates.lock_jammed", 0.01)  # no [faults] table in the file: made
    assert data["cabinets"][0]["stock"][2]["par"] == 8
    assert data["faults"] == {"rates": {"lock_jammed": 0.01}}
    with pytest.raises(BadInput, match=r"cabinets\[3\] does not exist \(the file has 1 entry"):
        set_value(data, "cabinets[3].id", "X")
    with pytest.raises(BadInput, match="is not a key"):
        parse_key("cabinets..par")


def test_plan_is_every_combination_times_every_seed() -> None:
    plan = plan_sweep(
        WARD,
        "1..3",
        ["cabinets[0].stock[2].par=15,20", "faults.rates.lock_jammed=0,0.5"],
        days=0.5,
    )
    assert plan.total == 12 and len(plan.combos) == 4
    tasks = plan.tasks()
    assert [t.run for t in tasks] == list(range(12))
    assert {(t.params, t.seed) for t in tasks} == {
        ((("cabinets[0].stock[2].par", par), ("faults.rates.lock_jammed", rate)), seed)
        for par in (15, 20)
        for rate in (0, 0.5)
        for seed in (1, 2, 3)
    }
    assert all(t.days == 0.5 and t.scenario == str(WARD.resolve()) for t in tasks)


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (["cabinets[0].stock[2].parr=1"], "cabinets[0].stock[2].parr: unknown key"),
        (["nurses.take_ss=5"], "nurses.take_ss: unknown key"),
        (["cabinets[0].stock[2].par=x"], "cabinets[0].stock[2].par=x: cabinets[0].stock[2].par"),
        (["cabinets[0].stock[2].par=0"], "greater than or equal to 1"),
        (["cabinets[0].stock[2].par=31"], "par 31, max 30"),
        (["cabinets[0].stock[99].par=1"], "cabinets[0].stock[99] does not exist"),
        (["faults.rates.lock_jamed=0.1"], "(got 'lock_jamed')"),
        (["faults.rates.lock_jammed=0,101"], "fault rates are 0..100"),
        (["nurses.count_back=all,some"], "--set nurses.count_back=some:"),
        (["cabinets[0].profile=no-such-profile"], "profile 'no-such-profile'"),
        (["cabinets[0].stock[2].item=00000000000000"], "no item '00000000000000'"),
        (["seed=1,2"], "seeds are swept with --seeds"),
        (["faults.watch_s=60,120"], "faults.watch_s: no longer used"),
        (["par"], "write KEY=VALUE"),
        (["nurses.take_s=5,"], "an empty value"),
        (["nurses.take_s=5,5"], "a value is given twice"),
        (["nurses.take_s=5", "nurses.take_s=6"], "given twice"),
        # each value fits the file alone; together they clash: the combination is named
        (
            ["cabinets[0].stock[2].par=25", "cabinets[0].stock[2].max=22,40"],
            "par=25 cabinets[0].stock[2].max=22: cabinets[0].stock[2]: levels",
        ),
    ],
)
def test_bad_set_is_refused_naming_it(sets: list[str], says: str) -> None:
    with pytest.raises(BadInput) as err:
        plan_sweep(WARD, "1..2", sets)
    assert says in err.value.message
    assert "\n" not in err.value.message


def test_clashing_values_pass_when_they_fit_together() -> None:
    """par=35 is above the file's max (30) alone, but not with max=40 set beside it."""
    plan = plan_sweep(WARD, "1", ["cabinets[0].stock[2].par=35", "cabinets[0].stock[2].max=40"])
    assert plan.total == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--seeds", "5..1"], "--seeds 5..1: the range runs backwards"),
        (["--seeds", "1..2", "--set", "nurses.take_ss=5"], "nurses.take_ss: unknown key"),
        (["--seeds", "1", "--set", "faults.watch_s=60"], "faults.watch_s: no longer used"),
        (["--seeds", "1..2", "--scheduler", "localhost:8786"], "give the scheduler as tcp://"),
        (["--seeds", "1..2", "--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "--workers"),
        (["--seeds", "1", "--scheduler", "tcp://127.0.0.1:9"], "no Dask scheduler answers"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "adc", "sim", "sweep", str(WARD), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing ran, nothing was written


def test_too_many_runs_are_refused_before_they_are_made() -> None:
    values = ",".join(str(v) for v in range(1, 401))
    with pytest.raises(BadInput, match=r"160,000 combinations × 1 seeds: more than 100,000 runs"):
        plan_sweep(WARD, "1", [f"nurses.take_s={values}", f"service.repair_min={values}"])


def test_an_old_file_with_faults_watch_s_is_refused_saying_why(tmp_path: Path) -> None:
    """`[faults] watch_s` (the old cabinet watch's period) is refused, not silently ignored: the
    station's supervision watches at the station's rates."""
    old = tmp_path / "old.toml"
    old.write_text(WARD.read_text(encoding="utf-8") + "\n[faults]\nwatch_s = 300\n", "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "adc", "sim", "run", str(old), "--days", "0.01"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "faults.watch_s" in done.stderr and "no longer used" in done.stderr
    assert "Traceback" not in done.stderr
