"""`adc sim sweep` runs: a short scenario over 4 seeds × 2 values gives the same rows on 1 worker,
2 workers and a Dask LocalCluster; a failing run is recorded and the sweep goes on; the files and
the summary hold what the rows say; Ctrl-C keeps the finished runs."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adc.scenario.sweep_exec import run_dask, run_local
from adc.scenario.sweep_run import comparable
from adc.scenario.sweep_spec import plan_sweep
from adc.scenario.sweep_stats import t_quantile
from tests.scenarios.conftest import ROOT, WARD_STOCK

SEEDS = "1..4"
PAR = "cabinets[0].stock[4].par=10,25"  # D6-P1: a busy pocket's par level, two designs


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quarter day of one ward cabinet: a run takes well under a second."""
    path = tmp_path_factory.mktemp("sweep") / "short.toml"
    body = WARD_STOCK.replace("DEMAND", "12")
    path.write_text(f'spec = "1.0"\nname = "short"\nseed = 1\ndays = 0.25\n{body}')
    return path


@pytest.fixture(scope="module")
def one_worker_rows(scenario: Path) -> list[dict[str, Any]]:
    plan = plan_sweep(scenario, SEEDS, [PAR])
    return _normal(run_local(plan.tasks(), workers=1))


def _normal(rows: Any) -> list[dict[str, Any]]:
    """Rows as JSON reads them back, in run order, without where and how fast they ran."""
    return sorted((json.loads(json.dumps(comparable(r))) for r in rows), key=lambda r: r["run"])


