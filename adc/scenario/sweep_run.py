"""One run of a sweep, in whatever process runs it (a local pool worker or a Dask worker): the
same `run_scenario` that `adc sim run` calls, with its own in-memory database, turned into a row.

A run never raises: whatever goes wrong (a rule the scenario trips, an exception in the
simulation, an audit chain that does not verify) becomes a failed row with its error, so one bad
run does not end a sweep of a hundred. The row depends only on the scenario, the parameter values
and the seed; where it ran and how long it took are kept apart (`wall_s`, `cpu_s`, `worker`), so rows from
one worker, many workers or a cluster compare equal on everything else.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

from adc.scenario.loader import LoadedScenario
from adc.scenario.sweep_spec import RunTask, load_with

# Fields of a row that say where and how fast it ran, not what it found.
VOLATILE = ("wall_s", "cpu_s", "worker")

_loaded: dict[tuple[str, str], LoadedScenario] = {}
# One run at a time per process: a Dask worker started with several threads would otherwise run
# two at once, and a run swaps module state (the PIN hash cost of its throwaway users). Threads
# would not run them faster anyway: a run is pure Python and holds the GIL.
_one_at_a_time = threading.Lock()


def _scenario(task: RunTask) -> LoadedScenario:
    """Loaded once per process and parameter combination (a worker runs many seeds of each)."""
    key = (task.scenario, json.dumps(task.params, default=str))  # a value may be a list
    if key not in _loaded:
        _loaded[key] = load_with(task.scenario, task.params)
    return _loaded[key]


def run_task(task: RunTask) -> dict[str, Any]:
    """Run one (parameters, seed) and return its row (status "ok" or "failed" with the error)."""
    from adc.errors import AdcError
    from adc.scenario.runner import run_scenario

    began, cpu = time.perf_counter(), time.process_time()
    row: dict[str, Any] = {
        "run": task.run,
        "combo": task.combo,
        "seed": task.seed,
        "params": dict(task.params),
        "status": "ok",
        "error": None,
        "kpis": None,
    }
    try:
        with _one_at_a_time:
            result = run_scenario(_scenario(task), seed=task.seed, days=task.days)
        row["kpis"] = result.kpis
        audit = result.kpis.get("audit", {})
        if not audit.get("verified", False):
            row["status"] = "failed"
            row["error"] = f"audit chain of the run does not verify: {audit.get('error')}"
    except AdcError as err:
        row["status"], row["error"] = "failed", f"{type(err).__name__}: {err.message}"
    except Exception as err:  # a bug or a broken run: recorded, the sweep goes on
        row["status"], row["error"] = "failed", f"{type(err).__name__}: {err}"
    row["wall_s"] = round(time.perf_counter() - began, 3)
    row["cpu_s"] = round(time.process_time() - cpu, 3)  # below wall_s: the core was shared
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """The row without where and how fast it ran: what must not depend on the worker."""
    return {k: v for k, v in row.items() if k not in VOLATILE}


__all__ = ["VOLATILE", "comparable", "run_task"]
