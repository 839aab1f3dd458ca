"""Hostile barcodes (issue 21): one table of scans, each accepted with what it says or refused with
why, through `parse_scan`, through `adc scan` (in process, and a few as a real subprocess) and
through scripted restocks. Refused means exit 2 and one line on stderr, never a traceback; a
refused scan in a script changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adc.controller.gs1 import GS, gtin_check_digit, parse_scan
from adc.errors import BadInput
from tests.conftest import run_adc
from tests.controller.site import PIN, fast_pins
from tests.session.helpers import (
    ONDANSETRON_VIAL,
    SessionSite,
    build_session_site,
    datamatrix,
    good_expiry,
)

ONDAN = "00304094755038"  # ondansetron 2 mg/mL vial
FURO = "00304096102045"  # furosemide 10 mg/mL vial
HEP = "00363323047016"  # heparin 5000 units/mL
EXP = date(2028, 6, 30)
E = "280630"
OLD = "200630"  # an expired expiry date
HINT_NO_GS = "the scanner is probably not sending GS"
ACCEPTED = tuple[str, str, date]

# (id, raw scan, (gtin, lot, expiry) when accepted, else a fragment of the refusal)
CASES: list[tuple[str, str, ACCEPTED | str]] = [
    # --- real-world forms that must stay accepted
    ("raw", f"01{FURO}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("]d2", f"]d201{FURO}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("]C1", f"]C101{FURO}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("]Q3", f"]Q301{FURO}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("]e0", f"]e001{FURO}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("gs-serial", f"]d201{FURO}17{E}10FU1234{GS}21AB1234", (FURO, "FU1234", EXP)),
    ("<GS>", f"01{FURO}10FU1234<GS>17{E}", (FURO, "FU1234", EXP)),
    ("<gs>", f"01{FURO}10FU1234<gs>17{E}", (FURO, "FU1234", EXP)),
    ("<Gs>", f"01{FURO}10FU1234<Gs>17{E}", (FURO, "FU1234", EXP)),
    ("text-x1d", f"01{FURO}10FU1234\\x1d17{E}", (FURO, "FU1234", EXP)),
    ("text-X1D", f"01{FURO}10FU1234\\X1D17{E}", (FURO, "FU1234", EXP)),
    ("text-u001d", f"01{FURO}10FU1234\\u001d17{E}", (FURO, "FU1234", EXP)),
    ("leading-gs", f"]d2{GS}01{FURO}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("trailing-gs", f"01{FURO}17{E}10FU1234{GS}", (FURO, "FU1234", EXP)),
    ("line-end", f"01{FURO}17{E}10FU1234\r\n", (FURO, "FU1234", EXP)),
    ("order-21-17-10", f"01{FURO}21SN12345678{GS}17{E}10FU1234", (FURO, "FU1234", EXP)),
    ("order-10-first", f"10FU1234{GS}01{FURO}17{E}", (FURO, "FU1234", EXP)),
    ("day-00", f"01{FURO}17280200" + "10FU1234", (FURO, "FU1234", date(2028, 2, 29))),
    ("hri", f"(01){FURO}(17){E}(10)FU1234", (FURO, "FU1234", EXP)),
    ("hri-spaces", f"(01) {FURO} (17) {E} (10) FU1234", (FURO, "FU1234", EXP)),
    ("hri-serial", f"(01){FURO}(21)AB1234(17){E}(10)FU1234", (FURO, "FU1234", EXP)),
    ("hri-lot-with-21", f"(01){FURO}(17){E}(10)FU123421AB1234", (FURO, "FU123421AB1234", EXP)),
    ("hri-12", f"(01){FURO}(17){E}(10)FU(12)280101", (FURO, "FU", EXP)),
    ("link", f"https://id.gs1.org/01/{FURO}/10/FU1234?17={E}", (FURO, "FU1234", EXP)),
    ("link-query", f"https://id.gs1.org/01/{FURO}?17={E}&10=FU1234", (FURO, "FU1234", EXP)),
    ("link-HTTPS", f"HTTPS://id.gs1.org/01/{FURO}/10/FU1234?17={E}", (FURO, "FU1234", EXP)),
    ("link-]Q1", f"]Q1https://id.gs1.org/01/{FURO}/10/FU1234?17={E}", (FURO, "FU1234", EXP)),
    ("same-ai-twice", f"(01){FURO}(17){E}(10)FU1234(10)FU1234", (FURO, "FU1234", EXP)),
    # real lots that only look like they contain an AI
    ("lot-HEP7", f"01{HEP}17{E}10HEP7", (HEP, "HEP7", EXP)),
    ("lot-A21B", f"01{FURO}17{E}10A21B", (FURO, "A21B", EXP)),
    ("lot-X2112", f"01{FURO}17{E}10X2112", (FURO, "X2112", EXP)),
    ("lot-AB21CDE", f"01{FURO}17{E}10AB21CDE", (FURO, "AB21CDE", EXP)),
    ("lot-numeric", f"01{FURO}17{E}102304015", (FURO, "2304015", EXP)),
    ("lot-count-tail", f"01{FURO}17{E}10FU12343010", (FURO, "FU12343010", EXP)),
    ("lot-10-digits", f"01{FURO}17{E}101210045678", (FURO, "1210045678", EXP)),
    ("lot-A10B", f"01{FURO}17{E}10A10B", (FURO, "A10B", EXP)),
    ("lot-punct", f"01{FURO}17{E}10AB-12/3.X", (FURO, "AB-12/3.X", EXP)),
    # --- 1. one AI twice with different values
    (
        "dup-17-expired-then-good",
        f"01{FURO}17{OLD}{GS}17{E}10FU1234",
        "AI 17 (expiry date) appears twice, '200630' and '280630'",
    ),
    (
        "dup-01-hep-then-furo",
        f"01{HEP}01{FURO}17{E}10FU1234",
        f"AI 01 (GTIN) appears twice, '{HEP}' and '{FURO}'",
    ),
    ("dup-01-hri", f"(01){HEP}(01){FURO}(17){E}(10)FU1234", "AI 01 (GTIN) appears twice"),
    (
        "dup-10-recalled-then-ok",
        f"01{FURO}17{E}10FUBAD1{GS}10FU1234",
        "AI 10 (lot) appears twice, 'FUBAD1' and 'FU1234'",
    ),
    ("dup-10-hri", f"(01){FURO}(17){E}(10)FUBAD1(10)FU1234", "AI 10 (lot) appears twice"),
    (
        "dup-17-link-query",
        f"https://id.gs1.org/01/{FURO}/10/FU1234?17={OLD}&17={E}",
        "AI 17 (expiry date) appears twice",
    ),
    (
        "dup-10-link",
        f"https://id.gs1.org/01/{FURO}/10/FUBAD1?17={E}&10=FU1234",
        "AI 10 (lot) appears twice",
    ),
    ("two-packs-gs", f"01{FURO}21S1{GS}17{OLD}10L1{GS}01{FURO}21S2{GS}17{E}10L2", "appears twice"),
    ("two-packs-]d2", f"]d201{FURO}17{E}10L1]d201{HEP}17{E}10L2", "two scans ran together"),
    ("two-packs-no-gs", f"01{FURO}17{E}10L01{FURO}17{E}10L", "implausible lot"),
    # --- 2. a missing GS: a variable-length field swallowed what followed it
    (
        "swallow-21",
        f"01{FURO}17{E}10FU123421AB1234",
        "implausible lot 'FU123421AB1234': it runs on into what parses as AI 21 (serial 'AB1234')",
    ),
    ("swallow-21-issue", "0100304096102045172806301" + "0FU123421AB1234", HINT_NO_GS),
    ("swallow-21-long", f"01{FURO}17{E}10LOT12112345678901", "AI 21 (serial '12345678901')"),
    (
        "swallow-17",
        f"01{FURO}10LOT917{E}",
        "implausible lot 'LOT917280630': it runs on into what parses as AI 17",
    ),
    (
        "swallow-17-has-gs",
        f"01{FURO}21S1{GS}10LOT917{E}",
        "the GS separator after it is missing (two packs",
    ),
    ("swallow-11", f"01{FURO}17{E}10FU123411280101", "AI 11 (production date '280101')"),
    ("swallow-240", f"01{FURO}17{E}10FU1234240ABC123", "AI 240 (additional product id 'ABC123')"),
    ("swallow-30-then-17", f"01{FURO}10FU123430517{E}", "AI 17 (expiry date '280630')"),
    ("swallow-01", f"01{FURO}17{E}10L01{HEP}", "AI 01 (GTIN"),
    ("swallow-10", f"01{FURO}17{E}10FU123410ABCDEF", "AI 10 (lot 'ABCDEF')"),
    ("swallow-by-serial", f"01{FURO}21S917{E}10FU1", "implausible serial 'S91728063010FU1'"),
    (
        "hri-unclosed-bracket",
        f"(01){FURO}(10)FU1234(17{E}",
        "implausible lot 'FU1234(17280630': it runs on into what parses as AI 17",
    ),
    ("hri-no-brackets-17", f"(01){FURO}(10)FU123417{E}", "brackets missing"),
    ("lot-too-long", f"01{FURO}17{E}10ABCDEFGHIJKLMNOPQRSTUVWXYZ", "longer than 20 characters"),
    (
        "serial-too-long",
        f"01{FURO}21SERIAL1234567890123417{E}10FU1234",
        "longer than 20 characters",
    ),
    ("hri-empty-ai", f"(01){FURO}(17){E}(10)FU(12)", "(12) has no value"),
    ("hri-12-not-date", f"(01){FURO}(17){E}(10)FU(12)34", "the due date (AI 12) must be 6 digits"),
    ("hri-unknown-ai", f"(01){FURO}(17){E}(10)FU(1)X", "(1) is not a GS1 Application Identifier"),
    # --- 3. short and odd strings
    ("]", "]", "not with a symbology identifier"),
    ("]1", "]1", "not with a symbology identifier"),
    ("] x", "] x", "not with a symbology identifier"),
    ("]Zx", "]Zx", "no data after the symbology identifier"),
    ("]d2-only", "]d2", "no data after the symbology identifier"),
    ("]é", "]é0100304096102045", "'é' at position 2 is not ASCII"),
    ("gtin-é", f"01{FURO}17{E}10FUé1234", "'é' at position 29 is not ASCII"),
    ("arabic-digit", f"01{FURO[:-1]}٥17{E}10FU1234", "is not ASCII"),
    ("control-char", f"01{FURO}17{E}10FU\x07", "control character 0x07"),
    ("nul", "\x00", "control character 0x00"),
    ("empty", "", "the scan is empty"),
    ("spaces", "   ", "the scan is empty"),
    ("gs-only", GS, "the scan is empty"),
    ("(", "(", "the bracketed form is"),
    ("()", "()", "the bracketed form is"),
    ("hello", "hello", "does not start with a GS1 Application Identifier"),
    ("1", "1", "does not start with a GS1 Application Identifier"),
    ("01", "01", "the GTIN (AI 01) is empty"),
    ("https", "https://", "not a GS1 Digital Link"),
    ("ipv6-link", "http://[::1", "not a GS1 Digital Link"),
    ("link-no-gtin", "https://id.gs1.org/10/ABC", "not a GS1 Digital Link"),
    (
        "link-bad-lot",
        f"https://id.gs1.org/01/{FURO}/10/A%20B?17={E}",
        "outside the GS1 character set",
    ),
    # --- 5. what cannot be used, said plainly
    ("upc-a", "304096102045", "a bare GTIN carries no expiry or lot (a UPC-A linear barcode)"),
    ("ean-13", "4006381333931", "(a EAN-13 linear barcode): scan the 2D DataMatrix"),
    ("gtin-14", FURO, "a bare GTIN carries no expiry or lot"),
    ("]E0", "]E04006381333931", "a bare GTIN carries no expiry or lot"),
    ("ndc", "0409-6102-04", "an NDC carries no expiry or lot"),
    ("ndc-digits", "0409610204", "an NDC carries no expiry or lot"),
    ("gtin-only-ai", f"01{FURO}", "only a GTIN, no expiry (AI 17) and no lot (AI 10)"),
    ("sscc", "00" + "1" * 18, "no GTIN (AI 01)"),
    ("check-digit", f"01{FURO[:-1]}7" + f"17{E}10FU1234", "has a wrong check digit (expected 5)"),
    ("no-expiry", f"01{FURO}10FU1234", "no expiry date (AI 17)"),
    ("no-lot", f"01{FURO}17{E}", "the lot (AI 10) is empty"),
    ("bad-date", f"01{FURO}1728023110FU1234", "the expiry date (AI 17) '280231' is not a date"),
    ("short-date", f"01{FURO}172806", "the expiry date (AI 17) must be 6 digits, not '2806'"),
    ("lot-#", f"01{FURO}17{E}10A#B", "implausible lot 'A#B': '#' is a character outside"),
    ("lot-space", f"01{FURO}17{E}10A B", "implausible lot 'A B'"),
    ("hri-lot-#", f"(01){FURO}(17){E}(10)A#B", "implausible lot 'A#B'"),
    ("count-letters", f"01{FURO}3012AB", "the count (AI 30) must be up to 8 digits"),
    ("short-gtin-hri", f"(01)123(17){E}", "the GTIN (AI 01) must be 14 digits, not '123'"),
]
BIIP_INTERNALS = re.compile(r"pattern|Failed to|\^|\\d|GS1ApplicationIdentifier|ParseError")


def _accepted(expected: ACCEPTED | str) -> bool:
    return isinstance(expected, tuple)


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_scan(raw: str, expected: ACCEPTED | str) -> None:
    if isinstance(expected, tuple):
        scan = parse_scan(raw)
        assert (scan.gtin, scan.lot, scan.expiry) == expected
        assert parse_scan(raw) == scan  # deterministic
    else:
        with pytest.raises(BadInput) as refused:
            parse_scan(raw)
        message = refused.value.message
        assert expected in message
        assert not BIIP_INTERNALS.search(message), message
        assert "\n" not in message and GS not in message


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert sum(_accepted(c[2]) for c in CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def scan_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("scan-home")
    url = f"sqlite:///{home / 'adc.db'}"
    result = CliRunner().invoke(_app(), ["init", "--db", url], env={"ADC_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return url


def _app():  # type: ignore[no-untyped-def]
    from adc.cli import app

    return app


# the rows a shell cannot pass as an argument (NUL) or that are empty (typer asks for it)
_NOT_AN_ARGUMENT = {"nul", "empty"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [c[1:] for c in CASES if c[0] not in _NOT_AN_ARGUMENT],
    ids=[c[0] for c in CASES if c[0] not in _NOT_AN_ARGUMENT],
)
def test_adc_scan(scan_db: str, raw: str, expected: ACCEPTED | str) -> None:
    result = CliRunner().invoke(_app(), ["scan", raw, "--db", scan_db, "--json"])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if isinstance(expected, tuple):
        assert result.exit_code == 0, result.stderr
        shown = json.loads(result.stdout)
        assert (shown["gtin"], shown["lot"], shown["expiry"]) == (
            expected[0],
            expected[1],
            expected[2].isoformat(),
        )
    else:
        assert result.exit_code == 2, result.stdout + result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert expected in lines[0]


@pytest.mark.parametrize(
    "raw", ["]", "]1", "] x", "]é0100304096102045", f"01{FURO}17{E}10FU123421AB1234"]
)
def test_adc_scan_as_a_process(raw: str, tmp_path: Path) -> None:
    result = run_adc("scan", raw, env={"ADC_HOME": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


def test_the_separator_spellings_all_reach_adc_scan(scan_db: str) -> None:
    for spelled in ("<GS>", "<gs>", "\\x1d", GS):
        result = CliRunner().invoke(
            _app(), ["scan", f"01{FURO}10FU1234{spelled}17{E}", "--db", scan_db, "--json"]
        )
        assert result.exit_code == 0 and json.loads(result.stdout)["lot"] == "FU1234"


# ------------------------------------------------------------------------- scripted restocks
@pytest.fixture
def session_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionSite]:
    """The restock-session tests' site (tests/session): cabinet W1, four pockets, all empty."""
    fast_pins(monkeypatch)
    built = build_session_site(tmp_path / "adc.db")
    yield built
    built.site.ctl.db.close()


