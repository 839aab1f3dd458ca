"""Diagnostics meet the controller: who runs them, on which registered cabinet, and their record.

A `Recorder` holds the controller, the acting service user, the cabinet and an optional witness.
It answers the controlled-substance rule for the procedures (`refuse`, from the controller's
`access_refusals`), fills in what the database knows about pockets (item, unit weight, on-hand),
and records each run as one maintenance event with its audit entry, including the drawers the run
found failing (which takes them out of service until `adc diag recover`).

It is also the procedures' gate to the locks (`gate`): every lock a run pulses is a `ServiceCycle`
of the controller's access machine, attributed to the acting service user. A relock failure the
machine recorded as it judged it is not recorded a second time with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from adc.diag.results import Report
from adc.diag.selftest import Refuse
from adc.errors import Refused

if TYPE_CHECKING:
    from adc.controller.access import ServiceCycle
    from adc.controller.context import Actor, Controller
    from adc.controller.maintenance import Found
    from adc.diag.sensors import Target
    from adc.drivers.base import CabinetDriver
    from adc.profiles.models import Profile

# flag of a failed check → failure kind recorded against its drawer
FAILURE_OF_FLAG = {"jammed": "open-failed", "no-relock": "relock-failed", "stuck": "switch-failed"}
MARKS_FAILURES = {"selftest", "calibrate", "recover"}


@dataclass
class ServiceGate:
    """A run's way to the locks: a `ServiceCycle` per lock, `purpose` on its access log row."""

    recorder: Recorder
    purpose: str
    cycles: list[ServiceCycle] = field(default_factory=list)

    def cycle(
        self, driver: CabinetDriver, drawer: str, pocket: str | None, lock: str
    ) -> ServiceCycle:
        from adc.controller.access import ServiceCycle, pulse_length_s

        rec = self.recorder
        cycle = ServiceCycle(
            rec.ctl,
            driver,
            rec.cabinet,
            rec.actor,
            drawer,
            pocket,
            lock,
            self.purpose,
            pulse_s=pulse_length_s(driver.profile, (lock,)),
        )
        self.cycles.append(cycle)
        return cycle


@dataclass
class Recorder:
    ctl: Controller
    actor: Actor
    cabinet: str
    witness: Actor | None = None
    gates: list[ServiceGate] = field(default_factory=list)

    def gate(self, purpose: str) -> ServiceGate:
        """The gate of one run (`purpose`: the command), for `Bench.gate`."""
        gate = ServiceGate(self, purpose)
        self.gates.append(gate)
        return gate

    def recorded_by_machine(self) -> set[tuple[str, str]]:
        """(drawer, failure kind) of every failure the runs' service cycles recorded."""
        return {
            (alarm.drawer or "", alarm.kind)
            for gate in self.gates
            for cycle in gate.cycles
            for alarm in cycle.alarms
        }

    @cached_property
    def _registered(self) -> tuple[str, str]:
        """(profile path, profile name) of the cabinet, read once; BadInput if it is unknown."""
        from adc.controller.cabinets import get_cabinet

        with self.ctl.read() as session:
            row = get_cabinet(session, self.cabinet)
            return row.profile_path, row.profile_name

    def profile_path(self) -> str:
        return self._registered[0]

    def check_profile(self, profile: Profile) -> None:
        """The backend must drive the cabinet's kind of hardware (as restock checks too)."""
        registered = self._registered[1]
        if profile.name != registered:
            raise Refused(
                f"the backend drives a {profile.name} cabinet, cabinet {self.cabinet} is a "
                f"{registered}"
            )

    def refuse(self, profile: Profile) -> Refuse:
        """Which locks this user (and witness) may not pulse, asked once for every lock."""
        from adc.controller.maintenance import access_refusals
        from adc.drivers.cabinet_points import cabinet_points

        locks = [str(lock) for lock in cabinet_points(profile).locks]
        refusals = access_refusals(self.ctl, self.actor, self.cabinet, locks, self.witness)
        return lambda lock: refusals.get(_canonical(lock))

    def fill(self, targets: list[Target]) -> None:
        """Item, unit weight and on-hand of each target's pocket, from the database."""
        from sqlalchemy import select

        from adc.controller.models import Item, Pocket
        from adc.controller.stock import item_label

        with self.ctl.read() as session:
            rows = session.execute(select(Pocket).where(Pocket.cabinet_id == self.cabinet))
            pockets = {p.code: p for p in rows.scalars()}
            for target in targets:
                pocket = pockets.get(target.pocket)
                item = session.get(Item, pocket.item_id) if pocket and pocket.item_id else None
                if pocket is None or item is None:
                    continue
                target.item = item_label(item)
                target.on_hand = pocket.on_hand
                if target.unit_weight_g is None:
                    target.unit_weight_g = item.unit_weight_g

    def record(self, report: Report, profile: Profile, *, details: dict | None = None) -> int:
        from adc.controller.maintenance import record_run

        found = failures_found(report, profile) if report.command in MARKS_FAILURES else []
        already = self.recorded_by_machine()
        found = [f for f in found if (f.drawer, f.kind) not in already]
        failing = [
            {"subject": c.subject, "point": c.point, "reason": c.reason, "flags": c.flags}
            for c in report.failures()
        ]
        return record_run(
            self.ctl,
            self.actor,
            self.cabinet,
            command=report.command,
            result=report.result,
            summary=report.summary(),
            details={"target": report.target, "failing": failing, **(details or {})},
            found=found,
            witness=self.witness,
        )


def _canonical(point: str) -> str:
    from adc.drivers.cabinet_points import canonical

    return canonical(point)


def _where(profile: Profile) -> dict[str, tuple[str, str | None]]:
    """Lock and switch point → (drawer, pocket or None)."""
    out: dict[str, tuple[str, str | None]] = {}
    for drawer in profile.layout.drawers:
        out[_canonical(drawer.lock)] = (drawer.id, None)
        out[_canonical(drawer.switch)] = (drawer.id, None)
        for pocket in drawer.pockets:
            for point in (pocket.lock, pocket.switch, pocket.lid_lock, pocket.lid_switch):
                if point:
                    out.setdefault(_canonical(point), (drawer.id, pocket.id))
    return out


def failures_found(report: Report, profile: Profile) -> list[Found]:
    """The drawers a run found failing: a jammed lock, a lock that does not relock, a stuck switch."""
    from adc.controller.maintenance import Found

    where = _where(profile)
    found: list[Found] = []
    for check in report.failures():
        kinds = [FAILURE_OF_FLAG[f] for f in check.flags if f in FAILURE_OF_FLAG]
        if not kinds or check.point is None or _canonical(check.point) not in where:
            continue
        drawer, pocket = where[_canonical(check.point)]
        found.append(Found(drawer, kinds[0], f"{check.subject}: {check.reason}", pocket))
    return found
