"""The count on access: blind for controlled substances, required by the controller before remove,
refill, unload and waste; one immediate recount by the same person; per-cabinet count mode and
deadlines; the scale's implied count beside the person's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adc.controller import cabinet_policy, counts, inventory, users
from adc.controller.cabinet_policy import CountMode
from adc.controller.clock import ManualClock
from adc.controller.counts import Outcome, SensorCount
from adc.controller.gs1 import parse_scan
from adc.controller.models import Transaction
from adc.errors import BadInput, Refused
from tests.controller.cs import (
    GOOD,
    assign,
    discrepancies,
    on_hand,
    replay_matches,
    snapshot,
    stock,
)
from tests.controller.site import (
    ACETAMINOPHEN,
    CABINET,
    MORPHINE_CART,
    Site,
    build_site,
    datamatrix,
)


@pytest.fixture
def cs(db_url: str) -> Any:
    """Site on a manual clock; D3-P1 holds 6 morphine cartridges (schedule II)."""
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    site = build_site(db_url, clock)
    assign(site, "D3-P1", MORPHINE_CART)
    stock(site, "D3-P1", MORPHINE_CART, 6)
    yield site, clock
    site.ctl.db.close()


def count(site: Site, n: Any, *, who: Any = None, pocket: str = "D3-P1", access: str = "remove"):  # type: ignore[no-untyped-def]
    return counts.count_pocket(site.ctl, who or site.nurse, CABINET, pocket, n, access=access)


def remove(site: Site, qty: int, who: Any = None, pocket: str = "D3-P1"):  # type: ignore[no-untyped-def]
    return inventory.remove(site.ctl, who or site.nurse, CABINET, pocket, qty)


def test_every_access_to_a_controlled_pocket_needs_the_persons_count_first(cs: Any) -> None:
    site, _ = cs
    before = snapshot(site)
    for call in (
        lambda: remove(site, 1),
        lambda: inventory.refill(
            site.ctl,
            site.tech,
            CABINET,
            "D3-P1",
            parse_scan(datamatrix(MORPHINE_CART, GOOD, "L2")),
            1,
        ),
        lambda: inventory.unload(site.ctl, site.tech, CABINET, "D3-P1", 6),
    ):
        with pytest.raises(Refused, match=r"controlled substance.*count it first"):
            call()
    assert snapshot(site) == before
    prompt = counts.count_prompt(site.ctl, CABINET, "D3-P1")
    assert (prompt.mode, prompt.controlled, prompt.expected) == (CountMode.BLIND, True, None)
    result = count(site, 6)
    assert result.outcome is Outcome.MATCH and result.discrepancy_id is None
    assert "expected" not in result.as_json()  # the count stays blind on every screen
    assert remove(site, 2).on_hand == 4
    with pytest.raises(Refused, match="count it first"):  # the removal was the last record
        remove(site, 1)


def test_a_count_opens_the_pocket_only_for_its_counter_and_only_for_a_while(cs: Any) -> None:
    site, clock = cs
    count(site, 6, who=site.pharmacist)
    with pytest.raises(Refused, match="count it first"):
        remove(site, 1)  # the nurse did not count: the pharmacist's count is not hers
    count(site, 6)
    clock.advance(counts.ACCESS_WINDOW.total_seconds() + 1)
    with pytest.raises(Refused, match="count it first"):
        remove(site, 1)
    count(site, 6)
    assert remove(site, 1).on_hand == 5


def test_one_immediate_recount_then_the_discrepancy_stands(cs: Any) -> None:
    site, _ = cs
    first = count(site, 5)
    assert first.outcome is Outcome.RECOUNT and first.discrepancy_id is None
    assert on_hand(site, "D3-P1") == 6 and discrepancies(site) == []
    with pytest.raises(Refused, match="recount it before"):
        remove(site, 1)
    again = count(site, 6)
    assert (again.outcome, again.recount_of, again.discrepancy_id) == (
        Outcome.MATCH,
        first.txn_id,
        None,
    )
    assert remove(site, 1).on_hand == 5
    # differs twice: the second count stands, on-hand follows it, one discrepancy opens
    assert count(site, 4).outcome is Outcome.RECOUNT
    stands = count(site, 3)
    assert stands.outcome is Outcome.DISCREPANCY and on_hand(site, "D3-P1") == 3
    (disc,) = discrepancies(site)
    assert (disc.expected, disc.counted, disc.trigger, disc.transaction_id) == (
        5,
        3,
        "remove",
        stands.txn_id,
    )
    with site.ctl.read() as s:
        request = s.get(Transaction, stands.recount_of)
        assert (request.reason, request.counted, request.qty) == (counts.RECOUNT_REQUESTED, 4, 0)
    replay_matches(site)


def test_without_the_recount_policy_a_difference_stands_at_once(cs: Any) -> None:
    site, _ = cs
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "false")
    result = count(site, 4)
    assert result.outcome is Outcome.DISCREPANCY and result.discrepancy_id
    assert on_hand(site, "D3-P1") == 4


def test_non_controlled_items_follow_the_cabinets_count_mode(cs: Any) -> None:
    site, _ = cs
    assign(site, "D1-P1", ACETAMINOPHEN)
    stock(site, "D1-P1", ACETAMINOPHEN, 8)
    assert remove(site, 1, pocket="D1-P1").on_hand == 7  # mode none: no count needed
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "count-mode", "verify")
    prompt = counts.count_prompt(site.ctl, CABINET, "D1-P1")
    assert (prompt.mode, prompt.expected) == (CountMode.VERIFY, 7)  # verify shows the number
    with pytest.raises(Refused, match=r"\(verify count\): count it first"):
        remove(site, 1, pocket="D1-P1")
    count(site, 7, pocket="D1-P1")
    assert remove(site, 1, pocket="D1-P1").on_hand == 6
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "count-mode", "blind")
    assert counts.count_prompt(site.ctl, CABINET, "D1-P1").expected is None


@pytest.mark.parametrize("bad", [-1, "3", 2.0, True, None])
def test_a_count_that_is_not_a_whole_number_is_refused_and_changes_nothing(
    cs: Any, bad: Any
) -> None:
    site, _ = cs
    before = snapshot(site)
    with pytest.raises(BadInput, match="count"):
        count(site, bad)
    assert snapshot(site) == before


def test_counting_what_cannot_be_counted(cs: Any) -> None:
    site, _ = cs
    with pytest.raises(Refused, match="no item assigned"):
        count(site, 0, pocket="D2-P1")
    with pytest.raises(BadInput, match="no pocket"):
        count(site, 0, pocket="Z9")
    with pytest.raises(Refused, match="not allowed"):
        count(site, 6, who=site.admin)


@pytest.mark.parametrize(
    ("setting", "opened", "deadline"),
    [
        (None, "2026-03-02 08:00", "2026-03-03 08:00"),  # the site's 24 h
        ("12h", "2026-03-02 08:00", "2026-03-02 20:00"),
        ("end-of-shift", "2026-03-02 08:00", "2026-03-02 19:00"),
        ("end-of-shift", "2026-03-02 20:30", "2026-03-03 07:00"),
    ],
)
def test_discrepancy_deadlines_follow_the_cabinet_policy(
    cs: Any, setting: str | None, opened: str, deadline: str
) -> None:
    site, clock = cs
    if setting:
        cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "resolve-by", setting)
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "no")
    clock.set(datetime.fromisoformat(opened).replace(tzinfo=UTC))
    count(site, 5)
    (disc,) = discrepancies(site)
    assert disc.deadline == datetime.fromisoformat(deadline).replace(tzinfo=UTC)


def test_end_of_shift_is_in_the_sites_time_zone(cs: Any) -> None:
    from adc.controller import settings

    site, clock = cs
    settings.set_setting(site.ctl, site.admin, "timezone", "America/New_York")
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "resolve-by", "end-of-shift")
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "false")
    clock.set(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # 08:00 in New York
    count(site, 5)
    assert discrepancies(site)[0].deadline == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 19:00 EST


def test_a_non_controlled_discrepancy_has_no_deadline(cs: Any) -> None:
    site, _ = cs
    assign(site, "D1-P1", ACETAMINOPHEN)
    stock(site, "D1-P1", ACETAMINOPHEN, 5)
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "recount", "false")
    count(site, 4, pocket="D1-P1", access=None)  # type: ignore[arg-type]
    assert discrepancies(site)[-1].deadline is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("count-mode", "sometimes"),
        ("resolve-by", "0h"),
        ("resolve-by", "tomorrow"),
        ("shift-ends", "25:00"),
        ("recount", "maybe"),
        ("colour", "blue"),
    ],
)
def test_bad_cabinet_settings_are_refused_and_change_nothing(
    cs: Any, name: str, value: str
) -> None:
    site, _ = cs
    before = snapshot(site)
    with pytest.raises(BadInput):
        cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, name, value)
    assert snapshot(site) == before


def test_only_an_admin_sets_cabinet_policy(cs: Any) -> None:
    site, _ = cs
    with pytest.raises(Refused, match="not allowed"):
        cabinet_policy.set_cabinet_setting(site.ctl, site.pharmacist, CABINET, "recount", "false")
    with pytest.raises(BadInput, match="no cabinet"):
        cabinet_policy.set_cabinet_setting(site.ctl, site.admin, "W9", "recount", "false")
    policy = cabinet_policy.read_cabinet_policy(site.ctl, CABINET)
    assert policy.recount and policy.count_mode is CountMode.NONE


def test_the_scales_count_is_recorded_beside_the_persons_and_a_disagreement_flagged(
    cs: Any,
) -> None:
    site, _ = cs
    agree = SensorCount.from_weight(6 * 6.3 + 0.4, 6.3, 0.3)
    assert agree.count == 6
    assert SensorCount.from_weight(6.5 * 6.3, 6.3, 0.3).count is None  # not a whole number
    same = counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D3-P1", 6, sensor=agree)
    assert same.sensor_discrepancy_id is None and not same.sensor_disagrees
    other = SensorCount.from_weight(5 * 6.3, 6.3, 0.3)
    flagged = counts.count_pocket(site.ctl, site.pharmacist, CABINET, "D3-P1", 6, sensor=other)
    assert flagged.outcome is Outcome.MATCH and flagged.sensor_disagrees
    (disc,) = discrepancies(site)
    assert (disc.id, disc.trigger, disc.expected, disc.counted) == (
        flagged.sensor_discrepancy_id,
        "sensor",
        5,
        6,
    )


def test_a_controlled_refill_needs_a_witness_where_the_cabinet_says_so(cs: Any) -> None:
    site, _ = cs
    cabinet_policy.set_cabinet_setting(site.ctl, site.admin, CABINET, "cs-refill-witness", "yes")
    scan = parse_scan(datamatrix(MORPHINE_CART, GOOD, "L2"))

    def refill(witness: Any) -> Any:
        count(site, on_hand(site, "D3-P1"), who=site.tech, access="refill")
        return inventory.refill(site.ctl, site.tech, CABINET, "D3-P1", scan, 2, witness=witness)

    before = on_hand(site, "D3-P1")
    with pytest.raises(Refused, match="needs a witness"):
        refill(None)
    with pytest.raises(Refused, match="cannot witness their own"):
        refill(site.tech)
    with pytest.raises(Refused, match=r"is a service; .* needs a nurse or pharmacist"):
        refill(site.service)
    users.disable_user(site.ctl, site.admin, "nurse")
    with pytest.raises(Refused, match="witness nurse is disabled"):
        refill(site.nurse)
    assert on_hand(site, "D3-P1") == before
    movement = refill(site.pharmacist)
    assert movement.on_hand == before + 2
    with site.ctl.read() as s:
        txn = s.get(Transaction, movement.txn_ids[0])
        assert txn.witness_id == site.pharmacist.user_id
