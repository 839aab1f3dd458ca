"""The sweep's statistics against numbers computed here from first principles."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from adc.scenario.sweep_stats import describe, numeric_kpis, summarise, t_cdf, t_quantile

# Student's t 0.975 quantiles as printed in statistical tables (e.g. NIST/SEMATECH 1.3.6.7.2).
TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045, 100: 1.984}


@pytest.mark.parametrize(("df", "t"), sorted(TABLE.items()))
def test_t_quantile_matches_the_table(df: int, t: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(t, abs=5e-4)


def test_t_cdf_is_the_closed_form_for_one_and_two_degrees() -> None:
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 10.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_t_approaches_the_normal_for_many_degrees() -> None:
    z = statistics.NormalDist().inv_cdf(0.975)
    assert t_quantile(0.975, 100_000) == pytest.approx(z, abs=1e-4)


def test_describe_against_the_statistics_module() -> None:
    rng = random.Random(5)
    values = [rng.gauss(10, 3) for _ in range(12)]
    got = describe(values)
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(0.975, 11) * sd / math.sqrt(12)
    assert got["n"] == 12
    assert got["mean"] == pytest.approx(mean, rel=1e-12)
    assert got["std"] == pytest.approx(sd, rel=1e-12)
    assert got["ci95_low"] == pytest.approx(mean - half, rel=1e-12)
    assert got["ci95_high"] == pytest.approx(mean + half, rel=1e-12)
    assert (got["min"], got["max"]) == (min(values), max(values))


def test_one_value_has_no_spread() -> None:
    assert describe([4.0]) == {
        "n": 1,
        "mean": 4.0,
        "std": None,
        "ci95_low": None,
        "ci95_high": None,
        "min": 4.0,
        "max": 4.0,
    }


def test_numeric_kpis_flatten_numbers_only() -> None:
    kpis = {
        "scenario": "w",
        "seed": 3,
        "removals": {"recorded": 5, "mean_wait_s": 1.5},
        "audit": {"verified": True, "entries": 9},
        "by_item": {"A 1 mg": {"hours_out": 2.0}},
    }
    assert numeric_kpis(kpis) == {
        "removals.recorded": 5,
        "removals.mean_wait_s": 1.5,
        "audit.entries": 9,
        "by_item.A 1 mg.hours_out": 2.0,
    }


def test_summarise_groups_by_combination_and_skips_failed_runs() -> None:
    rows = [
        {"run": 0, "combo": 0, "status": "ok", "kpis": {"x": 1, "y": {"z": 2.0}}},
        {"run": 1, "combo": 0, "status": "ok", "kpis": {"x": 3}},
        {"run": 2, "combo": 1, "status": "failed", "kpis": None},
        {"run": 3, "combo": 1, "status": "ok", "kpis": {"x": 10}},
    ]
    got = summarise(rows, [{"k": 1}, {"k": 2}])
    assert [(e["runs"], e["ok"], e["failed"]) for e in got] == [(2, 2, 0), (2, 1, 1)]
    assert got[0]["kpis"]["x"]["mean"] == 2 and got[0]["kpis"]["x"]["std"] == pytest.approx(
        math.sqrt(2)
    )
    assert got[0]["kpis"]["y.z"]["n"] == 1  # missing in run 1: not counted as a zero
    assert got[1]["kpis"]["x"]["mean"] == 10 and got[1]["params"] == {"k": 2}
