"""Study rules where the controller opens a pocket (virtual cabinet behind the sim backend): a
restock line or a withdrawal of study stock by someone not on the study is refused before anything
unlocks (audited), and a withdrawal carries the subject's study id and the dose to its record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adc.controller import inventory, users, withdrawal
from adc.controller.models import AccessLog
from adc.controller.restock import State, begin_restock
from adc.controller.study_report import accountability
from adc.controller.study_rules import StudyRefused
from adc.errors import BadInput
from tests.controller.rig import SimClock, sim_driver
from tests.controller.site import CABINET, PIN, Site, build_site
from tests.controller.test_study import (
    LEVELS,
    PROTOCOL,
    STUDY_GTIN,
    STUDY_POCKET,
    audit_actions,
    receive,
    set_up_study,
)


@pytest.fixture
def rig(db_url: str, tmp_path: Path) -> Iterator[tuple[Site, Any, int]]:
    driver = sim_driver()
    site = build_site(db_url, SimClock(driver))
    item_id = set_up_study(site, tmp_path)
    yield site, driver, item_id
    site.ctl.db.close()


def _accesses(site: Site) -> int:
    with site.ctl.read() as session:
        return session.execute(select(func.count()).select_from(AccessLog)).scalar_one()


def test_a_restock_line_is_refused_before_anything_unlocks(rig: tuple[Site, Any, int]) -> None:
    site, driver, _ = rig
    session = begin_restock(site.ctl, driver, CABINET, site.tech)  # not on the study
    with pytest.raises(StudyRefused, match="technician is not authorized"):
        session.select(STUDY_POCKET, "load", item=STUDY_GTIN, levels=LEVELS)
    assert session.state is State.IDLE and session.line is None
    assert _accesses(site) == 0  # no access opened, no pulse
    last = audit_actions(site)[-1]
    assert last[:2] == ("technician", "study.refused") and last[2]["doing"] == "restock"
    session.end()


def test_a_withdrawal_checks_the_study_rules_before_the_unlock_and_records_the_subject(
    rig: tuple[Site, Any, int],
) -> None:
    site, driver, item_id = rig
    receive(site, item_id, 5)
    users.add_user(site.ctl, site.admin, "nurse3", "nurse", PIN)
    stranger = users.authenticate(site.ctl, "nurse3", PIN)
    with pytest.raises(StudyRefused, match="nurse3 is not authorized"):
        withdrawal.begin_withdrawal(
            site.ctl, driver, CABINET, stranger, STUDY_POCKET, 1, subject="001-0009", dose="5 mg"
        )
    with pytest.raises(BadInput, match="subject's study id"):
        withdrawal.begin_withdrawal(site.ctl, driver, CABINET, site.nurse, STUDY_POCKET, 1)
    assert _accesses(site) == 0
    w = withdrawal.begin_withdrawal(
        site.ctl, driver, CABINET, site.nurse, STUDY_POCKET, 2, subject="001-0009", dose="5 mg"
    )
    w.unlock()
    driver.advance(0.05)
    assert driver.cabinet.sim_open("D1")
    assert w.poll() is withdrawal.Phase.OPEN
    driver.cabinet.sim_take(STUDY_POCKET, 2)
    w.record()
    driver.cabinet.sim_close("D1")
    driver.advance(1.0)
    w.poll()
    w.finish()
    record = accountability(site.ctl, site.pharmacist, PROTOCOL)
    dispense = [r for r in record.rows if r.kind == "dispense"]
    assert [(r.subject, r.dose, r.qty_out, r.balance) for r in dispense] == [
        ("001-0009", "5 mg", 2, 3)
    ]
    assert record.reconciled


def test_a_technicians_refill_list_leaves_out_study_pockets_not_his(
    rig: tuple[Site, Any, int],
) -> None:
    site, driver, item_id = rig
    receive(site, item_id, 12)
    inventory.remove(site.ctl, site.nurse, CABINET, STUDY_POCKET, 5, subject="001-0001", dose="1")
    tech = begin_restock(site.ctl, driver, CABINET, site.tech)
    pharmacist = begin_restock(site.ctl, driver, CABINET, site.pharmacist)
    assert STUDY_POCKET not in {line.pocket for line in tech.refill_list()}
    assert STUDY_POCKET in {line.pocket for line in pharmacist.refill_list()}
    tech.end()
    pharmacist.end()
