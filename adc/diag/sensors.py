"""`adc diag sensors`: sample every bin sensor N times and judge it from the samples.

Two sources of evidence, kept apart in the reasons so an engineer can tell which spoke:
- the device's own quality flag (a weighing module's converter watchdog and motion detection:
  FAULT, UNSTABLE, OVERLOAD; `DeviceOffline` when it does not answer);
- statistics of the samples: mean, spread (max - min) and standard deviation, and the drift (the
  least-squares slope, in grams per hour, counted only when its t statistic says it is no noise).
Flags: `offline` (no answer, or a disconnected cell: no value), `stuck` (the module reports a fault
but still gives a value, or the value does not move at all), `noisy` (σ above the limit), `drifting`
(a significant slope above the limit, or UNSTABLE throughout while the spread stays small: a slow
creep the window is too short to measure), `out-of-range` (overload, below zero, above capacity),
and `count` (the count the weight implies is not the on-hand the database holds). The implied count
is the mean divided by the item's unit weight: it assumes the channel was tared with the pocket
empty (`adc diag calibrate`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from adc.diag.bench import Bench
from adc.diag.results import Check, Report, Verdict
from adc.drivers.base import DeviceOffline, DriverError, Quality, WeightReading
from adc.errors import BadInput
from adc.profiles.models import ModbusLoadcell, Profile, SensorKind
from adc.profiles.points import PointRef


@dataclass(frozen=True)
class Limits:
    noise_g: float = 1.0  # σ above which a load cell is noisy
    drift_g_per_h: float = 20.0  # |slope| above which (if significant) it is drifting
    below_zero_g: float = -5.0  # a mean below this is out of range (zero lost)
    between_counts: float = 0.3  # |implied - nearest whole count| above this: weight is suspect
    drift_t: float = 6.0  # t statistic of the slope above which a trend is not noise (p < 0.001)


@dataclass
class Target:
    """One pocket's bin sensor, with what the database says about the pocket (if known)."""

    pocket: str
    kind: str  # weight, presence
    point: str
    item: str | None = None
    unit_weight_g: float | None = None
    on_hand: int | None = None


