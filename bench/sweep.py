"""How `adc sim sweep` scales: the wall time of the same runs on 1 and on N local workers, and on
a Dask LocalCluster of N single-threaded worker processes; ratios against the 1-worker run.

    .venv/bin/python bench/sweep.py [--runs 8] [--workers 2] [--days 0.5] [--scenario PATH]

Each run is a whole `sim run` of the scenario (own in-memory database). The pool's wall time
includes starting its workers (as a user waits for it); the cluster's is measured on a running
cluster (its start-up is printed apart). The rows of all three must be equal (checked): a run
depends only on its seed and parameters. Figures depend on what else the machine runs: the load
average is printed before and after, and `os.cpu_count()` with it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from adc.scenario.sweep_exec import run_dask, run_local
from adc.scenario.sweep_run import comparable
from adc.scenario.sweep_spec import plan_sweep

ROOT = Path(__file__).resolve().parents[1]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((json.loads(json.dumps(comparable(r))) for r in rows), key=lambda r: r["run"])


def _report(label: str, wall: float, rows: list[dict[str, Any]], base: float | None) -> None:
    per_run = sum(r["wall_s"] for r in rows) / len(rows)
    cpu = sum(r["cpu_s"] for r in rows) / len(rows)
    ratio = f"  speed-up {base / wall:4.2f}x" if base else ""
    print(
        f"{label:<28} {wall:6.2f} s wall  {len(rows) / wall:5.2f} runs/s  (a run: {per_run:.2f} s "
        f"wall, {cpu:.2f} s CPU: {cpu / per_run:4.0%} of a core){ratio}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--days", type=float, default=0.5)
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "ward-7day.toml")
    parser.add_argument("--no-dask", action="store_true", help="Skip the LocalCluster run.")
    args = parser.parse_args()

    plan = plan_sweep(args.scenario, f"1..{args.runs}", [], args.days)
    tasks = plan.tasks()
    print(
        f"{plan.name}, {args.days:g} day(s) a run, {len(tasks)} runs; {os.cpu_count()} cores; "
        f"{_load()}",
        flush=True,
    )
    began = time.perf_counter()
    one = list(run_local(tasks, 1))
    base = time.perf_counter() - began
    _report("pool, 1 worker", base, one, None)

    began = time.perf_counter()
    many = list(run_local(tasks, args.workers))
    _report(f"pool, {args.workers} workers", time.perf_counter() - began, many, base)
    assert _same(many) == _same(one), "rows differ between 1 and N workers"

    if not args.no_dask:
        from distributed import Client, LocalCluster

        began = time.perf_counter()
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            print(
                f"(LocalCluster of {args.workers} started in {time.perf_counter() - began:.1f} s)"
            )
            began = time.perf_counter()
            remote = list(run_dask(tasks, client))
            _report(
                f"LocalCluster, {args.workers} workers", time.perf_counter() - began, remote, base
            )
        assert _same(remote) == _same(one), "rows differ between the pool and the cluster"
    print(f"rows identical across executors; after: {_load()}")


if __name__ == "__main__":
    main()
