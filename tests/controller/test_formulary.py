"""Formulary import: all rows or none, every bad row with its line number, idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from adc.controller import formulary
from adc.controller.audit import verify_trail
from adc.controller.gs1 import gtin_for_ndc
from adc.controller.models import AuditEntry, Item, ItemGtin
from adc.errors import BadInput
from tests.controller.site import DEMO_FORMULARY, ONDANSETRON_VIAL, Site

HEADER = "name,strength,form,ndc,gtins,schedule,high_alert,unit_weight_g\n"


def _counts(site: Site) -> tuple[int, int, int]:
    with site.ctl.read() as s:
        return (
            s.execute(select(func.count()).select_from(Item)).scalar_one(),
            s.execute(select(func.count()).select_from(ItemGtin)).scalar_one(),
            s.execute(select(func.count()).select_from(AuditEntry)).scalar_one(),
        )


def test_the_demo_formulary_imports_once_and_reimports_as_unchanged(site: Site) -> None:
    items = formulary.list_items(site.ctl)
    assert len(items) == 36
    morphine = next(i for i in items if i.name == "Morphine sulfate" and i.form == "cartridge")
    assert (morphine.schedule, morphine.high_alert, morphine.unit_weight_g) == ("II", True, 6.3)
    before = _counts(site)
    again = formulary.import_items(site.ctl, site.pharmacist, DEMO_FORMULARY)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 36)
    assert _counts(site) == before  # not even an audit entry: nothing changed


def test_a_changed_row_updates_its_item_and_adds_gtins(site: Site, tmp_path: Path) -> None:
    extra = gtin_for_ndc("0409475503", 3)
    csv = tmp_path / "update.csv"
    csv.write_text(
        HEADER + f"Ondansetron,2 mg/mL 2 mL,vial,0409-4755-03,{ONDANSETRON_VIAL};{extra},,no,4.7\n"
    )
    result = formulary.import_items(site.ctl, site.pharmacist, csv)
    assert (result.added, result.updated) == (0, 1) and result.gtins_added == 1
    with site.ctl.read() as s:
        item = formulary.find_item(s, extra)
        assert item.unit_weight_g == 4.7 and formulary.find_item(s, "50304094755033").id == item.id
    verify_trail(site.ctl)


def test_bad_rows_are_all_reported_by_line_and_nothing_is_imported(
    site: Site, tmp_path: Path
) -> None:
    good = gtin_for_ndc("1111122222")
    csv = tmp_path / "bad.csv"
    csv.write_text(
        HEADER
        + f"Good one,1 mg,tablet,11111-2222-2,{good},,no,0.5\n"  # line 2: fine
        + ",1 mg,tablet,,00304094755037,VI,maybe,-1\n"  # line 3: many problems
        + f'"Multi\nline",5 mg,tablet,,{gtin_for_ndc("3333344444")},,no,\n'  # lines 4-5: fine
        + f"Clash,1 mg,tablet,,{good},,no,\n"  # line 6: GTIN on line 2 too
        + f"Wrong NDC,1 mg,tablet,22222-3333-3,{gtin_for_ndc('2222233334')},,no,\n"  # line 7
        + "Short row,1 mg\n"  # line 8
        + f"Taken,1 mg,tablet,,{ONDANSETRON_VIAL},,no,\n"  # line 9: belongs to ondansetron
    )
    before = _counts(site)
    with pytest.raises(BadInput, match="bad row") as err:
        formulary.import_items(site.ctl, site.pharmacist, csv)
    details = "\n".join(err.value.details)
    assert [d.split(":")[0] for d in err.value.details] == ["line 3", "line 6", "line 7", "line 8"]
    for fragment in (
        "name is empty",
        "wrong check digit",
        "schedule 'VI'",
        "high_alert 'maybe'",
        "unit_weight_g -1",
        "GTIN " + good + " is on line 2",
        "carries NDC 2222233334",
        "2 fields",
    ):
        assert fragment in details, fragment
    assert "nothing" in err.value.message or "no items imported" in err.value.message
    assert _counts(site) == before
    # line 9 is only found against the database, once the file itself is clean:
    csv.write_text(HEADER + f"Taken,1 mg,tablet,,{ONDANSETRON_VIAL},,no,\n")
    with pytest.raises(BadInput) as err:
        formulary.import_items(site.ctl, site.pharmacist, csv)
    assert err.value.details == [
        f"line 2: GTIN {ONDANSETRON_VIAL} belongs to Ondansetron 2 mg/mL 2 mL already"
    ]
    assert _counts(site) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("name,strength\n", "missing column"),
        (HEADER.strip() + ",colour\n", "unknown column\\(s\\) colour"),
        (HEADER, "no items in the file"),
    ],
)
def test_unusable_files(site: Site, tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "f.csv"
    csv.write_text(text)
    with pytest.raises(BadInput, match=message):
        formulary.import_items(site.ctl, site.pharmacist, csv)


def test_missing_and_binary_files(site: Site, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        formulary.import_items(site.ctl, site.pharmacist, tmp_path / "none.csv")
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(BadInput, match="not UTF-8"):
        formulary.import_items(site.ctl, site.pharmacist, blob)


def test_items_are_found_by_id_ndc_or_gtin(site: Site) -> None:
    with site.ctl.read() as s:
        by_gtin = formulary.find_item(s, ONDANSETRON_VIAL)
        assert formulary.find_item(s, "0409-4755-03").id == by_gtin.id
        assert formulary.find_item(s, f"#{by_gtin.id}").id == by_gtin.id
        with pytest.raises(BadInput, match="no item 'aspirin'"):
            formulary.find_item(s, "aspirin")
