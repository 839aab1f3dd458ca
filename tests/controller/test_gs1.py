"""GS1 identifiers and scans: check digits, NDCs in GTINs, the three scan forms, bad barcodes."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adc.controller.gs1 import (
    GS,
    Scan,
    gtin_check_digit,
    gtin_for_ndc,
    ndc_in_gtin,
    normalize_gtin,
    normalize_ndc,
    parse_scan,
    scanner_text,
    unit_gtin,
)
from adc.errors import BadInput
from tests.controller.site import DEMO_FORMULARY, datamatrix, digital_link, hri

GTIN = "00304094755038"  # ondansetron 2 mg/mL vial, NDC 0409-4755-03


def test_check_digits_of_known_gtins() -> None:
    assert gtin_check_digit("0030409475503") == 8
    assert gtin_check_digit("400638133393") == 1  # EAN-13 4006381333931
    assert normalize_gtin("4006381333931") == "04006381333931"
    with pytest.raises(BadInput, match="wrong check digit"):
        normalize_gtin("00304094755037")
    with pytest.raises(BadInput, match="must be 8, 12, 13 or 14 digits"):
        normalize_gtin("12345")


def test_ndc_forms_and_the_ndc_a_gtin_carries() -> None:
    assert normalize_ndc("0409-4755-03") == normalize_ndc("0409475503") == "0409475503"
    assert normalize_ndc("68084-381-01") == "6808438101"
    with pytest.raises(BadInput, match="NDC '0409-47550-3'"):
        normalize_ndc("0409-47550-3")
    assert ndc_in_gtin(GTIN) == "0409475503"
    assert ndc_in_gtin("04006381333931") is None  # a European GTIN carries no NDC
    assert gtin_for_ndc("0409475503") == GTIN
    assert gtin_for_ndc("0409475503", 5) == "50304094755033"


def test_the_demo_formulary_has_valid_gtins_carrying_its_ndcs() -> None:
    rows = list(csv.DictReader(DEMO_FORMULARY.open()))
    assert len(rows) >= 30
    assert {r["schedule"] for r in rows} >= {"", "II", "III", "IV", "V"}
    assert any(r["high_alert"] == "yes" for r in rows) and any(
        r["high_alert"] == "no" for r in rows
    )
    for row in rows:
        for gtin in row["gtins"].split(";"):
            assert normalize_gtin(gtin) == gtin
            assert ndc_in_gtin(gtin) == normalize_ndc(row["ndc"])
        assert float(row["unit_weight_g"]) > 0


def test_the_three_scan_forms_say_the_same() -> None:
    expiry = date(2027, 6, 30)
    scans = [parse_scan(f(GTIN, expiry, "AB-12")) for f in (datamatrix, hri, digital_link)]
    assert {(s.gtin, s.expiry, s.lot) for s in scans} == {(GTIN, expiry, "AB-12")}
    assert [s.form for s in scans] == ["raw", "hri", "digital-link"]


def test_raw_data_with_serial_and_a_scanner_line_end() -> None:
    scan = parse_scan(f"01{GTIN}1727063010LOT1{GS}21SN123456\r\n")
    assert (scan.lot, scan.serial) == ("LOT1", "SN123456")


def test_day_00_means_the_last_day_of_the_month() -> None:
    assert parse_scan(f"(01){GTIN}(17)270200(10)X1").expiry == date(2027, 2, 28)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "the scan is empty"),
        ("hello", "malformed barcode 'hello'"),
        (GTIN, "a bare GTIN carries no expiry or lot"),
        (f"01{GTIN[:-1]}7" + "1727063010X", "malformed barcode .*check digit"),
        (f"01{GTIN}10LOT1", "no expiry date"),
        (f"01{GTIN}17270630", "the lot \\(AI 10\\) is empty"),
        ("(01)123(17)270630", "malformed barcode"),
        ("https://id.gs1.org/10/ABC", "malformed barcode"),
        # the missing-separator cases: the lot swallowed what followed it
        (f"01{GTIN}10LOT917270630", "implausible lot 'LOT917270630'.*AI 17"),
        (f"01{GTIN}1727063010LOT12112345678901", "implausible lot .*AI 21 \\(serial"),
        (f"01{GTIN}1727063010ABCDEFGHIJKLMNOPQRSTUVWXYZ", "implausible lot .*longer than 20"),
        (f"01{GTIN}1727063010AB\x07C", "control character 0x07"),
        (f"(01){GTIN}(17)270630(10)A#B", "implausible lot 'A#B'.*character set"),
    ],
)
def test_unusable_barcodes_are_bad_input_with_the_reason(raw: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_scan(raw)


LOTS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=10)


@given(
    ndc=st.from_regex(r"\A[0-9]{10}\Z"),
    expiry=st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31)),
    lot=LOTS,
)
def test_any_valid_pack_parses_identically_in_every_form(ndc: str, expiry: date, lot: str) -> None:
    # the lot closed by a GS (a serial follows): no swallowed-AI question arises
    gtin = gtin_for_ndc(ndc)
    for scanned in (datamatrix(gtin, expiry, lot, "SN1"), hri(gtin, expiry, lot)):
        scan = parse_scan(scanned)
        assert (scan.gtin, scan.expiry, scan.lot) == (gtin, expiry, lot)
    scan = parse_scan(digital_link(gtin, expiry, lot))
    assert (scan.gtin, scan.expiry, scan.lot) == (gtin, expiry, lot)


@given(
    ndc=st.from_regex(r"\A[0-9]{10}\Z"),
    expiry=st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31)),
    lot=LOTS,
)
def test_a_last_lot_is_taken_whole_or_refused_as_swallowing(
    ndc: str, expiry: date, lot: str
) -> None:
    """A lot last in raw data (no GS after it) is the lot, unless the swallowed-AI rule refuses
    it — and then the message names the AI it ran into."""
    gtin = gtin_for_ndc(ndc)
    outcome: object
    try:
        outcome = parse_scan(datamatrix(gtin, expiry, lot))
    except BadInput as err:
        outcome = err.message
    if isinstance(outcome, str):
        assert outcome.startswith(f"implausible lot {lot!r}: it runs on into what parses as AI")
    else:
        assert isinstance(outcome, Scan)
        assert (outcome.gtin, outcome.expiry, outcome.lot) == (gtin, expiry, lot)


def test_every_spelling_of_the_separator_is_the_separator() -> None:
    for spelled in ("<GS>", "<gs>", "<Gs>", "\\x1d", "\\X1D", "\\u001d", GS):
        assert scanner_text(f" 01{GTIN}10AB{spelled}17270630\r\n") == f"01{GTIN}10AB{GS}17270630"
        scan = parse_scan(f"01{GTIN}10AB{spelled}17270630")
        assert (scan.lot, scan.expiry) == ("AB", date(2027, 6, 30))


def test_the_unit_gtin_inside_a_case_gtin() -> None:
    case = gtin_for_ndc("0409475503", 5)
    assert unit_gtin(case) == GTIN
    assert unit_gtin(GTIN) is None  # a unit already
    assert unit_gtin("90304094755035") is None  # indicator 9: variable measure, not a case
    assert unit_gtin("123") is None


@pytest.mark.parametrize(
    ("lot", "refused_by"),
    [
        ("FU1234", None),
        ("HEP7", None),
        ("A21B", None),  # "21" + one character: part of the lot
        ("X2112", None),
        ("AB21CDE", None),  # a 5-character tail: still taken as the lot
        ("2304015", None),  # numeric: "30" + 4015 is a lone count, not evidence
        ("FU12343010", None),
        ("12345678901", None),
        ("FU123421AB1234", "AI 21"),  # six characters with a letter after "21"
        ("LOT12112345678901", "AI 21"),  # eight digits or more after "21"
        ("LOT917270630", "AI 17"),  # a valid date after "17"
        ("LOT11280101", "AI 11"),
        ("L0100304094755038", "AI 01"),  # a GTIN with a valid check digit
        ("FU123424012345X", "AI 240"),
        ("FU123410ABCDEF", "AI 10"),
        ("FU123430517270630", "AI 17"),  # a count (AI 30) then an expiry
    ],
)
def test_the_swallowed_ai_rule(lot: str, refused_by: str | None) -> None:
    raw = f"01{GTIN}1727063010{lot}"
    if refused_by is None:
        assert parse_scan(raw).lot == lot
        assert parse_scan(f"01{GTIN}10{lot}{GS}17270630").lot == lot
    else:
        with pytest.raises(BadInput, match=f"implausible lot '{lot}': .*as {refused_by} "):
            parse_scan(raw)
        # explicitly delimited (a GS after it, or the bracketed form): the lot as written
        assert parse_scan(f"01{GTIN}10{lot}{GS}17270630").lot == lot
        assert parse_scan(f"(01){GTIN}(17)270630(10){lot}").lot == lot
