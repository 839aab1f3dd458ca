"""Diversion signals on hand-built records: each value is worked out here from the rows written.

The rows are written straight into the tables (with an audit entry, as every change must have), so
each signal's arithmetic is checked on exactly the records a test names, not on what a workflow
happens to write. Times are UTC and the site's shifts change at 07:00 and 19:00 (the default).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import select

from adc.controller import users
from adc.controller.diversion import robust_z
from adc.controller.diversion_signals import Period, ShiftClock, UserSignals, compute_signals
from adc.controller.models import (
    AccessLog,
    Discrepancy,
    MaintenanceEvent,
    Pocket,
    Transaction,
    User,
)
from tests.controller.site import ACETAMINOPHEN, CABINET, MORPHINE_CART, PIN, Site

DAY = datetime(2026, 3, 2, tzinfo=UTC)
CS_POCKET, CS_DRAWER = "D3-P1", "D3"
PLAIN_POCKET = "D1-P1"


def at(hour: float, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour)


class Records:
    """Writes records for the test, each batch in one audited transaction."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.seq = count(10_000)
        site.assign(CS_POCKET, MORPHINE_CART)
        site.assign(PLAIN_POCKET, ACETAMINOPHEN)
        for name in ("n1", "n2", "n3", "n4", "n5", "w1", "w2"):
            users.add_user(site.ctl, site.admin, name, "nurse", PIN)
        with site.ctl.read() as s:
            found = s.execute(select(Pocket).where(Pocket.cabinet_id == CABINET)).scalars()
            self.pockets = {p.code: (p.id, p.item_id) for p in found}
            self.ids: dict[str, int] = dict(s.execute(select(User.username, User.id)).all())  # type: ignore[arg-type]

    def _add(self, row: Any) -> int:
        with self.site.ctl.write(None, None) as tx:
            tx.session.add(row)
            tx.session.flush()
            tx.audit("test.record", {"row": type(row).__name__})
            return int(row.id)

    def txn(
        self, kind: str, user: str, when: datetime, qty: int, pocket: str = CS_POCKET, **kw: Any
    ) -> int:
        pid, item = self.pockets[pocket]
        witness = kw.pop("witness", None)
        return self._add(
            Transaction(
                at=when,
                kind=kind,
                cabinet_id=CABINET,
                pocket_id=pid,
                item_id=item,
                qty=qty,
                user_id=self.ids[user],
                witness_id=self.ids[witness] if witness else None,
                audit_seq=kw.pop("audit_seq", next(self.seq)),
                **kw,
            )
        )

    def access(
        self,
        user: str,
        opened: datetime,
        closed: datetime | None,
        outcome: str | None,
        pocket: str = CS_POCKET,
    ) -> int:
        return self._add(
            AccessLog(
                cabinet_id=CABINET,
                drawer_code=pocket.split("-")[0],
                pocket_code=pocket,
                user_id=self.ids[user],
                purpose="withdrawal",
                owner="test",
                opened_at=opened,
                closed_at=closed,
                outcome=outcome,
            )
        )

    def discrepancy(self, txn_id: int, when: datetime, opener: str) -> int:
        pid, item = self.pockets[CS_POCKET]
        return self._add(
            Discrepancy(
                cabinet_id=CABINET,
                pocket_id=pid,
                item_id=item,
                transaction_id=txn_id,
                trigger="count",
                expected=5,
                counted=4,
                opened_by=self.ids[opener],
                opened_at=when,
            )
        )

    def alarm(self, kind: str, when: datetime, drawer: str = CS_DRAWER) -> int:
        return self._add(
            MaintenanceEvent(cabinet_id=CABINET, drawer_code=drawer, kind=kind, at=when)
        )


@pytest.fixture
def rec(site: Site) -> Records:
    return Records(site)


def signals(site: Site, days: int = 3) -> dict[str, UserSignals]:
    found = compute_signals(site.ctl, Period(DAY, DAY + timedelta(days=days)))
    return {u.username: u for u in found.values()}


