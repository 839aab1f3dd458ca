"""Crash safety (issue 21): `adc` killed at random moments leaves a database that checks out.

The harness is tests/hostile/crashkit.py (its docstring says what is killed, when, and what is
checked after each kill); bench/crash.py runs the same with hundreds of kills. Here, a CI-sized
campaign on 2 workers:
- two chains of scripted restock sessions (24 lines each) on one site each: 8 SIGKILLs, one
  SIGTERM and one SIGHUP per chain; each session's start is the next start of the one before;
- 6 `adc sim run` processes of a small ward day, each SIGKILLed on a fresh file; where an
  access was open, `adc diag sensors --cabinet W1` is the next start.
Where a kill lands depends on timing, so the numbers vary from run to run (the RNG is seeded);
what must hold after every kill does not: the audit chain verifies, stock adds up three ways,
nothing is half-written, and every access left open is flagged by the next start (its drawer
out of service, a restock of it refused, the chain verifying after the recovery).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.hostile.crashkit import AUDIT, INVARIANT, RECOVERY, ROOT, run_campaign

MIN_KILLS = 20


def chain_plan(chain: int) -> list[str]:
    stops = ["SIGTERM", "SIGHUP"] if chain % 2 == 0 else ["SIGHUP", "SIGTERM"]
    return ["SIGKILL"] * 3 + [stops[0]] + ["SIGKILL"] * 3 + [stops[1]] + ["SIGKILL"] * 2


def test_killed_at_random_moments_the_database_checks_out_and_open_accesses_are_flagged(
    tmp_path: Path,
) -> None:
    tally, info = run_campaign(
        tmp_path / "crash",
        seed=21,
        chains=2,
        chain_plan=chain_plan,
        sim_kill_count=6,
        sim_jobs=2,
        workers=2,
        lines=24,
        days=0.5,
    )
    summary = tally.summary()
    print(json.dumps({**summary, **info}, indent=1))  # shown with -s: the figures of this run
    problems = {k: v for k, v in tally.problems.items() if v}
    assert not problems.get(AUDIT), problems[AUDIT]
    assert not problems.get(INVARIANT), problems[INVARIANT]
    assert not problems.get(RECOVERY), problems[RECOVERY]
    assert summary["kills"] >= MIN_KILLS, summary
    # the interesting case happened: a process died holding an access open
    assert summary["kills_with_access_open"] >= 3, summary
    assert summary["sigterm_sighup"] >= 3, summary


HELD_IN_A_BACKGROUND_JOB = """
import os, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a non-interactive shell
from adc.session.interrupts import deferred_sigint, terminate_as_interrupt
terminate_as_interrupt()
finished = False
try:
    with deferred_sigint():  # as around an unlock pulse and the state that records it
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        finished = True
except KeyboardInterrupt:
    pass
print("whole" if finished else "cut")
"""


def test_a_sigterm_waits_for_the_critical_block_also_when_sigint_is_ignored() -> None:
    """`adc restock --script ... &` from a script starts with SIGINT ignored; a `kill PID` must
    still wait until the unlock and the state that records it (or a record) are whole."""
    result = subprocess.run(
        [sys.executable, "-c", HELD_IN_A_BACKGROUND_JOB],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.stdout.strip() == "whole", result.stdout + result.stderr