def _restock(site: SessionSite, script: Path):  # type: ignore[no-untyped-def]
    result = run_adc(
        "restock",
        "--cabinet",
        "W1",
        "--backend",
        "sim:",
        "--script",
        str(script),
        env=site.env(ADC_USER="technician", ADC_PIN=PIN),
        timeout=60,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_a_script_of_hostile_scans_changes_nothing(
    session_site: SessionSite, tmp_path: Path
) -> None:
    hostile = [
        c
        for c in CASES
        if c[0]
        in {
            "]",
            "]1",
            "]é",
            "swallow-21",
            "dup-01-hep-then-furo",
            "dup-10-recalled-then-ok",
            "text-x1d",
        }
    ]
    lines = "\n".join(f"[[line]]\nscan = {json.dumps(raw)}\n" for _, raw, _ in hostile)
    script = tmp_path / "hostile.toml"
    script.write_text(lines)
    before = session_site.audit_count()
    result = _restock(session_site, script)
    assert result.returncode == 2
    assert "nothing was done" in result.stderr
    for _, _, expected in hostile:
        if isinstance(expected, str):
            assert expected in result.stderr, (expected, result.stderr)
    # the one good row (the 4-character text \x1d as the separator) is no problem
    assert f"{len(hostile) - 1} problem(s) in restock script" in result.stderr
    assert session_site.audit_count() == before
    assert session_site.on_hand("D1-P1") == 0


def test_a_case_gtin_is_refused_as_a_case_not_as_the_wrong_drug(
    session_site: SessionSite, tmp_path: Path
) -> None:
    body = "1" + ONDANSETRON_VIAL[1:13]
    case = body + str(gtin_check_digit(body))  # a case of ondansetron vials, not registered
    good = good_expiry()
    script = tmp_path / "case.toml"
    script.write_text(
        f"""\
[[line]]
pocket = "D1-P1"
scans = [{json.dumps(datamatrix(case, good, "CASE1"))}, {json.dumps(datamatrix(ONDANSETRON_VIAL, good, "ON1"))}]
quantity = 10
"""
    )
    result = _restock(session_site, script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"GTIN {case} is a case or bundle (indicator 1)" in result.stdout
    assert f"unit GTIN {ONDANSETRON_VIAL}" in result.stdout
    assert "wrong drug" not in result.stdout
    assert session_site.rows("SELECT lot FROM stock_lot") == [("ON1",)]