def test_shift_clock_windows_and_the_last_hour() -> None:
    from zoneinfo import ZoneInfo

    clock = ShiftClock("07:00,19:00", ZoneInfo("UTC"))
    day_shift, night_shift = clock.shift_of(at(8)), clock.shift_of(at(19))
    assert clock.shift_of(at(7)) == day_shift == clock.shift_of(at(18.99))
    assert night_shift != day_shift
    assert clock.shift_of(at(6.5, day=1)) == night_shift  # the night shift began yesterday
    assert clock.shift_of(at(7, day=1)) not in (day_shift, night_shift)
    assert clock.minutes_to_change(at(18.5)) == 30
    assert clock.minutes_to_change(at(20)) == 11 * 60
    # a zone with a half-hour offset: 07:00 in Kolkata is 01:30 UTC
    india = ShiftClock("07:00,19:00", ZoneInfo("Asia/Kolkata"))
    assert india.minutes_to_change(at(1)) == 30
    assert india.shift_of(at(1.49)) != india.shift_of(at(1.5))


def test_removals_per_shift_and_end_of_shift_share(site: Site, rec: Records) -> None:
    # day shift of day 0: 08:00, 09:00 and 18:30 (30 min before 19:00); night shift: 20:00, 06:30
    for hour, day in ((8, 0), (9, 0), (18.5, 0), (20, 0), (6.5, 1)):
        rec.txn("remove", "n1", at(hour, day), -1)
    rec.txn("remove", "n1", at(10), -1, pocket=PLAIN_POCKET)  # not controlled: not counted
    # one removal over two lots: two rows, one audit entry → one removal
    rec.txn("remove", "n2", at(8), -1, audit_seq=777)
    rec.txn("remove", "n2", at(8), -2, audit_seq=777)
    got = signals(site)
    n1 = got["n1"]
    assert n1.shifts == 2 and n1.removals == 5
    assert n1.values["removals_per_shift"] == pytest.approx(5 / 2)
    assert n1.values["end_of_shift_removals"] == pytest.approx(2 / 5)  # 18:30 and 06:30
    assert got["n2"].removals == 1 and got["n2"].values["removals_per_shift"] == 1.0


def test_waste_share_late_wastes_and_witness_concentration(site: Site, rec: Records) -> None:
    removals = [rec.txn("remove", "n1", at(8 + i), -2) for i in range(5)]  # 10 units removed
    # four wastes of 1 unit: three witnessed by w1, one by w2; the second is 90 min late
    rec.txn("waste", "n1", at(8.1), 0, counted=1, related_id=removals[0], witness="w1")
    late = rec.txn("waste", "n1", at(10.5), 0, counted=1, related_id=removals[1], witness="w1")
    rec.txn("waste", "n1", at(10.2), 0, counted=1, related_id=removals[2], witness="w2")
    rec.txn("waste", "n1", at(11.5), 0, counted=1, related_id=removals[3], witness="w1")
    rec.txn("return", "n1", at(12), 1, related_id=removals[3])
    n1 = signals(site)["n1"]
    assert n1.values["waste_share"] == pytest.approx(4 / 10)
    assert n1.values["wasted_units_per_shift"] == pytest.approx(4 / 1)
    assert n1.values["late_wastes"] == pytest.approx(1 / 5)  # the 90-minute one, of 5 removals
    assert [e.id for e in n1.evidence["late_wastes"]] == [late]
    assert n1.values["witness_concentration"] == pytest.approx(3 / 4)
    assert n1.values["returns"] == pytest.approx(1 / 10)


def test_too_few_wastes_say_nothing_about_witnesses(site: Site, rec: Records) -> None:
    removal = rec.txn("remove", "n1", at(8), -2)
    rec.txn("waste", "n1", at(8.1), 0, counted=1, related_id=removal, witness="w1")
    n1 = signals(site)["n1"]
    assert n1.values["witness_concentration"] is None
    assert n1.values["late_wastes"] == 0.0


def test_null_and_cancelled_accesses(site: Site, rec: Records) -> None:
    rec.access("n1", at(8), at(8.01), "recorded")
    rec.access("n1", at(9), at(9.01), "closed")  # opened, nothing recorded
    rec.access("n1", at(10), at(10.01), "unlocked")  # unlocked, never opened
    rec.access("n1", at(11), at(11.01), "recorded")
    rec.access("n1", at(12), at(12.01), "closed", pocket=PLAIN_POCKET)  # not controlled drawer
    n1 = signals(site)["n1"]
    assert n1.values["null_accesses"] == pytest.approx(1 / 4)
    assert n1.values["cancelled_accesses"] == pytest.approx(1 / 4)


