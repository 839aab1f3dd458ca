"""selftest finds and names each lock and switch fault, on every tier, and passes a healthy cabinet."""

from __future__ import annotations

import pytest

from adc.diag.person import NoPerson, PromptPerson
from adc.diag.results import Verdict
from adc.diag.selftest import selftest
from tests.diag.conftest import Open, bench


def by_point(report):  # type: ignore[no-untyped-def]
    out = {}
    for check in report.checks:
        out.setdefault(check.point, []).append(check)
    return {point: checks[0] for point, checks in out.items()}


def test_a_healthy_cabinet_passes_with_measured_latency(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        report = selftest(bench(rig), ["D1", "D2"])
    assert report.ok, report.failures()
    checks = by_point(report)
    # D1 and D2 with their six lids: a lock and a switch each
    assert len(report.checks) == 2 * (2 + 6)
    assert all(c.verdict is Verdict.PASS for c in report.checks)
    latency = checks["lb0:lock.0"].data["actuation_ms"]
    # the virtual latch retracts 40 ms after the pulse starts; reads come every 5 ms
    assert 40 <= latency <= 50
    assert checks["dio1:di.0"].reason == "closed → open → closed"


def test_jammed_lock_with_feedback_is_found_without_a_person(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        rig.cabinet.sim_inject_fault("lock_jammed", "lb0:lock.1")
        report = selftest(bench(rig, NoPerson()), ["D1", "D2"])
    checks = by_point(report)
    jammed = checks["lb0:lock.1"]
    assert jammed.verdict is Verdict.FAIL and jammed.flags == ["jammed"]
    assert "feedback stayed engaged" in jammed.reason
    assert checks["lb0:lock.0"].verdict is Verdict.PASS  # the other drawer is fine
    assert checks["dio1:di.0"].verdict is Verdict.NOT_EXERCISED  # nobody opened it


def test_jammed_lock_without_feedback_needs_a_person_to_be_found(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        rig.cabinet.sim_inject_fault("lock_jammed", "dio1:coil.2")
        alone = selftest(bench(rig, NoPerson()), ["D3"])
        rig.advance(3)  # re-arm
        with_person = selftest(bench(rig), ["D3"])
    assert by_point(alone)["dio1:coil.2"].verdict is Verdict.NOT_EXERCISED
    jammed = by_point(with_person)["dio1:coil.2"]
    assert jammed.verdict is Verdict.FAIL and "jammed" in jammed.flags
    assert "drawer D3 did not open when pulled" in jammed.reason
    # the lids inside could not be reached: not exercised, not passed
    assert by_point(with_person)["dio1:coil.8"].verdict is Verdict.NOT_EXERCISED


def test_stuck_switch_is_named(tier: Open) -> None:
    with tier("tcp-6drawer") as rig:
        rig.cabinet.sim_inject_fault("switch_stuck", "dio1:di.0", active=True)
        report = selftest(bench(rig), ["D1", "D2"])
    checks = by_point(report)
    stuck = checks["dio1:di.0"]
    assert stuck.verdict is Verdict.FAIL and stuck.flags == ["stuck"]
    assert "did not read open while drawer D1 was open" in stuck.reason
    assert checks["dio1:di.1"].verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("profile", "lock", "drawer"),
    [("rs485-2bus", "lb0:lock.4", "D2"), ("tcp-6drawer", "dio1:coil.1", "D2")],
)
def test_lock_that_does_not_reengage_is_named(
    tier: Open, profile: str, lock: str, drawer: str
) -> None:
    with tier(profile) as rig:
        rig.cabinet.sim_inject_fault("lock_no_reengage", lock)
        report = selftest(bench(rig), [drawer])
    failed = {c.point: c for c in report.failures()}
    assert set(failed) == {lock}
    assert failed[lock].flags == ["no-relock"]


def test_rearm_time_is_waited_out_not_hammered(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        start = rig.cabinet.env.now
        rig.driver.pulse("lb0:lock.3")  # drawer D4 pulsed a moment ago: re-arming for 2 s
        rig.advance(0.6)  # its pulse is over (a driver confirming the bolt took some of it)
        report = selftest(bench(rig), ["D4"])
        elapsed = rig.cabinet.env.now - start
    check = by_point(report)["lb0:lock.3"]
    assert check.verdict is Verdict.PASS, check.reason
    assert "for re-arm" in check.reason
    assert elapsed >= 2.0


def test_offline_board_fails_its_doors_and_the_others_are_still_tested(tier: Open) -> None:
    with tier("rs485-2bus") as rig:
        rig.cabinet.sim_inject_fault("device_offline", "lb1")
        report = selftest(bench(rig), ["D3"])
    checks = by_point(report)
    assert checks["lb0:lock.2"].verdict is Verdict.PASS  # the drawer's lock is on lb0
    lid = checks["lb1:lock.0"]
    assert lid.verdict is Verdict.FAIL and lid.flags == ["offline"]
    assert "lb1" in lid.reason and "does not answer" in lid.reason
    assert sum(1 for c in report.failures() if "offline" in c.flags) == 6
    # its switch was not reached: the row points at the lock's, rather than repeat its cause
    switch = checks["lb1:input.0"]
    assert switch.verdict is Verdict.NOT_EXERCISED
    assert switch.reason == "not reached: the test of lb1:lock.0 failed"


def test_refused_locks_are_never_pulsed(tier: Open) -> None:
    pulsed: list[str] = []
    with tier("rs485-2bus") as rig:
        b = bench(rig)
        real = b.driver.pulse
        b.driver.pulse = lambda point: (pulsed.append(point), real(point))[1]  # type: ignore[method-assign]
        report = selftest(
            b, ["D2"], refuse=lambda lock: "needs a witness" if lock == "lb0:lock.4" else None
        )
    assert "lb0:lock.4" not in pulsed and "lb0:lock.5" in pulsed
    refused = by_point(report)["lb0:lock.4"]
    assert refused.verdict is Verdict.NOT_EXERCISED and refused.flags == ["refused"]


def test_prompted_engineer_tells_a_jammed_lock_from_a_stuck_switch(tier: Open) -> None:
    """On the wire to another process nobody can reach the simulated person: the engineer is asked.
    Here nobody opens the virtual drawer, so the switch never changes; the answer decides."""
    with tier("tcp-6drawer") as rig:
        asked: list[str] = []

        def says(answer: str):  # type: ignore[no-untyped-def]
            def ask(question: str) -> str:
                asked.append(question)
                return answer if question.endswith("[y/n]") and "Did" in question else ""

            return ask

        rig.cabinet.sim_inject_fault("lock_jammed", "dio1:coil.0")
        engineers = [PromptPerson(says("n")), PromptPerson(says("y"))]
        for engineer in engineers:
            engineer.reaction_s = 0.5  # watch the switch for 0.5 s, not a real person's 10 s
        no = selftest(bench(rig, engineers[0]), ["D1"])
        rig.advance(3)
        yes = selftest(bench(rig, engineers[1]), ["D1"])
    assert any("Hold the handle of drawer D1" in q for q in asked)
    assert by_point(no)["dio1:coil.0"].flags == ["jammed"]
    assert by_point(yes)["dio1:di.0"].flags == ["stuck"]


def test_unknown_drawer_is_bad_input(tier: Open) -> None:
    from adc.errors import BadInput

    with (
        tier("tcp-6drawer") as rig,
        pytest.raises(BadInput, match="has no drawer D9; its drawers: D1"),
    ):
        selftest(bench(rig), ["D9"])
