"""Where a sweep's runs execute: a local process pool, or a Dask distributed cluster.

Both hand back rows as runs finish (any order; a row carries its run number). Stopping early —
Ctrl-C, SIGTERM, the caller closing the iterator — cancels what has not started and ends what is
running: the local pool's workers are terminated (a run in progress holds nothing but its own
in-memory database), the cluster's futures are cancelled and the client closed. A worker lost
mid-run becomes a failed row, not the end of the sweep.

Local workers start by `forkserver` (not `fork`: the progress bar's thread is running in the
parent) and ignore the stop signals the terminal sends the whole process group, so a Ctrl-C is
handled once, by the parent. Dask is imported only here and only with `--scheduler`
(`pip install 'adc[cluster]'`).
"""

from __future__ import annotations

import multiprocessing
import re
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from adc.errors import BadInput
from adc.scenario.sweep_run import run_task
from adc.scenario.sweep_spec import RunTask

CONNECT_TIMEOUT_S = 5.0
_ADDRESS = re.compile(r"^(tcp|tls)://\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")


def _failed(task: RunTask, error: str) -> dict[str, Any]:
    return {
        "run": task.run,
        "combo": task.combo,
        "seed": task.seed,
        "params": dict(task.params),
        "status": "failed",
        "error": error,
        "kpis": None,
        "wall_s": 0.0,
        "cpu_s": 0.0,
        "worker": None,
    }


_started: Any = None  # in a local worker: where it says which run it begins


def _worker_init(started: Any) -> None:
    global _started
    _started = started
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def _tracked(task: RunTask) -> dict[str, Any]:
    """Say the run begins (written to the pipe at once: it must survive the process dying next),
    then run it."""
    _started.put(task.run)
    return run_task(task)


def _context() -> Any:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports the simulation once; each worker forks from it ready to run.
    context.set_forkserver_preload(
        ["adc.scenario.sweep_exec", "adc.scenario.sweep_run", "adc.scenario.runner"]
    )
    return context


def run_local(tasks: list[RunTask], workers: int) -> Iterator[dict[str, Any]]:
    """Rows of `tasks` run on `workers` local processes, as they finish.

    A worker process that dies (killed, out of memory, a crash in native code) breaks the whole
    pool: every run not finished gets BrokenProcessPool. The runs that had not begun go back in
    the queue; those that had are suspects, and each runs again alone in a one-worker pool, where
    a death can only be its own: that run is a failed row, the others' rows are as if nothing
    happened."""
    queue, suspects = list(tasks), []
    while queue or suspects:
        if suspects:
            suspects, queue_alone = [], suspects
            again: list[RunTask] = []
            yield from _one_pool(queue_alone, 1, again, None)
            suspects = again  # those not reached before the pool broke
        else:
            again, suspect = [], []
            yield from _one_pool(queue, workers, again, suspect)
            queue, suspects = again, suspect


def _one_pool(
    tasks: list[RunTask],
    workers: int,
    again: list[RunTask],
    suspects: list[RunTask] | None,
) -> Iterator[dict[str, Any]]:
    """Run `tasks` in one pool. After a worker died: runs never begun go to `again`; runs begun
    go to `suspects`, or (with `suspects` None: a one-worker pool) are the culprit's failed row."""
    context = _context()
    started_queue = context.SimpleQueue()
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(tasks))),
        mp_context=context,
        initializer=_worker_init,
        initargs=(started_queue,),
    )
    futures: dict[Future[dict[str, Any]], RunTask] = {}
    pending: set[Future[dict[str, Any]]] = set()
    started: set[int] = set()
    unstarted: list[RunTask] = []
    rows = 0
    broken: BaseException | None = None
    finished = False

    def drain() -> None:
        while not started_queue.empty():
            started.add(started_queue.get())

    try:
        futures = {pool.submit(_tracked, task): task for task in tasks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            drain()  # also keeps the pipe from filling on a long sweep
            for future in sorted(done, key=lambda f: futures[f].run):
                task = futures[future]
                error = future.exception()
                if error is None:
                    rows += 1
                    yield future.result()
                elif not isinstance(error, BrokenProcessPool):
                    rows += 1
                    yield _failed(task, f"{type(error).__name__}: {error}")
                elif task.run not in started:
                    broken = error
                    unstarted.append(task)  # never began: innocent
                elif suspects is not None:
                    suspects.append(task)
                else:
                    rows += 1
                    yield _failed(task, f"the worker process died under this run ({error})")
        if broken is not None and not rows and not started:
            # Workers die before any run begins (an install broken for them): no retry helps.
            for task in unstarted:
                yield _failed(task, f"worker processes die before a run begins ({broken})")
        else:
            again.extend(unstarted)
        finished = True
    finally:
        if not finished:
            for future in pending:
                future.cancel()
            # Python 3.14 has terminate_workers(); before it the processes are only reachable here.
            for process in list(getattr(pool, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        started_queue.close()


def check_address(address: str) -> str:
    if not _ADDRESS.match(address):
        raise BadInput(f"--scheduler {address[:60]!r}: give the scheduler as tcp://HOST:PORT")
    return address


def connect(address: str) -> Any:
    """A Dask client of the scheduler at `address`; BadInput (exit 2) when none answers."""
    check_address(address)
    try:
        from distributed import Client
    except ImportError:
        raise BadInput("--scheduler needs Dask: pip install 'adc[cluster]'") from None
    import logging

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a refused connection is our one line, not its log
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as err:
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        raise BadInput(f"--scheduler {address}: no Dask scheduler answers ({reason})") from None
    finally:
        quiet.setLevel(level)


def run_dask(tasks: list[RunTask], client: Any) -> Iterator[dict[str, Any]]:
    """Rows of `tasks` run on the cluster behind `client`, as they finish."""
    from distributed import as_completed

    futures = client.map(run_task, tasks, pure=False)  # unique keys: two sweeps never share one
    by_key = {future.key: task for future, task in zip(futures, tasks, strict=True)}
    finished = False
    try:
        for future in as_completed(futures, loop=client.loop):
            task = by_key[future.key]
            if future.status == "finished":
                yield future.result()
            else:  # the run's workers died (KilledWorker) or the task could not start there
                error = future.exception()
                yield _failed(task, f"{type(error).__name__}: {error}")
        finished = True
    finally:
        if not finished:
            client.cancel(futures, force=True)


__all__ = ["check_address", "connect", "run_dask", "run_local"]