def test_counts_that_differ(site: Site, rec: Records) -> None:
    rec.txn("count", "n1", at(8), 0, expected=5, counted=5)
    rec.txn("count", "n1", at(9), -1, expected=5, counted=4)
    rec.txn("count", "n1", at(10), 0, expected=4, counted=4)
    rec.txn("remove", "n1", at(10.1), -1)
    assert signals(site)["n1"].values["count_differences"] == pytest.approx(1 / 3)


def test_discrepancies_go_to_whoever_handled_the_pocket_last(site: Site, rec: Records) -> None:
    # n1 removes and leaves; n2's count on access at 11:00 finds one short → n1's
    rec.access("n1", at(9.9), at(10.02), "recorded")
    rec.txn("remove", "n1", at(10), -1)
    rec.access("n2", at(10.99), at(11.05), "recorded")
    c1 = rec.txn("count", "n2", at(11), -1, expected=5, counted=4)
    d1 = rec.discrepancy(c1, at(11), "n2")
    rec.txn("remove", "n2", at(11.01), -1)
    # n3 removes and her own count-back differs → n3's (her removal is the last touch)
    rec.access("n3", at(11.99), at(12.05), "recorded")
    rec.txn("remove", "n3", at(12), -1)
    c2 = rec.txn("count", "n3", at(12.01), -1, expected=2, counted=1)
    d2 = rec.discrepancy(c2, at(12.01), "n3")
    # n4 opens the pocket and records nothing; n2 counts next and finds one short → n4's
    rec.access("n4", at(13), at(13.02), "closed")
    rec.access("n2", at(13.49), None, None)  # n2's own access, still open as she counts
    c3 = rec.txn("count", "n2", at(13.5), -1, expected=1, counted=0)
    d3 = rec.discrepancy(c3, at(13.5), "n2")
    got = signals(site)
    ids = {u: [e.id for e in s.evidence["discrepancies_after_access"]] for u, s in got.items()}
    assert ids["n1"] == [d1]
    assert ids["n3"] == [d2]
    assert ids["n4"] == [d3]
    assert ids["n2"] == []
    assert got["n1"].values["discrepancies_after_access"] == 1.0  # one per shift worked


def test_alarms_near_an_access_on_the_same_drawer(site: Site, rec: Records) -> None:
    rec.access("n5", at(13.9), at(14), "recorded")
    rec.access("n1", at(9), at(9.1), "recorded")
    near = rec.alarm("alarm-unrecorded-change", at(14) + timedelta(minutes=10))
    rec.alarm("alarm-unauthorized-access", at(16))  # 2 h after n5's access: near no one
    rec.alarm("alarm-device-offline", at(14.1))  # not a diversion alarm
    got = signals(site)
    assert [e.id for e in got["n5"].evidence["alarms_near_access"]] == [near]
    assert got["n5"].values["alarms_near_access"] == 1.0
    assert got["n1"].values["alarms_near_access"] == 0.0


def test_the_period_bounds_what_counts(site: Site, rec: Records) -> None:
    rec.txn("remove", "n1", at(8), -1)
    rec.txn("remove", "n1", at(8, day=5), -1)  # after the period
    assert signals(site, days=3)["n1"].removals == 1


def test_robust_z_median_mad_and_its_guards() -> None:
    # median 3, |deviations| 2,1,0,1,2 → MAD 1 → scale 1.4826
    assert robust_z(6, [1, 2, 3, 4, 5]) == pytest.approx(3 / 1.4826)
    # MAD = 0 (most peers alike): mean absolute deviation 0.2 → scale 0.25066
    assert robust_z(1, [0, 0, 0, 0, 1]) == pytest.approx(1 / (1.2533 * 0.2))
    assert robust_z(5, [2, 2, 2]) == 0.0  # every peer the same: no yardstick
    # never finer than one event of the user's own: one alarm in 10 shifts is z 1, not 4
    assert robust_z(1 / 10, [0, 0, 0, 0, 1 / 10], unit=1 / 10) == pytest.approx(1.0)
    assert robust_z(6, [1, 2, 3, 4, 5], unit=0.5) == pytest.approx(3 / 1.4826)  # MAD is coarser
    assert robust_z(None, [1, 2, 3]) == 0.0
