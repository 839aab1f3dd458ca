"""Statistics of a sweep: every numeric KPI of every finished run, summarised per parameter
combination (n, mean, sample standard deviation, 95% confidence interval of the mean, min, max).

The confidence interval is Student's t (mean ± t(0.975, n-1) · s/√n): a sweep is often 5 or 10
seeds, where the normal 1.96 would claim too much. The t quantile is computed here (regularised
incomplete beta and bisection) rather than pulled from scipy, which adc does not depend on.

A KPI a run does not report (an item that never ran out has no `stock_outs.by_item` entry; a fault
kind never detected has no mean time to detect) counts as missing, not as zero: `n` says how many
runs had it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

SKIPPED = ("seed",)  # numeric, but the run's identity, not a result


def numeric_kpis(kpis: dict[str, Any], prefix: str = "") -> dict[str, float | int]:
    """The KPI tree flattened to dotted keys, numbers only (`removals.recorded` → 118)."""
    out: dict[str, float | int] = {}
    for key, value in kpis.items():
        name = f"{prefix}{key}"
        if not prefix and key in SKIPPED:
            continue
        if isinstance(value, dict):
            out.update(numeric_kpis(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p (0.5 < p < 1), by bisection to 1e-12."""
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


def describe(values: list[float]) -> dict[str, float | int | None]:
    """n, mean, std (n-1), 95% CI of the mean, min, max; std and CI are None for one value."""
    n = len(values)
    mean = math.fsum(values) / n
    if n > 1:
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        std = low = high = None
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "ci95_low": low,
        "ci95_high": high,
        "min": min(values),
        "max": max(values),
    }


STATS = ("n", "mean", "std", "ci95_low", "ci95_high", "min", "max")


def summarise(rows: Iterable[dict[str, Any]], combos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per parameter combination (in sweep order): its runs, how many failed, and the
    statistics of each numeric KPI over its successful runs."""
    values: list[dict[str, list[float]]] = [{} for _ in combos]
    counts = [{"runs": 0, "ok": 0, "failed": 0} for _ in combos]
    for row in sorted(rows, key=lambda r: r["run"]):
        count = counts[row["combo"]]
        count["runs"] += 1
        if row["status"] != "ok":
            count["failed"] += 1
            continue
        count["ok"] += 1
        for key, value in numeric_kpis(row["kpis"]).items():
            values[row["combo"]].setdefault(key, []).append(value)
    return [
        {
            "combo": index,
            "params": params,
            **counts[index],
            "kpis": {key: describe(v) for key, v in sorted(values[index].items())},
        }
        for index, params in enumerate(combos)
    ]


__all__ = ["STATS", "describe", "numeric_kpis", "summarise", "t_cdf", "t_quantile"]
