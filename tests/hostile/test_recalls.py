"""Hostile input against recalls (issue 21, defects 1 and 4; issue 20's double counting).

A recall is of a product's lot: whichever of the product's GTINs (or its NDC) the notice names,
and however the lot's case or surrounding spaces are written, every pocket holding that lot is
blocked, listed on the pull list, and a scan of the lot is refused at restock — once per pocket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from adc.controller import formulary, inventory, recalls, reports
from adc.controller.gs1 import gtin_for_ndc, parse_scan
from adc.controller.lots import lot_key
from adc.controller.models import StockLot
from adc.controller.stock import block_of, find_pocket
from adc.errors import BadInput, Refused
from tests.conftest import run_adc
from tests.controller.dbs import BACKENDS, PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import (
    CABINET,
    HEPARIN,
    ONDANSETRON_VIAL,
    PIN,
    Site,
    build_site,
    fast_pins,
    hri,
)

HEPARIN_2 = "50363323047011"  # the demo formulary's second heparin GTIN (same NDC 63323-047-01)
HEPARIN_NDC = "63323-047-01"
GOOD = date(2028, 6, 30)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql" and not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    url, drop = fresh_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture
def site(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    fast_pins(monkeypatch)
    built = build_site(db_url)
    yield built
    built.ctl.db.close()


def refill(site: Site, pocket: str, gtin: str, lot: str, qty: int = 2, expiry: date = GOOD):  # type: ignore[no-untyped-def]
    return inventory.refill(
        site.ctl, site.tech, CABINET, pocket, parse_scan(hri(gtin, expiry, lot)), qty
    )


# ----------------------------------------------------------------------------- the table of cases
# (how the recall is entered) × (what is scanned): the same lot of the same product every time.
RECALLS = [
    pytest.param({"gtin": HEPARIN, "lot": "HEP7"}, id="gtin1-exact"),
    pytest.param({"gtin": HEPARIN_2, "lot": "HEP7"}, id="gtin2-exact"),
    pytest.param({"gtin": HEPARIN, "lot": "hep7"}, id="gtin1-lower"),
    pytest.param({"gtin": HEPARIN_2, "lot": "  Hep7 "}, id="gtin2-mixed-spaces"),
    pytest.param({"ndc": HEPARIN_NDC, "lot": "HEP7"}, id="ndc"),
]
SCANS = [
    (HEPARIN, "HEP7"),
    (HEPARIN_2, "HEP7"),
    (HEPARIN, "hep7"),
    (HEPARIN_2, "hEp7"),
]
POCKETS = ["D2-P1", "D2-P2", "D2-P3", "D2-P4"]  # one per scan, stocked before the recall


def _add(site: Site, entered: dict[str, str], reason: str = "particulates") -> list[str]:
    return recalls.add_recall(
        site.ctl,
        site.pharmacist,
        entered.get("gtin"),
        entered["lot"],
        reason,
        ndc=entered.get("ndc"),
    )


@pytest.mark.parametrize("entered", RECALLS)
def test_a_recall_covers_every_gtin_and_spelling_of_the_lot(
    site: Site, entered: dict[str, str]
) -> None:
    site.assign("D1-P1", HEPARIN)  # holds a good lot: the recall check is what refuses there
    refill(site, "D1-P1", HEPARIN, "OK1")
    for pocket, (gtin, lot) in zip(POCKETS, SCANS, strict=True):
        site.assign(pocket, HEPARIN)
        refill(site, pocket, gtin, lot)
    site.assign("D3-P1", ONDANSETRON_VIAL)  # another product, same lot text: not recalled
    refill(site, "D3-P1", ONDANSETRON_VIAL, "HEP7")
    site.assign("D3-P2", HEPARIN)  # the same product, another lot: not recalled
    refill(site, "D3-P2", HEPARIN_2, "HEP70")

    blocked = _add(site, entered)

    expected = [f"{CABINET}/{p}" for p in POCKETS]
    assert blocked == expected
    listed = recalls.recalled_stock(site.ctl)
    assert [(r.pocket, lot_key(r.lot), r.qty) for r in listed] == [(p, "HEP7", 2) for p in POCKETS]
    with site.ctl.read() as session:
        for pocket in POCKETS:
            block = block_of(
                session, find_pocket(session, CABINET, pocket), site.clock.now().date()
            )
            assert block is not None and "recalled lot" in block.reason, pocket
        for pocket in ("D1-P1", "D3-P1", "D3-P2"):
            assert block_of(session, find_pocket(session, CABINET, pocket), GOOD) is None
    for pocket in POCKETS:
        with pytest.raises(Refused, match="recalled lot"):
            inventory.remove(site.ctl, site.nurse, CABINET, pocket, 1)
    assert inventory.remove(site.ctl, site.nurse, CABINET, "D3-P1", 1).on_hand == 1
    for gtin, lot in SCANS:
        with pytest.raises(Refused, match=r"recalled lot: GTIN \d{14} lot \S+ is under recall"):
            refill(site, "D1-P1", gtin, lot)
    refill(site, "D1-P1", HEPARIN_2, "HEP7X")  # a different lot is accepted
    refill_lines = {line.pocket: line.blocked for line in reports.refill_list(site.ctl)}
    assert all(refill_lines[p] == "recalled" for p in POCKETS)
    with pytest.raises(Refused, match="recalled already"):
        _add(site, {**entered, "lot": " hEP7"})
    pulled = inventory.pull(site.ctl, site.tech, CABINET, "D2-P2", 2)
    assert pulled.on_hand == 0
    assert [r.pocket for r in recalls.recalled_stock(site.ctl)] == ["D2-P1", "D2-P3", "D2-P4"]


def test_a_gtin_added_to_the_item_after_the_recall_is_covered(site: Site, tmp_path: Path) -> None:
    new_gtin = "04006381333931"  # carries no NDC: only the item's GTIN table links it
    unknown = "00012345600012"  # not in the formulary when the recall arrives
    recalls.add_recall(site.ctl, site.pharmacist, HEPARIN, "LATE1", "x")
    recalls.add_recall(site.ctl, site.pharmacist, unknown, "LATE2", "y")
    site.assign("D1-P1", HEPARIN)
    refill(site, "D1-P1", HEPARIN, "LATE2")  # the unknown GTIN is not heparin's yet: accepted
    csv = tmp_path / "items.csv"
    csv.write_text(
        "name,strength,form,ndc,gtins,schedule,high_alert,unit_weight_g\n"
        f"Heparin,5000 units/mL 1 mL,vial,{HEPARIN_NDC},"
        f"{HEPARIN};{HEPARIN_2};{new_gtin};{unknown},,yes,4.5\n"
    )
    formulary.import_items(site.ctl, site.pharmacist, csv)
    with pytest.raises(Refused, match="recalled lot: GTIN 04006381333931 lot late1"):
        refill(site, "D1-P1", new_gtin, "late1")
    assert [r.pocket for r in recalls.recalled_stock(site.ctl)] == ["D1-P1"]  # LATE2, now heparin
    with pytest.raises(Refused, match="recalled lot LATE2"):
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1)


def test_a_recall_of_an_unknown_gtin_matches_that_gtin_only(site: Site) -> None:
    blocked = recalls.add_recall(site.ctl, site.pharmacist, "00012345600012", "HEP7")
    assert blocked == []
    site.assign("D1-P1", HEPARIN)
    refill(site, "D1-P1", HEPARIN, "HEP7")
    assert recalls.recalled_stock(site.ctl) == []


# ------------------------------------------------------------------------- lots compare by key
def test_a_lot_scanned_in_another_case_adds_to_the_same_stock_lot(site: Site) -> None:
    site.assign("D1-P1", HEPARIN)
    refill(site, "D1-P1", HEPARIN, "ab12", 2)
    refill(site, "D1-P1", HEPARIN, "AB12", 3)
    with site.ctl.read() as session:
        held = session.execute(select(StockLot.lot, StockLot.qty)).all()
    assert [tuple(row) for row in held] == [("ab12", 5)]


# ----------------------------------------------------------------- each pocket listed once only
def test_a_pocket_is_blocked_and_named_once(site: Site, tmp_path: Path) -> None:
    site.assign("D1-P1", HEPARIN)
    refill(site, "D1-P1", HEPARIN, "L000", 2, date(2028, 1, 31))
    refill(site, "D1-P1", HEPARIN, "L000", 2, date(2028, 6, 30))  # same lot, second expiry
    refill(site, "D1-P1", HEPARIN_2, "L000", 1, date(2028, 6, 30))  # same lot, other GTIN
    blocked = recalls.add_recall(site.ctl, site.pharmacist, HEPARIN, "L000", "r")
    assert blocked == [f"{CABINET}/D1-P1"]
    csv = tmp_path / "recalls.csv"
    csv.write_text(f"gtin,lot,reason\n{HEPARIN_2},L000,again\n{HEPARIN},L001,other\n")
    result = recalls.import_recalls(site.ctl, site.pharmacist, csv)
    assert (result.added, result.blocked_pockets) == (2, [f"{CABINET}/D1-P1"])
    with pytest.raises(Refused) as refused:
        inventory.remove(site.ctl, site.nurse, CABINET, "D1-P1", 1)
    assert refused.value.message.count("L000") == 1, refused.value.message
    listed = recalls.recalled_stock(site.ctl)  # one row per stock lot, not per matching recall
    assert sorted((r.gtin, r.expiry, r.qty) for r in listed) == [
        (HEPARIN, "2028-01-31", 2),
        (HEPARIN, "2028-06-30", 2),
        (HEPARIN_2, "2028-06-30", 1),
    ]
    pulled = inventory.pull(site.ctl, site.tech, CABINET, "D1-P1", 5)
    assert pulled.on_hand == 0 and pulled.discrepancy_id is None


# ----------------------------------------------------------------------- ASCII identifiers only
ARABIC_GTIN = "٠٠٣٠٤٠٩٦١٠٢٠٤٥"  # 00304096102045 in Arabic-Indic digits


@pytest.mark.parametrize(
    ("gtin", "ndc", "lot", "field"),
    [
        (ARABIC_GTIN, None, "A1", "GTIN"),
        ("００３６３３２３０４７０１６", None, "A1", "GTIN"),  # fullwidth digits
        (None, "٦٣٣٢٣-٠٤٧-٠١", "A1", "NDC"),
        (HEPARIN, None, "A١", "lot"),
        (HEPARIN, None, "ＨＥＰ７", "lot"),
        (None, None, "A1", "GTIN or NDC"),
        (HEPARIN, HEPARIN_NDC, "A1", "GTIN or NDC"),
    ],
)
def test_identifiers_outside_ascii_are_bad_input(
    site: Site, gtin: str | None, ndc: str | None, lot: str, field: str
) -> None:
    with pytest.raises(BadInput, match=field):
        recalls.add_recall(site.ctl, site.pharmacist, gtin, lot, ndc=ndc)
    assert recalls.recalled_stock(site.ctl) == []


def test_recall_import_refuses_non_ascii_rows(site: Site, tmp_path: Path) -> None:
    csv = tmp_path / "recalls.csv"
    csv.write_text(f"gtin,lot\n{HEPARIN},OK1\n{ARABIC_GTIN},A1\n{HEPARIN},A١\n", encoding="utf-8")
    with pytest.raises(BadInput) as err:
        recalls.import_recalls(site.ctl, site.pharmacist, csv)
    assert [d.split(":")[0] for d in err.value.details] == ["line 3", "line 4"]
    assert "GTIN" in err.value.details[0] and "lot" in err.value.details[1]


def test_ndc_recall_gtin_is_the_ndc_gtin() -> None:
    assert gtin_for_ndc("6332304701") == HEPARIN


# ------------------------------------------------------------------------------ through the CLI
def adc(url: str, *args: str, user: str | None = "pharmacist"):  # type: ignore[no-untyped-def]
    env = {"ADC_DATABASE_URL": url, "ADC_PIN": PIN}
    if user:
        env["ADC_USER"] = user
    result = run_adc(*args, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_cli_recall_of_one_gtin_lists_the_other(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADC_HOME", str(tmp_path / "home"))
    site.assign("D2-P1", HEPARIN, par=8, critical_low=2, max_qty=12)
    refill(site, "D2-P1", HEPARIN_2, "HEP7", 8)  # the scan: the other GTIN
    site.ctl.db.close()
    result = adc(site.url, "recall", "add", "--gtin", ARABIC_GTIN, "--lot", "HEP7")
    assert result.returncode == 2 and "GTIN" in result.stderr
    result = adc(site.url, "recall", "add", "--gtin", HEPARIN, "--lot", " hep7 ", "--reason", "p")
    assert result.returncode == 0, result.stderr
    assert f"1 pocket(s) blocked: {CABINET}/D2-P1" in result.stdout
    result = adc(site.url, "report", "recalls", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(r["pocket"], r["gtin"], r["lot"], r["qty"]) for r in listed] == [
        ("D2-P1", HEPARIN_2, "HEP7", 8)
    ]
    result = adc(site.url, "recall", "add", "--ndc", HEPARIN_NDC, "--lot", "HEP8")
    assert result.returncode == 0 and "0 pocket(s) blocked" in result.stdout, result.stderr
