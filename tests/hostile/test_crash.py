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
from pathlib import Path

from tests.hostile.crashkit import AUDIT, INVARIANT, RECOVERY, run_campaign

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
