"""`adc sim sweep`: every (parameter combination × seed) of a scenario, each a normal `sim run`
with its own in-memory database, on a local process pool or a Dask cluster; rows written as runs
finish, then per-combination statistics and plots.

The pieces: `sweep_spec` (what to run, checked first), `sweep_run` (one run → one row, in the
worker), `sweep_exec` (where runs execute), `sweep_out` (the files), `sweep_stats` (the
statistics), `sweep_plots` (PNGs). This module joins them for the command; it knows nothing of
the terminal beyond the `on_row` callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adc.errors import BadInput
from adc.scenario.sweep_exec import run_dask, run_local
from adc.scenario.sweep_out import SweepFiles
from adc.scenario.sweep_spec import Sweep


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    workers: int = 1,
    client: Any = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run the sweep into `out`. On KeyboardInterrupt the finished runs are written (runs.csv,
    summaries) and the interrupt is raised again with the result on it (`err.sweep_result`)."""
    try:
        files = SweepFiles(out, sweep)
    except OSError as err:
        raise _out_error(out, err) from None
    result = SweepResult(files.rows)
    tasks = sweep.tasks()
    rows: Generator[dict[str, Any], None, None] = (
        run_dask(tasks, client) if client is not None else run_local(tasks, workers)
    )
    began = time.perf_counter()
    try:
        for row in rows:
            try:
                files.add(row)
            except OSError as err:  # the output directory: disk full, removed under us
                raise _out_error(out, err) from None
            if on_row is not None:
                on_row(row)
    except KeyboardInterrupt as err:
        rows.close()  # the executor cancels and ends what is still running
        result.interrupted = True
        result.wall_s = time.perf_counter() - began
        result.summary = files.finish(interrupted=True)
        err.sweep_result = result  # type: ignore[attr-defined]
        raise
    finally:
        rows.close()  # on any way out: no worker outlives the sweep
    result.wall_s = time.perf_counter() - began
    try:
        result.summary = files.finish(interrupted=False)
    except OSError as err:
        raise _out_error(out, err) from None
    return result


def _out_error(out: Path, err: OSError) -> BadInput:
    return BadInput(f"--out {str(out)[:60]}: cannot write there: {err.strerror or err}")


__all__ = ["SweepResult", "run_sweep"]