def targets(profile: Profile, pockets: list[str] | None = None) -> list[Target]:
    """Every sensed pocket of the profile (or those named), in layout order."""
    out: list[Target] = []
    for _, pocket in profile.pockets():
        sensor = pocket.sensor
        if sensor.kind is SensorKind.NONE or sensor.point is None:
            continue
        out.append(Target(pocket.id, sensor.kind.value, sensor.point))
    if pockets:
        known = {t.pocket: t for t in out}
        unknown = [p for p in pockets if p not in known]
        if unknown:
            raise BadInput(
                f"{profile.name} has no sensed pocket {', '.join(unknown)}; "
                f"sensed pockets: {', '.join(known)}"
            )
        out = [known[p] for p in pockets]
    return out


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)
    readings: list[WeightReading | bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    offline: int = 0


def sample(bench: Bench, chosen: list[Target], n: int, interval_s: float) -> dict[str, Samples]:
    """`n` rounds over every target, `interval_s` apart on the bench's clock."""
    if n < 1:
        raise BadInput(f"--samples must be at least 1, not {n}")
    if interval_s < 0:
        raise BadInput(f"--interval must not be negative, not {interval_s}")
    out = {t.pocket: Samples() for t in chosen}
    driver, waiter = bench.driver, bench.waiter
    for i in range(n):
        if i:
            waiter.sleep(interval_s)
        for target in chosen:
            got = out[target.pocket]
            try:
                value: WeightReading | bool = (
                    driver.weight(target.point)
                    if target.kind == SensorKind.WEIGHT.value
                    else driver.input_active(target.point)
                )
            except DriverError as err:
                got.errors.append(err.message)
                got.offline += isinstance(err, DeviceOffline)
                continue
            got.times.append(waiter.now())
            got.readings.append(value)
    return out


def _slope_per_h(times: list[float], values: list[float]) -> tuple[float, float]:
    """Least-squares slope in grams per hour, and its t statistic (0 with fewer than 8 samples:
    with fewer degrees of freedom noise alone crosses the threshold too often)."""
    n = len(values)
    if n < 8 or max(times) - min(times) <= 0:
        return 0.0, 0.0
    slope, intercept = statistics.linear_regression(times, values)
    mean_t = statistics.fmean(times)
    sxx = sum((t - mean_t) ** 2 for t in times)
    rss = sum((v - (slope * t + intercept)) ** 2 for t, v in zip(times, values, strict=True))
    se = math.sqrt(rss / (n - 2) / sxx)
    t_stat = math.inf if se == 0 else abs(slope) / se
    return slope * 3600.0, t_stat if slope else 0.0


def _unread(subject: str, point: str, got: Samples, total: int) -> Check:
    """A sensor that gave no reading at all: offline, or the last error."""
    flag = "offline" if got.offline else "error"
    reason = got.errors[-1] if got.errors else "no reading"
    return Check(subject, point, Verdict.FAIL, f"{reason} ({total} of {total} reads)", flags=[flag])


def judge_weight(target: Target, got: Samples, limits: Limits, capacity_g: float) -> Check:
    subject, point = f"sensor of {target.pocket}", target.point
    total = len(got.readings) + len(got.errors)
    if not got.readings:
        return _unread(subject, point, got, total)
    readings = [r for r in got.readings if isinstance(r, WeightReading)]
    qualities = {q.value: sum(1 for r in readings if r.quality is q) for q in Quality}
    finite = [
        (t, r.grams) for t, r in zip(got.times, readings, strict=True) if math.isfinite(r.grams)
    ]
    flags: list[str] = []
    reasons: list[str] = []
    if got.errors:
        flags.append("offline" if got.offline else "error")
        reasons.append(f"{len(got.errors)} of {total} reads failed ({got.errors[-1]})")
    data: dict[str, object] = {
        "samples": len(readings),
        "quality": {k: v for k, v in qualities.items() if v},
    }
    if not finite:
        flags.append("offline")
        reasons.append("no value: the cell is disconnected (module reports a fault)")
        return Check(subject, point, Verdict.FAIL, "; ".join(reasons), data, sorted(set(flags)))
    times, grams = [t for t, _ in finite], [g for _, g in finite]
    mean = statistics.fmean(grams)
    sigma = statistics.pstdev(grams) if len(grams) > 1 else 0.0
    spread = max(grams) - min(grams)
    drift, t_stat = _slope_per_h(times, grams)
    data.update(
        mean_g=round(mean, 3),
        sigma_g=round(sigma, 3),
        spread_g=round(spread, 3),
        drift_g_per_h=round(drift, 2),
    )
    n = len(readings)
    if qualities[Quality.FAULT.value]:
        flags.append("stuck")
        reasons.append(f"module reports a fault in {qualities[Quality.FAULT.value]} of {n} reads")
    elif len(grams) >= 5 and spread == 0.0:
        flags.append("stuck")
        reasons.append(f"value frozen at {mean:.2f} g: not even noise moves it")
    if sigma > limits.noise_g:
        flags.append("noisy")
        reasons.append(f"σ {sigma:.2f} g above the {limits.noise_g:g} g limit")
    significant = t_stat > limits.drift_t
    if abs(drift) > limits.drift_g_per_h and significant:
        flags.append("drifting")
        reasons.append(f"creeps {drift:+.1f} g/h (limit {limits.drift_g_per_h:g} g/h)")
    elif qualities[Quality.UNSTABLE.value] == n and n >= 3 and sigma <= limits.noise_g:
        flags.append("drifting")
        reasons.append(
            "module reports unstable in every read while the spread stays small: a slow creep"
        )
    if qualities[Quality.OVERLOAD.value]:
        flags.append("out-of-range")
        reasons.append(f"overload in {qualities[Quality.OVERLOAD.value]} of {n} reads")
    elif mean < limits.below_zero_g:
        flags.append("out-of-range")
        reasons.append(f"reads {mean:.1f} g, below zero: re-zero it (adc diag calibrate)")
    elif mean > capacity_g:
        flags.append("out-of-range")
        reasons.append(f"reads {mean:.1f} g, above the cell's {capacity_g:g} g capacity")
    trend = f"drift {drift:+.1f} g/h" if significant else "no measurable drift"
    summary = f"mean {mean:.2f} g, spread {spread:.2f} g (σ {sigma:.2f}), {trend}"
    if target.unit_weight_g:
        implied = mean / target.unit_weight_g
        nearest = round(implied)
        data.update(unit_weight_g=target.unit_weight_g, implied_count=nearest)
        summary += f", implies {nearest} × {target.unit_weight_g:g} g"
        if abs(implied - nearest) > limits.between_counts and not flags:
            reasons.append(f"weight lies between counts ({implied:.2f} units)")
            flags.append("count")
        if target.on_hand is not None:
            data["on_hand"] = target.on_hand
            summary += f" (on-hand {target.on_hand})"
            if nearest != target.on_hand:
                flags.append("count")
                reasons.append(f"implies {nearest} units, the database holds {target.on_hand}")
    if flags:
        return Check(
            subject, point, Verdict.FAIL, "; ".join([*reasons, summary]), data, sorted(set(flags))
        )
    return Check(subject, point, Verdict.PASS, summary, data)


def judge_presence(target: Target, got: Samples) -> Check:
    subject, point = f"sensor of {target.pocket}", target.point
    total = len(got.readings) + len(got.errors)
    if not got.readings:
        return _unread(subject, point, got, total)
    present = sum(1 for r in got.readings if r)
    data: dict[str, object] = {"samples": len(got.readings), "present": present}
    flags, reasons = [], []
    if got.errors:
        flags.append("offline" if got.offline else "error")
        reasons.append(f"{len(got.errors)} of {total} reads failed ({got.errors[-1]})")
    if 0 < present < len(got.readings):
        flags.append("noisy")
        reasons.append(f"flickers: present in {present} of {len(got.readings)} reads")
    says = present * 2 >= len(got.readings)
    summary = "something present" if says else "empty"
    if target.on_hand is not None:
        data["on_hand"] = target.on_hand
        summary += f" (on-hand {target.on_hand})"
        if says != (target.on_hand > 0):
            flags.append("count")
            reasons.append(
                f"reads {'present' if says else 'empty'}, the database holds {target.on_hand}"
            )
    if flags:
        return Check(
            subject, point, Verdict.FAIL, "; ".join([*reasons, summary]), data, sorted(set(flags))
        )
    return Check(subject, point, Verdict.PASS, summary, data)


def capacity_of(profile: Profile, point: str) -> float:
    model = profile.devices[PointRef.parse(point).device]
    return model.capacity_g if isinstance(model, ModbusLoadcell) else math.inf


def sensors(
    bench: Bench,
    chosen: list[Target],
    *,
    samples: int = 10,
    interval_s: float = 0.2,
    limits: Limits | None = None,
) -> Report:
    """Sample the chosen sensors and judge each one (see the module docstring)."""
    limits = limits or Limits()
    report = Report("sensors", bench.target)
    report.notes.append(f"{samples} samples per sensor, {interval_s:g} s apart")
    got = sample(bench, chosen, samples, interval_s)
    for target in chosen:
        if target.kind == SensorKind.WEIGHT.value:
            capacity = capacity_of(bench.profile, target.point)
            report.add(judge_weight(target, got[target.pocket], limits, capacity))
        else:
            report.add(judge_presence(target, got[target.pocket]))
    return report
