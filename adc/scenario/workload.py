"""The demand model: when nurses come to a cabinet, and for which pocket.

Removals from a cabinet are a non-homogeneous Poisson process. Each stocked pocket has a mean
rate (`demand_per_day`); the rate varies over the day as `hourly` weights (the ward's rhythm) plus
medication-pass peaks (`med_pass` times, `med_pass_minutes` wide, carrying `med_pass_share` of the
day's removals). The day profile is normalised to mean 1, so `demand_per_day` stays the mean number
of removals a day whatever the shape. Arrivals are drawn by thinning (Lewis and Shedler): candidates
at the peak rate, each kept with probability rate(t) / peak. The merged process of a cabinet picks
the pocket of each arrival in proportion to the pockets' rates, which is the same as one process
per pocket and cheaper.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from adc.scenario.model import DemandSpec, minutes_of_day

MINUTES = 1440


def day_profile(demand: DemandSpec) -> list[float]:
    """Rate multiplier for each minute of the day; the mean over the day is 1."""
    hourly_mean = sum(demand.hourly) / 24
    base = [demand.hourly[m // 60] / hourly_mean for m in range(MINUTES)]
    share = demand.med_pass_share if demand.med_pass else 0.0
    peaks = [0.0] * MINUTES
    half = demand.med_pass_minutes / 2
    for text in demand.med_pass:
        centre = minutes_of_day(text)
        for offset in range(-math.ceil(half), math.ceil(half) + 1):
            # a triangular peak: busiest at the pass time, fading to its edges
            weight = max(0.0, 1.0 - abs(offset) / half)
            peaks[(centre + offset) % MINUTES] += weight
    peak_mean = sum(peaks) / MINUTES
    if peak_mean == 0:
        return base
    return [(1 - share) * b + share * p / peak_mean for b, p in zip(base, peaks, strict=True)]


@dataclass(frozen=True)
class Demand:
    """One removal wanted: when (SimPy seconds) and from which pocket."""

    at: float
    pocket: str


def arrivals(
    rng: random.Random,
    rates: dict[str, float],
    profile: list[float],
    horizon_s: float,
    day_offset_s: float = 0.0,
) -> Iterator[Demand]:
    """Removals of one cabinet from time 0 to `horizon_s`; `rates` are per pocket per day.

    `day_offset_s` is where SimPy time 0 falls in the day (0: at midnight).
    """
    pockets = [p for p, r in rates.items() if r > 0]
    total = sum(rates[p] for p in pockets)
    if total <= 0:
        return
    cumulative = []
    running = 0.0
    for pocket in pockets:
        running += rates[pocket]
        cumulative.append(running)
    peak = max(profile)
    peak_per_s = total * peak / 86400.0
    t = 0.0
    while True:
        t += rng.expovariate(peak_per_s)
        if t >= horizon_s:
            return
        minute = int(((t + day_offset_s) % 86400.0) // 60)
        if rng.random() * peak <= profile[minute]:
            index = bisect.bisect_right(cumulative, rng.random() * total)
            yield Demand(t, pockets[min(index, len(pockets) - 1)])
