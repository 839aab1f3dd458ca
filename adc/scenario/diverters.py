"""Simulated diverters: scenario nurses who divert controlled substances, and how well the
controller's diversion analytics find them.

Why: a diversion detector has no ground truth in a hospital; here it has one. A scenario names
nurses (`[[diverters]]`: `nurse = "nurse.w1.3"`, a `style`, diversions `per_day`, `from_day`) who,
besides the honest work the ward's demand sends them, make visits of their own to a controlled
pocket and divert in one style:

- `over-waste`: remove a dose and record it all wasted at once ("patient refused"), always before
  the same colleague as witness; the dose goes in the pocket of the diverter;
- `late-waste`: the same, but the waste is recorded 90 to 240 minutes after the removal;
- `extra-unit`: remove a dose, take one unit more, and enter the blind count-back the record
  expects (the miscount covers it); the next person's count on access finds the unit missing;
- `null-access`: open the pocket, take one unit, record nothing (an access with no removal);
- `shift-end`: remove a dose (recorded, for no patient) in the last hour before a shift change.

The people act, the controller decides: a diverter only uses the cabinet (its `sim_*` inputs) and
the controller's public calls, as an honest nurse does. The analytics (`adc.controller.diversion`)
read the database only; this module's KPIs are the only place that knows who diverted, and they
compare the report's ranking with that truth day by day.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Generator

    import simpy

    from adc.scenario.world import Station, World

Style = Literal["over-waste", "late-waste", "extra-unit", "null-access", "shift-end"]
SHIFT_CHANGES_MIN = (7 * 60, 19 * 60)  # when the simulated wards change shift (local time)
TOP_K = 3


class DiverterSpec(BaseModel):
    """One planted diverter."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    nurse: str = Field(description="The nurse's user name as the scenario makes it: nurse.w1.3.")
    style: Style
    per_day: float = Field(1.0, gt=0, le=48, description="Diversions per day, on average.")
    from_day: int = Field(0, ge=0, description="The first scenario day she diverts.")


def _find(world: World, name: str) -> tuple[Station, Any]:
    from adc.errors import BadInput

    for station in world.stations.values():
        for actor in station.nurses:
            if actor.username == name:
                return station, actor
    raise BadInput(
        f"diverters: no nurse {name!r} in this scenario (nurses are named nurse.<cabinet>.<n>)"
    )


def start(world: World) -> None:
    """Start one process per planted diverter (a scenario without diverters starts none)."""
    for index, spec in enumerate(getattr(world.loaded.scenario, "diverters", [])):
        station, actor = _find(world, spec.nurse)
        world.env.process(_diverter(world, station, actor, spec, index))


def _diverter(
    world: World, station: Station, actor: Any, spec: DiverterSpec, index: int
) -> Generator[simpy.Event, Any, None]:
    rng = world.rng("diverter", index, spec.nurse)
    begin = world.t0 + spec.from_day * 86400.0
    if world.env.now < begin:
        yield world.env.timeout(begin - world.env.now)
    while True:
        gap = rng.expovariate(spec.per_day / 86400.0)
        at = world.env.now + gap
        if spec.style == "shift-end":  # moved into the hour before the next shift change
            at = _before_shift_change(world, at, rng.uniform(5, 55))
        if at >= world.horizon_s:
            return
        yield world.env.timeout(max(at - world.env.now, 0.0))
        yield from _divert(world, station, actor, spec, rng)


def _before_shift_change(world: World, at: float, minutes_before: float) -> float:
    """The SimPy time `minutes_before` the first shift change after `at` (local time) that
    leaves that much room."""
    from datetime import datetime, time

    moment = (world.start + timedelta(seconds=at)).astimezone(world.zone)
    for days in (0, 1):
        midnight = datetime.combine(moment.date() + timedelta(days=days), time(), world.zone)
        for change in SHIFT_CHANGES_MIN:
            when = midnight + timedelta(minutes=change - minutes_before)
            if when > moment:
                return (when - world.start).total_seconds()
    raise AssertionError("a shift change always comes within two days")


