"""`adc diag recover --drawer ID`: clear a failed drawer, with a blind recount, back into service.

The walk-through:
1. the plan (adc/controller/maintenance.py): why the drawer is out of service, and which pockets
   need a recount (those with an item; the person is told what is in them, never how many);
2. the hardware: the drawer and the doors inside it are cycled as in `selftest`; while each
   pocket is reachable, the person counts it (the simulated person counts what is really there;
   counts given on the command line are used where nobody counts);
3. every count is recorded by the counting user as a count transaction of this recovery;
4. only if the drawer's lock and switch passed and every pocket was counted does the controller
   return the drawer to service (`complete_recovery`, which checks the counts itself); otherwise
   the run is recorded as a failed recovery and the drawer stays blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adc.diag.bench import Bench
from adc.diag.results import Check, Report, Verdict
from adc.diag.selftest import Refuse, exercise_drawer, find_drawers
from adc.errors import AdcError

if TYPE_CHECKING:
    from adc.controller.context import Actor, Controller
    from adc.controller.maintenance import RecoveryPlan


@dataclass
class Outcome:
    report: Report
    returned: bool
    event_id: int | None = None
    discrepancies: dict[str, int] = field(default_factory=dict)


def recover(
    bench: Bench,
    ctl: Controller,
    actor: Actor,
    plan: RecoveryPlan,
    *,
    counter: Actor,
    counts: dict[str, int] | None = None,
    refuse: Refuse | None = None,
    witness: Actor | None = None,
) -> Outcome:
    from adc.controller import maintenance

    given = dict(counts or {})
    report = Report("recover", bench.target)
    report.notes.append(f"person at the cabinet: {bench.person.name}")
    for failure in plan.failures:
        report.notes.append("out of service: " + failure.describe())
    lines = {line.pocket: line for line in plan.recount}
    counted: dict[str, int] = {}

    def visit(pocket: str) -> None:
        line = lines.get(pocket)
        if line is None or pocket in given:
            return
        n = bench.person.count(pocket, line.item)
        if n is not None:
            counted[pocket] = n

    (drawer,) = find_drawers(bench.profile, [plan.drawer])
    hardware = exercise_drawer(bench, drawer, refuse=refuse, visit=visit)
    report.checks += hardware
    counted.update({p: n for p, n in given.items() if p in lines})
    outcome = Outcome(report, returned=False)
    for pocket, line in lines.items():
        subject = f"blind recount of {pocket}"
        if pocket not in counted:
            report.add(
                Check(
                    subject, pocket, Verdict.FAIL, f"nobody counted {line.item}", flags=["recount"]
                )
            )
            continue
        try:
            disc = maintenance.recount(ctl, counter, plan, pocket, counted[pocket])
        except AdcError as err:
            report.add(Check(subject, pocket, Verdict.FAIL, err.message, flags=["recount"]))
            continue
        if disc is None:
            report.add(Check(subject, pocket, Verdict.PASS, f"{line.item}: recorded"))
        else:
            outcome.discrepancies[pocket] = disc
            report.add(
                Check(
                    subject,
                    pocket,
                    Verdict.PASS,
                    f"{line.item}: recorded; the count differs from the record: "
                    f"discrepancy {disc} opened for review",
                    flags=["discrepancy"],
                )
            )
    drawer_checks = hardware[:2]  # the drawer's own lock and switch
    proven = all(c.verdict is Verdict.PASS for c in drawer_checks)
    subject = f"drawer {plan.drawer}"
    if report.ok and proven:
        summary = "; ".join(f"{c.subject}: {c.reason}" for c in drawer_checks)
        try:
            outcome.event_id = maintenance.complete_recovery(
                ctl, actor, plan, hardware=summary, witness=witness
            )
        except AdcError as err:
            report.add(Check(subject, plan.drawer, Verdict.FAIL, err.message, flags=["blocked"]))
            return outcome
        outcome.returned = True
        report.add(Check(subject, plan.drawer, Verdict.PASS, "returned to service"))
        return outcome
    why = (
        "the drawer's lock and switch were not proven (nobody opened it?)"
        if report.ok
        else "a check failed"
    )
    report.add(
        Check(subject, plan.drawer, Verdict.FAIL, f"stays out of service: {why}", flags=["blocked"])
    )
    return outcome
