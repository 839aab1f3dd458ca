"""Investigational drugs (issue 19) through the controller: studies, stock kept apart, the rules
of study stock (authorized users, subject id and dose, closed study, expired/recalled lots,
returns to the pharmacy), and the accountability record reconciling with on-hand."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adc.controller import counts, formulary, inventory, recalls, returns, studies, waste
from adc.controller.audit import verify_trail
from adc.controller.gs1 import parse_scan
from adc.controller.models import AuditEntry, Pocket, StockLot, Transaction
from adc.controller.study_report import accountability
from adc.controller.study_returns import return_to_pharmacy
from adc.controller.study_rules import StudyRefused, check_subject
from adc.controller.study_tables import StudyDispense
from adc.errors import BadInput, Refused
from tests.controller.site import ACETAMINOPHEN, CABINET, START, Site, datamatrix

PROTOCOL = "NCI-2026-0042"
STUDY_GTIN = "00614141000012"  # the investigational product: no NDC, its own GTIN
STUDY_POCKET = "D1-P2"
LEVELS = (10, 2, 20)
EXPIRY = (START + timedelta(days=200)).date()


def add_investigational_item(site: Site, tmp_path: Path) -> int:
    csv = tmp_path / "study-items.csv"
    csv.write_text(
        "name,strength,form,ndc,gtins,schedule,high_alert,unit_weight_g\n"
        f"ABC-123 investigational,50 mg,capsule,,{STUDY_GTIN},,no,\n"
    )
    formulary.import_items(site.ctl, site.pharmacist, csv)
    return site.item_id(STUDY_GTIN)


def set_up_study(site: Site, tmp_path: Path, *, users: tuple[str, ...] = ("nurse",)) -> int:
    """Study PROTOCOL with the investigational item, pocket D1-P2, and `users` authorized (the
    pharmacist always, who restocks)."""
    item_id = add_investigational_item(site, tmp_path)
    ph = site.pharmacist
    studies.add_study(
        site.ctl, ph, PROTOCOL, title="ABC-123 in X", sponsor="Acme", investigator="Dr Who"
    )
    for name in ("pharmacist", *users):
        studies.authorize(site.ctl, ph, PROTOCOL, name)
    studies.mark_item(site.ctl, ph, PROTOCOL, STUDY_GTIN)
    studies.assign_pocket(site.ctl, ph, PROTOCOL, CABINET, STUDY_POCKET)
    return item_id


def receive(site: Site, item_id: int, qty: int, lot: str = "S1", expiry: date = EXPIRY) -> None:
    scan = parse_scan(datamatrix(STUDY_GTIN, expiry, lot))
    with site.ctl.read() as session:
        pocket = session.execute(
            select(Pocket).where(Pocket.cabinet_id == CABINET, Pocket.code == STUDY_POCKET)
        ).scalar_one()
        assigned = pocket.item_id is not None
    if assigned:
        inventory.refill(
            site.ctl, site.pharmacist, CABINET, STUDY_POCKET, scan, qty, confirm_short_dated=True
        )
    else:
        inventory.load(
            site.ctl,
            site.pharmacist,
            CABINET,
            STUDY_POCKET,
            item_id,
            LEVELS,
            scan,
            qty,
            confirm_short_dated=True,
        )


def audit_actions(site: Site) -> list[tuple[str, str, dict]]:
    with site.ctl.read() as session:
        return [
            (a.actor, a.action, json.loads(a.payload))
            for a in session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
        ]


def table_counts(site: Site) -> tuple[int, int, int]:
    with site.ctl.read() as session:
        return (
            session.execute(select(func.count()).select_from(Transaction)).scalar_one(),
            session.execute(select(func.count()).select_from(StudyDispense)).scalar_one(),
            session.execute(select(func.sum(StockLot.qty))).scalar_one() or 0,
        )


# ------------------------------------------------------------------------------ set-up rules
def test_study_stock_is_never_mixed_with_commercial_stock(site: Site, tmp_path: Path) -> None:
    item_id = set_up_study(site, tmp_path)
    ph = site.pharmacist
    # a commercial item into the study's pocket: refused (audited)
    scan = parse_scan(datamatrix(ACETAMINOPHEN, EXPIRY, "C1"))
    commercial = site.item_id(ACETAMINOPHEN)
    with pytest.raises(StudyRefused, match="assigned to study"):
        inventory.load(site.ctl, ph, CABINET, STUDY_POCKET, commercial, LEVELS, scan, 5)
    # the study item into a commercial pocket: refused
    study_scan = parse_scan(datamatrix(STUDY_GTIN, EXPIRY, "S1"))
    with pytest.raises(StudyRefused, match="only pockets assigned to that study"):
        inventory.load(site.ctl, ph, CABINET, "D1-P3", item_id, LEVELS, study_scan, 5)
    # a commercial scan into the study pocket (once loaded) is the wrong drug
    receive(site, item_id, 5)
    with pytest.raises(Refused, match="wrong drug"):
        inventory.refill(site.ctl, ph, CABINET, STUDY_POCKET, scan, 1)
    # a pocket holding commercial stock cannot be given to the study
    site.assign("D1-P1", ACETAMINOPHEN)
    inventory.refill(site.ctl, ph, CABINET, "D1-P1", scan, 3)
    with pytest.raises(Refused, match="never mixed"):
        studies.assign_pocket(site.ctl, ph, PROTOCOL, CABINET, "D1-P1")
    # an item stocked commercially cannot be marked investigational
    studies.add_study(site.ctl, ph, "P2", title="t", sponsor="s", investigator="i")
    with pytest.raises(Refused, match="outside study P2"):
        studies.mark_item(site.ctl, ph, "P2", ACETAMINOPHEN)
    with pytest.raises(Refused, match="one study"):
        studies.mark_item(site.ctl, ph, "P2", STUDY_GTIN)
    refusals = [p for _, a, p in audit_actions(site) if a == "study.refused"]
    assert len(refusals) == 2 and all(p["protocol"] == PROTOCOL for p in refusals)


def test_only_pharmacists_set_studies_up(site: Site, tmp_path: Path) -> None:
    with pytest.raises(Refused, match="not allowed"):
        studies.add_study(site.ctl, site.nurse, "P9", title="t", sponsor="s", investigator="i")
    with pytest.raises(BadInput, match="protocol"):
        studies.add_study(
            site.ctl, site.pharmacist, "P 9", title="t", sponsor="s", investigator="i"
        )
    view = studies.add_study(
        site.ctl, site.pharmacist, "P9", title="t", sponsor="s", investigator="i"
    )
    assert view.status == "open" and studies.list_studies(site.ctl)[0].protocol == "P9"


# ---------------------------------------------------------------------------- the stock rules
def test_an_unauthorized_user_is_refused_and_audited(site: Site, tmp_path: Path) -> None:
    item_id = set_up_study(site, tmp_path, users=())  # the nurse is NOT authorized
    receive(site, item_id, 6)
    before = table_counts(site)
    with pytest.raises(StudyRefused, match="not authorized for protocol"):
        inventory.remove(
            site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0001", dose="50 mg"
        )
    with pytest.raises(StudyRefused, match="not authorized"):
        counts.count_pocket(site.ctl, site.nurse, CABINET, STUDY_POCKET, 6)
    scan = parse_scan(datamatrix(STUDY_GTIN, EXPIRY, "S1"))
    with pytest.raises(StudyRefused, match="not authorized"):
        inventory.refill(site.ctl, site.tech, CABINET, STUDY_POCKET, scan, 1)
    assert table_counts(site) == before  # nothing moved
    refused = [(actor, p) for actor, a, p in audit_actions(site) if a == "study.refused"]
    assert [(actor, p["doing"]) for actor, p in refused] == [
        ("nurse", "remove"),
        ("nurse", "count"),
        ("technician", "restock"),
    ]
    assert all(p["pocket"] == STUDY_POCKET and "not authorized" in p["reason"] for _, p in refused)
    # authorized: the same removal goes through
    studies.authorize(site.ctl, site.pharmacist, PROTOCOL, "nurse")
    moved = inventory.remove(
        site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0001", dose="50 mg"
    )
    assert moved.on_hand == 5
    # revoked: refused again
    studies.revoke(site.ctl, site.pharmacist, PROTOCOL, "nurse")
    with pytest.raises(StudyRefused):
        inventory.remove(
            site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0001", dose="50 mg"
        )
    verify_trail(site.ctl)  # raises on a broken chain


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        (None, "records the subject's study id"),
        ("", "records the subject's study id"),
        ("John Smith", "no spaces"),
        ("JohnSmith", "no digit"),
        ("SMITH-001", "looks like a word or a name"),
        ("001_0001", "not a study id"),
        ("0" * 40, "longer than"),
    ],
)
def test_a_removal_needs_a_valid_subject_id(
    site: Site, tmp_path: Path, subject: str | None, why: str
) -> None:
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 4)
    before = table_counts(site)
    with pytest.raises(BadInput, match=why) as err:
        inventory.remove(
            site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject=subject, dose="50 mg"
        )
    assert err.value.exit_code == 2
    assert table_counts(site) == before


def test_a_removal_records_subject_and_dose_apart_from_the_stock_records(
    site: Site, tmp_path: Path
) -> None:
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 4)
    with pytest.raises(BadInput, match="records the dose"):
        inventory.remove(site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0007")
    moved = inventory.remove(
        site.ctl, site.nurse, CABINET, STUDY_POCKET, 2, subject="001-0007", dose="100 mg"
    )
    with site.ctl.read() as session:
        row = session.get(StudyDispense, moved.txn_ids[0])
        txn = session.get(Transaction, moved.txn_ids[0])
    assert (row.protocol, row.subject, row.dose) == (PROTOCOL, "001-0007", "100 mg")
    assert txn.reason is None  # the stock record carries no subject
    entry = [p for _, a, p in audit_actions(site) if a == "stock.remove"][-1]
    assert entry["study"] == {"protocol": PROTOCOL, "subject": "001-0007", "dose": "100 mg"}
    # a subject id for a commercial pocket is refused: nothing to record it against
    site.assign("D1-P1", ACETAMINOPHEN)
    inventory.refill(
        site.ctl,
        site.pharmacist,
        CABINET,
        "D1-P1",
        parse_scan(datamatrix(ACETAMINOPHEN, EXPIRY, "C")),
        2,
    )
    with pytest.raises(BadInput, match="no investigational stock"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1, subject="001-0007", dose="1")


def test_a_study_pattern_decides_the_subject_format(site: Site, tmp_path: Path) -> None:
    assert check_subject("s12-a-003", None, "P") == "S12-A-003"
    assert check_subject("SITE07-0042", r"SITE\d{2}-\d{4}", "P") == "SITE07-0042"
    with pytest.raises(BadInput, match="does not match protocol P's format"):
        check_subject("07-0042", r"SITE\d{2}-\d{4}", "P")
    with pytest.raises(BadInput, match="regular expression"):
        studies.add_study(
            site.ctl,
            site.pharmacist,
            "P1",
            title="t",
            sponsor="s",
            investigator="i",
            subject_pattern="(",
        )


def test_a_closed_study_blocks_removals(site: Site, tmp_path: Path) -> None:
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 4)
    studies.close_study(site.ctl, site.pharmacist, PROTOCOL, "enrolment complete")
    with pytest.raises(StudyRefused, match="closed: no removals"):
        inventory.remove(
            site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0001", dose="50 mg"
        )
    with pytest.raises(StudyRefused, match="closed: no new stock"):
        receive(site, item_id, 1)
    # what is left still goes back to the pharmacy: unload works and stays on the record
    inventory.unload(site.ctl, site.pharmacist, CABINET, STUDY_POCKET, 4)
    record = accountability(site.ctl, site.pharmacist, PROTOCOL)
    assert [r.kind for r in record.rows] == ["receipt", "unload to pharmacy"]
    assert record.reconciled and record.lots[0].balance == 0


def test_expired_or_recalled_study_lots_block_as_commercial_lots_do(
    site: Site, tmp_path: Path
) -> None:
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 4, lot="R1")
    recalls.add_recall(site.ctl, site.pharmacist, STUDY_GTIN, "r1", "sponsor recall")
    with pytest.raises(Refused, match="recalled"):
        inventory.remove(
            site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0001", dose="50 mg"
        )
    with pytest.raises(Refused, match="recalled lot"):
        receive(site, item_id, 1, lot="R1")
    inventory.pull(site.ctl, site.pharmacist, CABINET, STUDY_POCKET, 4)
    receive(site, item_id, 3, lot="E1", expiry=(START + timedelta(days=1)).date())
    site.clock.advance(days=3)  # type: ignore[attr-defined]
    with pytest.raises(Refused, match="expired"):
        inventory.remove(
            site.ctl, site.nurse, CABINET, STUDY_POCKET, 1, subject="001-0001", dose="50 mg"
        )
    record = accountability(site.ctl, site.pharmacist, PROTOCOL)
    assert record.reconciled


def test_unused_units_go_back_to_the_pharmacy_not_into_the_pocket(
    site: Site, tmp_path: Path
) -> None:
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 5)
    moved = inventory.remove(
        site.ctl, site.nurse, CABINET, STUDY_POCKET, 2, subject="001-0003", dose="50 mg"
    )
    removal = moved.txn_ids[0]
    with pytest.raises(Refused, match="not put in the return bin"):
        returns.return_units(site.ctl, site.nurse, CABINET, removal, 1)
    with pytest.raises(Refused, match="not wasted"):
        waste.waste(site.ctl, site.nurse, CABINET, 1, "dropped", witness=None, removal_id=removal)
    with pytest.raises(BadInput, match="say why"):
        return_to_pharmacy(site.ctl, site.nurse, removal, 1, " ")
    done = return_to_pharmacy(site.ctl, site.nurse, removal, 1, "dose held")
    assert done.qty == 1 and done.protocol == PROTOCOL
    with pytest.raises(Refused, match="1 unit"):
        return_to_pharmacy(site.ctl, site.nurse, removal, 2, "dose held")
    with site.ctl.read() as session:
        pocket = session.execute(select(Pocket).where(Pocket.code == STUDY_POCKET)).scalar_one()
    assert pocket.on_hand == 3  # not back into the pocket
    record = accountability(site.ctl, site.nurse, PROTOCOL)
    assert [(r.kind, r.qty_in, r.qty_out, r.qty_returned, r.balance) for r in record.rows] == [
        ("receipt", 5, 0, 0, 5),
        ("dispense", 0, 2, 0, 3),
        ("return to pharmacy", 0, 0, 1, 3),
    ]
    assert record.rows[1].subject == record.rows[2].subject == "001-0003"
    assert record.reconciled and record.lots[0].on_hand == 3
    payload = next(p for _, a, p in audit_actions(site) if a == "study.return")
    assert payload["subject"] == "001-0003" and payload["reason"] == "dose held"


# --------------------------------------------------------------------- the accountability record
def test_the_record_reconciles_and_every_view_is_audited(site: Site, tmp_path: Path) -> None:
    item_id = set_up_study(site, tmp_path)
    receive(site, item_id, 6, lot="A")
    receive(site, item_id, 4, lot="B", expiry=EXPIRY + timedelta(days=30))
    inventory.remove(
        site.ctl, site.nurse, CABINET, STUDY_POCKET, 7, subject="002-0001", dose="50 mg"
    )
    inventory.count(site.ctl, site.pharmacist, CABINET, STUDY_POCKET, 2)  # one missing
    record = accountability(site.ctl, site.pharmacist, PROTOCOL)
    balances = {b.lot: (b.balance, b.on_hand) for b in record.lots}
    assert balances == {"A": (0, 0), "B": (2, 2)} and record.reconciled
    assert [r.kind for r in record.rows] == [
        "receipt",
        "receipt",
        "dispense",
        "dispense",
        "count correction",
    ]
    only_b = accountability(site.ctl, site.pharmacist, PROTOCOL, lot="b")
    assert {r.lot for r in only_b.rows} == {"B"} and [b.lot for b in only_b.lots] == ["B"]
    views = [(actor, p) for actor, a, p in audit_actions(site) if a == "study.accountability.view"]
    assert [(actor, p["lot"], p["rows"]) for actor, p in views] == [
        ("pharmacist", None, 5),
        ("pharmacist", "b", 3),
    ]
    # neither a pharmacist nor authorized: refused, audited
    with pytest.raises(StudyRefused, match="pharmacists and its authorized users only"):
        accountability(site.ctl, site.tech, PROTOCOL)
    last = audit_actions(site)[-1]
    assert last[0] == "technician" and last[1] == "study.refused" and last[2]["doing"] == "view"
