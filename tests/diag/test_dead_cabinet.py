"""A cabinet that does not answer is said to be dead, and the watch fits an 80-column terminal
(issue 20: `diag watch --once` showed every point as `?` and exited 0, `diag stats` said "FAIL
(offline) … 2 requests, 0 timeouts, 0 errors", the title read "at 3827.7 s", and at 80 columns
the bus table became a column of `devi…`)."""

from __future__ import annotations

import socket

from tests.conftest import run_adc


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_watch_of_a_dead_cabinet_fails_and_says_so() -> None:
    uri = f"modbus-tcp://127.0.0.1:{_closed_port()}"
    run = run_adc(
        "diag", "watch", "--once", "--backend", uri, "--profile", "tcp-6drawer",
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "no device answered" in run.stderr and "offline or not connected" in run.stderr
    assert " at " not in run.stdout.splitlines()[0]  # no bare seconds counter in the title
    assert "refresh 1" in run.stdout
    for line in run.stdout.splitlines():
        assert len(line) <= 80, line
    assert "devi…" not in run.stdout and "dio1" in run.stdout and "lc2" in run.stdout
    assert "last error of" in run.stdout


def test_stats_of_a_dead_cabinet_says_nothing_was_reached() -> None:
    uri = f"modbus-tcp://127.0.0.1:{_closed_port()}"
    run = run_adc(
        "diag", "stats", "--polls", "2", "--backend", uri, "--profile", "tcp-6drawer", "--json"
    )
    assert run.returncode == 1
    assert "never reached" in run.stdout
    assert "0 timeouts, 0 errors" not in run.stdout
