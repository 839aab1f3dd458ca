"""stats names a noisy bus and an offline device from the drivers' own health counters."""

from __future__ import annotations

from adc.diag.results import Verdict
from adc.diag.stats import stats
from tests.diag.conftest import Open, bench


def test_noisy_bus_and_offline_device_are_named(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        rig.cabinet.sim_inject_fault("bus_noise", "field", probability=0.3)
        rig.cabinet.sim_inject_fault("device_offline", "lb1")
        report = stats(bench(rig), polls=4, interval_s=0.1)
    got = {c.subject.split(" (")[0]: c for c in report.checks}
    assert got["bus field"].flags == ["noisy"]
    assert {got[f"device {d}"].flags[0] for d in ("dio1", "lc1", "lc2")} == {"noisy"}
    assert got["device lb1"].flags == ["offline"]
    assert got["device lb0"].verdict is Verdict.PASS
    assert (
        got["bus locks"].verdict is Verdict.FAIL
        and "1 of 2 devices answer" in got["bus locks"].reason
    )
    counters = got["device lc1"].data
    assert counters["requests"] == 4 * 2  # one weight block and one status block per poll
    assert counters["errors"] + counters["timeouts"] > 0 and counters["retries"] > 0


def test_a_quiet_bus_passes(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        report = stats(bench(rig), polls=3, interval_s=0.1)
    assert report.ok, report.failures()
    assert {c.subject for c in report.checks} == {
        "bus main (modbus-tcp)",
        "device dio1 (bus main, unit 1)",
        "device lc1 (bus main, unit 2)",
        "device lc2 (bus main, unit 3)",
    }