def _sweep(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adc", "sim", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_combination_and_seed_ran_once(one_worker_rows: list[dict[str, Any]]) -> None:
    assert [r["status"] for r in one_worker_rows] == ["ok"] * 8
    got = {(r["params"]["cabinets[0].stock[4].par"], r["seed"]) for r in one_worker_rows}
    assert got == {(par, seed) for par in (10, 25) for seed in (1, 2, 3, 4)}
    assert all(r["kpis"]["seed"] == r["seed"] for r in one_worker_rows)
    # the swept value reached the run: the go-live loads the pocket to its par
    for row in one_worker_rows:
        assert row["kpis"]["transactions"]["load"] == 5
    by_seed = {r["seed"]: r for r in one_worker_rows if r["combo"] == 0}
    assert len({json.dumps(r["kpis"], sort_keys=True) for r in by_seed.values()}) > 1


def test_two_workers_give_the_same_rows(
    scenario: Path, one_worker_rows: list[dict[str, Any]]
) -> None:
    plan = plan_sweep(scenario, SEEDS, [PAR])
    rows = list(run_local(plan.tasks(), workers=2))
    assert len({r["worker"] for r in rows}) == 2  # both workers did runs
    assert _normal(rows) == one_worker_rows


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_same_rows(
    scenario: Path, one_worker_rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """In process through the API, and from the command line at the cluster's tcp:// address."""
    from distributed import Client, LocalCluster

    plan = plan_sweep(scenario, SEEDS, [PAR])
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        assert _normal(run_dask(plan.tasks(), client)) == one_worker_rows
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        out = tmp_path / "dask"
        done = _sweep(str(scenario), "--seeds", SEEDS, "--set", PAR, "--scheduler", address,
                      "--out", str(out), "--no-plot")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"on Dask cluster {address}" in done.stdout
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert _normal(rows) == one_worker_rows


def test_cli_writes_rows_summary_and_plots(
    scenario: Path, one_worker_rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = _sweep(str(scenario), "--seeds", SEEDS, "--set", PAR, "--workers", "2",
                  "--out", str(out), "--plot-kpi", "removals.recorded")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "8 runs (0 failed)" in done.stdout
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert _normal(rows) == one_worker_rows

    with (out / "runs.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8
    for line, row in zip(table, one_worker_rows, strict=True):
        assert int(line["seed"]) == row["seed"] and line["status"] == "ok"
        assert int(line["cabinets[0].stock[4].par"]) == row["params"]["cabinets[0].stock[4].par"]
        assert int(line["removals.recorded"]) == row["kpis"]["removals"]["recorded"]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs_finished"] == 8 and not summary["interrupted"]
    for combo, entry in enumerate(summary["combinations"]):
        values = [r["kpis"]["removals"]["recorded"] for r in one_worker_rows if r["combo"] == combo]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        half = t_quantile(0.975, 3) * sd / math.sqrt(4)
        stats = entry["kpis"]["removals.recorded"]
        assert (entry["ok"], entry["failed"], stats["n"]) == (4, 0, 4)
        assert stats["mean"] == pytest.approx(mean)
        assert stats["std"] == pytest.approx(sd)
        assert stats["ci95_low"] == pytest.approx(mean - half)
        assert stats["ci95_high"] == pytest.approx(mean + half)
        assert (stats["min"], stats["max"]) == (min(values), max(values))
    with (out / "summary.csv").open(newline="") as f:
        lines = [r for r in csv.DictReader(f) if r["kpi"] == "removals.recorded"]
    assert [float(r["mean"]) for r in lines] == pytest.approx(
        [e["kpis"]["removals.recorded"]["mean"] for e in summary["combinations"]]
    )
    png = out / "kpi-removals.recorded.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(scenario: Path, tmp_path: Path) -> None:
    """A resolver that does not exist passes the file's checks but stops the run as it starts."""
    out = tmp_path / "out"
    done = _sweep(str(scenario), "--seeds", "1,2", "--set", "pharmacists.resolver=none,no.such:fn",
                  "--workers", "2", "--out", str(out), "--no-plot")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "2 of 4 runs failed" in done.stderr and "Traceback" not in done.stderr
    rows = sorted(
        (json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()),
        key=lambda r: r["run"],
    )
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert all("no.such:fn" in r["error"] and r["kpis"] is None for r in rows[2:])
    summary = json.loads((out / "summary.json").read_text())
    assert [(c["ok"], c["failed"]) for c in summary["combinations"]] == [(2, 0), (0, 2)]
    with (out / "runs.csv").open(newline="") as f:
        assert "no.such:fn" in list(csv.DictReader(f))[3]["error"]


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_runs_and_ends_the_workers(
    scenario: Path, tmp_path: Path
) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it."""
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adc",
            "sim",
            "sweep",
            str(scenario),
            "--seeds",
            "1..400",
            "--workers",
            "2",
            "--out",
            str(out),
            "--no-plot",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    jsonl = out / "runs.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if jsonl.exists() and jsonl.read_text().count("\n") >= 3:
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("no run finished in 120 s")
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 3 <= len(rows) < 400 and all(r["status"] == "ok" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["runs_finished"] == len(rows)
    with (out / "runs.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    for _ in range(50):  # the workers, the fork server and the resource tracker are gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the sweep outlived it")


def test_a_worker_that_dies_fails_only_its_own_runs(scenario: Path, tmp_path: Path) -> None:
    """The second design's runs kill their worker process (tests/scenarios/sweep_crash.py): each
    is a failed row; the first design's runs, in the same broken pools, still come out whole."""
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "adc",
            "sim",
            "sweep",
            str(scenario),
            "--seeds",
            "1..3",
            "--set",
            "pharmacists.resolver=none,tests.scenarios.sweep_crash:resolve",
            "--workers",
            "2",
            "--out",
            str(out),
            "--no-plot",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "ADC_TEST_SWEEP_CRASH": "1"},
    )
    assert done.returncode == 1, done.stderr
    assert "3 of 6 runs failed" in done.stderr and "Traceback" not in done.stderr
    rows = sorted(
        (json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()),
        key=lambda r: r["run"],
    )
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["failed"] * 3
    assert all("worker process died under this run" in r["error"] for r in rows[3:])


def test_list_and_date_values_run_and_are_written(scenario: Path, tmp_path: Path) -> None:
    """TOML reads `[5, 10]` as a list and `2026-03-05` as a date: both reach the run and the files."""
    from adc.scenario.sweep_out import SweepFiles
    from adc.scenario.sweep_run import run_task

    plan = plan_sweep(scenario, "3", ["start=2026-03-05", "technicians.line_s=[5, 10]"], days=0.05)
    row = run_task(plan.tasks()[0])
    assert row["status"] == "ok", row["error"]
    files = SweepFiles(tmp_path, plan)
    files.add(row)
    files.finish(interrupted=False)
    written = json.loads((tmp_path / "runs.jsonl").read_text())
    assert written["params"] == {"start": "2026-03-05", "technicians.line_s": [5, 10]}
    with (tmp_path / "runs.csv").open(newline="") as f:
        line = next(csv.DictReader(f))
    assert (line["start"], line["technicians.line_s"]) == ("2026-03-05", "[5, 10]")
