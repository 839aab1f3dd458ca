"""`adc diag calibrate --pocket ID`: zero or tare a pocket's load cell, and measure its item's unit weight.

The procedure a service engineer follows with a weighing module, driven through the bench:
1. open the pocket (its drawer, then its lid or door: the locks are checked on the way, as in
   `selftest`, and the controlled-substance rule applies to them);
2. the person takes everything out; once the module reads stable, the tare (or zero) command is
   written to the channel's command register and read back; the channel must then read ≈ 0 g;
3. with `known_count`, the person puts exactly that many units in (those taken out first); once
   stable, unit weight = mean / count; then the rest goes back in (or the extra reference units
   come out again);
4. with `save`, the module is told to keep its zero/tare through a power cycle (command 3);
5. everything back in, the cell must count what was taken out (with the new unit weight).
The unit weight is a result for the database (the CLI writes it to the pocket's item and records
it); the zero/tare lives in the module.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from adc.diag.bench import Bench
from adc.diag.results import Check, Report, Verdict
from adc.diag.selftest import Refuse, Timing, exercise_drawer
from adc.diag.service import LoadcellCommand
from adc.drivers.base import DriverError, Quality, WeightReading
from adc.errors import BadInput, Refused
from adc.profiles.models import SensorKind
from adc.waiting import poll_until


@dataclass(frozen=True)
class Settings:
    command: LoadcellCommand = LoadcellCommand.TARE
    save: bool = True
    samples: int = 5
    sample_interval_s: float = 0.1
    settle_timeout_s: float = 5.0
    zero_tolerance_g: float = 0.5  # |reading after tare| must be within this (plus 3σ)


class CalibrationFailed(Exception):
    """A step of the procedure that could not be carried out; the message says which and why."""


def _stable_mean(bench: Bench, point: str, settings: Settings) -> tuple[float, float]:
    """Wait until the module reads stable, then (mean, σ) of a few samples."""
    driver, waiter = bench.driver, bench.waiter
    reading, _, stable = poll_until(
        waiter,
        lambda: driver.weight(point),
        lambda r: r.quality in (Quality.OK, Quality.FAULT),
        timeout_s=settings.settle_timeout_s,
        step_s=0.05,
    )
    if reading.quality is Quality.FAULT:  # a fault does not settle: say so at once
        raise CalibrationFailed(
            f"the module reports a fault on {point} (reads {reading.grams:.2f} g): "
            "the cell is disconnected or stuck"
        )
    if not stable:
        raise CalibrationFailed(
            f"{point} did not settle within {settings.settle_timeout_s:g} s "
            f"(reads {reading.grams:.2f} g, {reading.quality.value})"
        )
    values: list[float] = []
    for i in range(settings.samples):
        if i:
            waiter.sleep(settings.sample_interval_s)
        got: WeightReading = driver.weight(point)
        if got.quality is not Quality.OK or not math.isfinite(got.grams):
            raise CalibrationFailed(f"{point} turned {got.quality.value} while sampling")
        values.append(got.grams)
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


class _Hands:
    """What the person holds outside the pocket, so a failed step can put everything back."""

    def __init__(self, bench: Bench, pocket: str, label: str) -> None:
        self.person, self.pocket, self.label = bench.person, pocket, label
        self.held = 0  # units taken out, not yet back
        self.extra = 0  # reference units put in beyond those taken out

    def put(self, n: int) -> None:
        self.person.put(self.pocket, self.label, n)
        back = min(n, self.held)
        self.held -= back
        self.extra += n - back

    def restore(self) -> None:
        if self.held:
            self.put(self.held)
        if self.extra:
            self.person.take(self.pocket, self.label, self.extra)
            self.extra = 0


def _procedure(
    bench: Bench, pocket: str, point: str, label: str, known: int | None, settings: Settings
) -> dict[str, float | int | str]:
    service = bench.service
    name = settings.command.name.lower()
    data: dict[str, float | int | str] = {"point": point, "command": name}
    hands = _Hands(bench, pocket, label)
    taken = bench.person.empty(pocket, label)
    if taken is None:
        raise CalibrationFailed(f"nobody said how many units came out of {pocket}")
    hands.held = taken
    data["taken_out"] = taken
    try:
        data["before_g"] = round(_stable_mean(bench, point, settings)[0], 3)
        service.loadcell_command(point, settings.command)
        if service.last_command(point) != settings.command:
            raise CalibrationFailed(f"{point} did not accept the {name} command")
        empty, sigma = _stable_mean(bench, point, settings)
        data["empty_g"] = round(empty, 3)
        if abs(empty) > settings.zero_tolerance_g + 3 * sigma:
            raise CalibrationFailed(f"after the {name} {point} reads {empty:.2f} g, not 0")
        unit: float | None = None
        if known:
            hands.put(known)
            loaded, _ = _stable_mean(bench, point, settings)
            unit = loaded / known
            data.update(known_count=known, loaded_g=round(loaded, 3), unit_weight_g=round(unit, 4))
            if unit < 0.01:
                raise CalibrationFailed(
                    f"the reading moved {loaded:.2f} g when {known} units went in: "
                    "is the cell connected?"
                )
    finally:
        hands.restore()
    if settings.save:
        service.loadcell_command(point, LoadcellCommand.SAVE)
        data["saved"] = "yes"
    final, _ = _stable_mean(bench, point, settings)
    data["final_g"] = round(final, 3)
    if unit:
        counted = round(final / unit)
        data["final_count"] = counted
        if counted != taken:
            raise CalibrationFailed(
                f"with everything back ({taken} units) the cell counts {counted} "
                f"at {unit:.3f} g each"
            )
    return data


def calibrate(
    bench: Bench,
    pocket: str,
    *,
    known_count: int | None = None,
    item_label: str = "",
    settings: Settings | None = None,
    refuse: Refuse | None = None,
    timing: Timing | None = None,
) -> Report:
    """Run the procedure of the module docstring on one pocket; the report's last check is the
    calibration itself, its data the measured values (`unit_weight_g` with a known count)."""
    settings = settings or Settings()
    profile = bench.profile
    try:
        drawer, spec = profile.pocket(pocket)
    except KeyError:
        raise BadInput(f"{profile.name} has no pocket {pocket!r}") from None
    if spec.sensor.kind is not SensorKind.WEIGHT or spec.sensor.point is None:
        raise BadInput(
            f"pocket {pocket} has no load cell to calibrate (sensor: {spec.sensor.kind})"
        )
    if known_count is not None and known_count < 1:
        raise BadInput(f"--known-count must be at least 1, not {known_count}")
    if not bench.person.present:
        raise BadInput(
            "calibration needs someone at the cabinet to empty the pocket: run it with a person "
            "(--person prompt), or on the in-process virtual cabinet"
        )
    for lock in (drawer.lock, spec.lid_lock or spec.lock):
        why = refuse(lock) if refuse and lock else None
        if why:
            raise Refused(why)
    point = spec.sensor.point
    report = Report("calibrate", bench.target)
    report.notes.append(f"person at the cabinet: {bench.person.name}")
    outcome: dict[str, object] = {}

    def visit(reached: str) -> None:
        if reached != pocket:
            return
        try:
            outcome["data"] = _procedure(
                bench, pocket, point, item_label or pocket, known_count, settings
            )
        except (CalibrationFailed, DriverError) as err:
            outcome["error"] = getattr(err, "message", None) or str(err)

    report.checks += exercise_drawer(bench, drawer, visit=visit, timing=timing, only={pocket})
    subject = f"calibration of {pocket}"
    if "error" in outcome:
        report.add(
            Check(subject, point, Verdict.FAIL, str(outcome["error"]), flags=["calibration"])
        )
    elif "data" not in outcome:
        report.add(
            Check(
                subject,
                point,
                Verdict.FAIL,
                f"pocket {pocket} could not be reached",
                flags=["access"],
            )
        )
    else:
        data = dict(outcome["data"])  # type: ignore[call-overload]
        parts = [f"{data['command']} written and read back, empty reads {data['empty_g']:+.2f} g"]
        if "unit_weight_g" in data:
            parts.append(
                f"unit weight {data['unit_weight_g']:.3f} g from {data['known_count']} units"
            )
        if "final_count" in data:
            parts.append(f"counts {data['final_count']} with everything back")
        if data.get("saved"):
            parts.append("saved in the module")
        report.add(Check(subject, point, Verdict.PASS, "; ".join(parts), data))
        report.data.update(data)
    return report
