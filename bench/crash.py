"""Crash bench (issue 21): `adc` killed hundreds of times at random moments; what the database says.

The harness of tests/hostile/test_crash.py (tests/hostile/crashkit.py: what is killed, when, and
what is checked after every kill), at scale: `--kills N` SIGKILLs (default 200), three quarters
on chains of scripted restock sessions (10 a chain, each chain with one SIGTERM or SIGHUP as
well), a quarter on `adc sim run` processes of a small ward day (each on a fresh file; every
one followed by `adc diag sensors --cabinet W1` as the next start, and `adc audit verify`
where an access was left open). Prints: kills, kills with an access open, audit failures,
invariant failures, recovery failures, wall time. The goal is 0, 0 and 0.

Run: .venv/bin/python bench/crash.py [--kills N] [--seed S] [--workers W] [--keep DIR]
Not a test: it prints its figures (and the first problems, if any) and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hostile.crashkit import AUDIT, INVARIANT, RECOVERY, run_campaign

CHAIN = 10  # SIGKILLs per restock chain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs in all (default 200)")
    parser.add_argument("--seed", type=int, default=2121)
    parser.add_argument("--workers", type=int, default=2, help="processes killed at once")
    parser.add_argument("--lines", type=int, default=24, help="lines per restock script")
    parser.add_argument("--days", type=float, default=0.5, help="simulated days per sim run")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()

    chains = max(1, math.ceil(args.kills * 3 / 4 / CHAIN))
    sim = max(0, args.kills - chains * CHAIN)
    stops = ["SIGTERM", "SIGHUP"]

    def plan(chain: int) -> list[str]:
        return ["SIGKILL"] * (CHAIN // 2) + [stops[chain % 2]] + ["SIGKILL"] * (CHAIN - CHAIN // 2)

    with tempfile.TemporaryDirectory(prefix="adc-crash-") as tmp:
        work = args.keep or Path(tmp)
        tally, info = run_campaign(
            work,
            seed=args.seed,
            chains=chains,
            chain_plan=plan,
            sim_kill_count=sim,
            sim_jobs=max(1, args.workers),
            workers=args.workers,
            lines=args.lines,
            days=args.days,
            cli_next_start="always",
            cli_audit=True,
        )
    summary = tally.summary()
    print(f"crash bench: {chains} restock chains x {CHAIN} kills + {sim} sim runs, "
          f"{args.workers} at once, seed {args.seed}")  # fmt: skip
    width = max(len(k) for k in [*summary, *info])
    for key, value in {**summary, **info}.items():
        print(f"  {key:<{width}}  {value}")
    failed = False
    for category in (AUDIT, INVARIANT, RECOVERY):
        for problem in tally.problems[category][:10]:
            failed = True
            print(f"  {category} failure: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
