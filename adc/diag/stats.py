"""`adc diag stats`: poll the cabinet a few times, then judge every device and bus by its counters.

The counters are the drivers' own `DeviceHealth` (requests, timeouts, errors, retries, last seen,
online). A one-shot command has no history, so it makes some (`polls` whole-cabinet snapshots,
the way the controller reads the cabinet) and judges those:
- a device that stopped answering is `offline`;
- a device whose answers come back corrupted (bad CRC, malformed) or get lost (on TCP, a
  corrupted answer is dropped and times out) in more than `bad_ratio` of its requests is `noisy`;
- a bus is `noisy` when its devices together are, and `offline` when none of them answers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from adc.diag.bench import Bench
from adc.diag.results import Check, Report, Verdict
from adc.drivers.base import DeviceHealth
from adc.profiles.models import Profile


@dataclass(frozen=True)
class HealthLimits:
    bad_ratio: float = 0.05  # share of requests with a corrupted or lost answer


def poll(bench: Bench, polls: int, interval_s: float) -> None:
    """Take `polls` snapshots, `interval_s` apart (a device that does not answer is skipped)."""
    for i in range(polls):
        if i:
            bench.waiter.sleep(interval_s)
        bench.driver.snapshot()


def _bad(h: DeviceHealth) -> int:
    return h.errors + h.timeouts


def _seen(h: DeviceHealth, now: float) -> str:
    return "never" if h.last_seen is None else f"{max(now - h.last_seen, 0.0):.1f} s ago"


def device_check(profile: Profile, h: DeviceHealth, now: float, limits: HealthLimits) -> Check:
    model = profile.devices[h.device]
    unit = "board" if model.kind == "lockboard-cu16" else "unit"
    subject = f"device {h.device} (bus {model.bus}, {unit} {model.address})"
    data = {**asdict(h), "bus": model.bus, "address": model.address}
    counters = (
        f"{h.requests} requests, {h.timeouts} timeouts, {h.errors} errors, {h.retries} retries, "
        f"last seen {_seen(h, now)}"
    )
    if not h.online or (h.requests and h.last_seen is None):
        why = f"; last error: {h.last_error}" if h.last_error else ""
        if h.last_seen is None and not _bad(h):  # never connected: no request got on the wire
            what = f"no answer to any of {h.requests} requests (never reached)"
        else:
            what = counters
        return Check(subject, h.device, Verdict.FAIL, f"offline: {what}{why}", data, ["offline"])
    if h.requests and _bad(h) / h.requests > limits.bad_ratio:
        share = 100 * _bad(h) / h.requests
        why = f"; last error: {h.last_error}" if h.last_error else ""
        return Check(
            subject,
            h.device,
            Verdict.FAIL,
            f"noisy: {share:.0f}% of requests got a corrupted or lost answer ({counters}){why}",
            data,
            ["noisy"],
        )
    return Check(subject, h.device, Verdict.PASS, counters, data)


def bus_check(
    profile: Profile, bus: str, health: list[DeviceHealth], limits: HealthLimits
) -> Check:
    requests = sum(h.requests for h in health)
    live = [h for h in health if h.online and h.last_seen is not None]
    bad = sum(_bad(h) for h in live)
    live_requests = sum(h.requests for h in live)
    data = {
        "bus": bus,
        "transport": profile.buses[bus].transport,
        "devices": len(health),
        "online": len(live),
        "requests": requests,
        "timeouts": sum(h.timeouts for h in health),
        "errors": sum(h.errors for h in health),
        "retries": sum(h.retries for h in health),
    }
    counts = (
        f"{len(live)} of {len(health)} devices answer; {requests} requests, {data['timeouts']} "
        f"timeouts, {data['errors']} errors, {data['retries']} retries"
    )
    subject = f"bus {bus} ({data['transport']})"
    if requests and not live:
        if not any(h.last_seen is not None or _bad(h) for h in health):
            counts = f"none of {len(health)} devices reached in {requests} requests"
        return Check(subject, bus, Verdict.FAIL, f"offline: {counts}", data, ["offline"])
    if live_requests and bad / live_requests > limits.bad_ratio:
        share = 100 * bad / live_requests
        return Check(
            subject,
            bus,
            Verdict.FAIL,
            f"noisy: {share:.0f}% of the answering devices' requests corrupted or lost; {counts}",
            data,
            ["noisy"],
        )
    if len(live) < len(health):
        return Check(subject, bus, Verdict.FAIL, f"devices missing: {counts}", data, ["offline"])
    return Check(subject, bus, Verdict.PASS, counts, data)


def stats(
    bench: Bench,
    *,
    polls: int = 10,
    interval_s: float = 0.1,
    limits: HealthLimits | None = None,
) -> Report:
    """Poll, then a check per bus and per device (see the module docstring)."""
    limits = limits or HealthLimits()
    report = Report("stats", bench.target)
    report.notes.append(f"counters after {polls} whole-cabinet polls, {interval_s:g} s apart")
    poll(bench, polls, interval_s)
    health = bench.driver.health()
    now = bench.waiter.now()
    profile = bench.profile
    for bus in profile.buses:
        mine = [health[d] for d in profile.devices_on(bus) if d in health]
        report.add(bus_check(profile, bus, mine, limits))
        for h in mine:
            report.add(device_check(profile, h, now, limits))
    return report
