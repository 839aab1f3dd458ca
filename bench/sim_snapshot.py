"""Snapshot cost of the in-process sim backend: how many whole-cabinet snapshots per wall second.

A scenario's cabinet watch takes a snapshot every few simulated seconds, so this is the hardware
simulation's share of a scenario's wall time. For each profile: N snapshots of `sim:PROFILE`, with
`--step` simulated seconds between them (so every snapshot falls in a new load-cell noise sample),
timed directly; then the same run under cProfile, to give the Python function calls per snapshot
in `adc/sim` and `adc/drivers/sim.py` and their own time (tottime) per snapshot.

Run: .venv/bin/python bench/sim_snapshot.py [--snapshots N] [--step S] [PROFILE ...].
Prints absolute figures (wall time: the best of 5 runs); compare them across commits by hand. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from adc.drivers.registry import open_backend
from adc.drivers.sim import SimDriver

OURS = ("/adc/sim/", "/adc/drivers/sim.py")


def take(driver: SimDriver, n: int, step: float) -> None:
    for _ in range(n):
        driver.snapshot()
        driver.advance(step)


def timed(profile: str, n: int, step: float, repeats: int = 5) -> float:
    """Wall seconds for n snapshots (the `advance` between them included: it is near free), the
    best of `repeats` runs, so a busy machine disturbs the figure less."""
    best = float("inf")
    for _ in range(repeats):
        driver = open_backend(f"sim:{profile}")
        assert isinstance(driver, SimDriver)
        take(driver, 10, step)  # warm-up
        began = time.perf_counter()
        take(driver, n, step)
        best = min(best, time.perf_counter() - began)
    return best


def profiled(profile: str, n: int, step: float) -> tuple[int, float]:
    """(primitive calls, tottime seconds) spent in the sim's own files over n snapshots."""
    driver = open_backend(f"sim:{profile}")
    assert isinstance(driver, SimDriver)
    profiler = cProfile.Profile()
    profiler.enable()
    take(driver, n, step)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    calls, tottime = 0, 0.0
    for (filename, _, _), (primitive, _, own, _, _) in stats.items():
        if any(part in filename for part in OURS):
            calls += primitive
            tottime += own
    return calls, tottime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="*", default=["tcp-6drawer", "rs485-2bus"])
    parser.add_argument("--snapshots", type=int, default=2000)
    parser.add_argument("--step", type=float, default=5.0)
    args = parser.parse_args()
    n = args.snapshots
    for profile in args.profiles:
        wall = timed(profile, n, args.step)
        calls, own = profiled(profile, n, args.step)
        print(
            f"sim:{profile:<14} {n / wall:10,.0f} snapshots/s ({wall / n * 1e6:7.1f} µs each); "
            f"under cProfile: {calls / n:7.1f} calls and {own / n * 1e6:7.1f} µs tottime "
            f"per snapshot in adc/sim + adc/drivers/sim.py"
        )


if __name__ == "__main__":
    main()