def _divert(
    world: World, station: Station, actor: Any, spec: DiverterSpec, rng: Any
) -> Generator[simpy.Event, Any, None]:
    """One diversion: a visit to a stocked controlled pocket (the people's own moves)."""
    from adc.controller import withdrawal
    from adc.drivers.base import DriverError
    from adc.errors import AdcError
    from adc.scenario import people
    from adc.sim.errors import SimInputError

    need = 1 if spec.style == "null-access" else None
    choices = [
        code
        for code, info in station.pockets.items()
        if info.item.schedule is not None
        and station.shelves[code].units >= (need or info.stock.dose) + (spec.style == "extra-unit")
    ]
    if not choices:
        world.emit("diversion_skipped", nurse=spec.nurse, why="no stocked controlled pocket")
        return
    pocket = choices[rng.randrange(len(choices))]
    info = station.pockets[pocket]
    shelf = station.shelves[pocket]
    with station.screen.request() as turn:
        yield turn
        try:
            w = withdrawal.begin_withdrawal(
                world.ctl, station.driver, station.id, actor, pocket, info.stock.dose
            )
        except AdcError as err:
            world.emit("diversion_refused", nurse=spec.nurse, pocket=pocket, reason=err.message)
            return
        try:
            yield from people._unlock(world, w.unlock)
            yield world.env.timeout(people.REACH_S)
            if not people._open_access(station, info):
                w.poll()
                w.not_opened()
                return
            w.poll()
            if w.count_due.value != "none":
                people._count_on_access(world, station, pocket, info, w.count, shelf.units)
            if spec.style == "null-access":
                taken = 1
                station.cabinet.sim_take(pocket, taken)
                shelf.take(taken)
            else:
                taken = info.stock.dose + (spec.style == "extra-unit")
                station.cabinet.sim_take(pocket, taken)
                shelf.take(taken)
                lie = 1 if spec.style == "extra-unit" else 0
                count_back = shelf.units + lie if w.count_back else None
                for movement in w.record(count_back):
                    world.level(station.id, pocket, movement.on_hand)
            yield world.env.timeout(world.loaded.scenario.nurses.take_s)
            if info.has_door:
                station.cabinet.sim_close(info.code)
            station.cabinet.sim_close(info.drawer)
            yield world.env.timeout(people.SHUT_S)
            w.poll()
        except (AdcError, DriverError, SimInputError) as err:
            world.emit("diversion_failed", nurse=spec.nurse, pocket=pocket, why=str(err))
            people._shut_all(station, info)
            return
        finally:
            w.finish()
    world.count(f"diversions:{spec.nurse}")
    world.count(f"units_diverted:{spec.nurse}", taken if spec.style != "extra-unit" else 1)
    world.emit("diversion", nurse=spec.nurse, style=spec.style, pocket=pocket, units=taken)
    if spec.style in ("over-waste", "late-waste") and w.recorded:
        delay = 0.0 if spec.style == "over-waste" else rng.uniform(90, 240) * 60
        world.env.process(_waste_later(world, station, actor, w.recorded[0], delay, info))


def _waste_later(
    world: World, station: Station, actor: Any, removal: Any, delay: float, info: Any
) -> Generator[simpy.Event, Any, None]:
    """Record the whole removal wasted, witnessed by the same colleague every time."""
    from adc.controller import waste
    from adc.errors import AdcError

    if delay:
        yield world.env.timeout(delay)
    buddy = next(n for n in station.nurses if n.username != actor.username)
    try:
        waste.waste(
            world.ctl,
            actor,
            station.id,
            info.stock.dose,
            "patient refused",
            witness=buddy,
            removal_id=removal.txn_ids[0],
        )
    except AdcError as err:
        world.emit("diversion_waste_refused", nurse=actor.username, reason=err.message)


# ---------------------------------------------------------------------------------------- KPIs
def detection_kpis(world: World, top_k: int = TOP_K) -> dict[str, Any]:
    """How the diversion report, run at the end of each day on the records so far, ranks the
    planted diverters: the rank of each, the first day in the top k, the honest users flagged."""
    from adc.controller.diversion import rank_users
    from adc.controller.diversion_signals import Period

    specs = list(getattr(world.loaded.scenario, "diverters", []))
    if not specs:
        return {}
    planted = {s.nurse for s in specs}
    begin = world.start + timedelta(seconds=world.t0)
    days = int(world.days)
    first_top: dict[str, int | None] = dict.fromkeys(planted)
    rank_by_day: dict[str, list[int | None]] = {name: [] for name in planted}
    honest_top_by_day: list[int] = []
    final: list[Any] = []
    for day in range(1, days + 1):
        scores = rank_users(world.ctl, Period(begin, begin + timedelta(days=day)))
        top = [s.user for s in scores[:top_k]]
        order = {s.user: i for i, s in enumerate(scores, 1)}
        for name in planted:
            rank_by_day[name].append(order.get(name))
        for name in planted:
            if first_top[name] is None and name in top:
                first_top[name] = day
        honest_top_by_day.append(sum(1 for u in top if u not in planted))
        final = scores
    ranks = {s.user: i for i, s in enumerate(final, 1)}
    by_user = {s.user: s for s in final}
    flagged = {s.user for s in final if s.flagged}
    honest = [s for s in final if s.user not in planted and s.role == "nurse"]
    diverters = []
    for spec in specs:
        s = by_user.get(spec.nurse)
        diverters.append(
            {
                "nurse": spec.nurse,
                "style": spec.style,
                "diversions": int(world.counters.get(f"diversions:{spec.nurse}", 0)),
                "rank": ranks.get(spec.nurse),
                "score": round(s.score, 2) if s else None,
                "flagged": spec.nurse in flagged,
                "first_day_in_top_k": first_top[spec.nurse],
                "rank_by_day": rank_by_day[spec.nurse],
                "top_signals": [d.signal for d in s.drivers] if s else [],
            }
        )
    caught = sum(1 for d in diverters if d["flagged"])
    false_pos = sorted(u for u in flagged if u not in planted)
    return {
        "top_k": top_k,
        "users_scored": len(final),
        "diverters": diverters,
        "honest_flagged": len(false_pos),
        "honest_flagged_users": false_pos,
        "honest_in_top_k": honest_top_by_day[-1] if honest_top_by_day else 0,
        "honest_in_top_k_by_day": honest_top_by_day,
        "precision": round(caught / len(flagged), 3) if flagged else None,
        "recall": round(caught / len(specs), 3),
        "honest_nurses": len(honest),
        "top_signals_of_honest": dict(
            Counter(d.signal for s in honest for d in s.drivers).most_common(5)
        ),
    }
