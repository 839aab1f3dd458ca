"""Fuzzing `parse_scan` (issue 21): whatever the scanner or a person sends, only an `AdcError`
escapes, and an accepted scan is one the cabinet can record.

The number of examples per test comes from ADC_FUZZ_EXAMPLES (default 300, about 10 s for the
module); the issue's campaign ran 10,000: `ADC_FUZZ_EXAMPLES=10000 pytest tests/hostile/test_barcode_fuzz.py`.
"""

from __future__ import annotations

import os
import re
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adc.controller.gs1 import GS, MAX_LOT, Scan, gtin_check_digit, gtin_for_ndc, parse_scan
from adc.errors import AdcError

EXAMPLES = int(os.environ.get("ADC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=EXAMPLES <= 1000,  # the default run is the same every time; a campaign explores
)
CSET82 = re.compile(r"""[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+""")
GS1_ALPHABET = "0123456789" * 4 + "ABCDEFGHIJKLMNOPQRSTUVWXYZabc-./()]<>" + GS + "\\x1dGS"
PREFIXES = ["", "]d2", "]C1", "]Q3", "]e0", "]d1", "]E0", "]", "]Z", "(", "https://id.gs1.org/"]


def outcome(raw: str) -> Scan | str:
    """The scan, or the message of the AdcError; anything else propagates and fails the test."""
    try:
        scan = parse_scan(raw)
    except AdcError as err:
        message = err.message
    else:
        check_accepted(scan)
        return scan
    assert message and "\n" not in message and "Traceback" not in message
    return message


def check_accepted(scan: Scan) -> None:
    assert re.fullmatch(r"[0-9]{14}", scan.gtin), scan
    assert gtin_check_digit(scan.gtin[:-1]) == int(scan.gtin[-1]), scan
    assert scan.lot.isascii() and 1 <= len(scan.lot) <= MAX_LOT, scan
    assert CSET82.fullmatch(scan.lot), scan
    assert isinstance(scan.expiry, date)
    assert scan.form in ("raw", "hri", "digital-link")


def check(raw: str) -> None:
    first = outcome(raw)
    assert outcome(raw) == first  # deterministic


@FUZZ
@given(st.text(max_size=60))
def test_any_text(raw: str) -> None:
    check(raw)


@FUZZ
@given(st.sampled_from(PREFIXES), st.text(alphabet=GS1_ALPHABET, max_size=70))
def test_gs1_like_text(prefix: str, body: str) -> None:
    check(prefix + body)


@st.composite
def valid_scans(draw: st.DrawFn) -> str:
    gtin = gtin_for_ndc(draw(st.from_regex(r"\A[0-9]{10}\Z")), draw(st.integers(0, 9)))
    expiry = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31)))
    # letters then a few digits: nothing in them parses as a swallowed AI (see gs1's rule)
    lot = draw(st.from_regex(r"\A[A-Z\-]{1,8}[0-9]{0,4}\Z"))
    serial = draw(st.none() | st.from_regex(r"\A[A-Z]{1,10}[0-9]{0,6}\Z"))
    form = draw(st.sampled_from(["raw", "gs", "hri", "link"]))
    if form == "hri":
        return f"(01){gtin}(17){expiry:%y%m%d}(10){lot}" + (f"(21){serial}" if serial else "")
    if form == "link":
        return f"https://id.gs1.org/01/{gtin}/10/{lot}?17={expiry:%y%m%d}"
    tail = f"{GS}21{serial}" if serial else ""
    return draw(st.sampled_from(["", "]d2", "]C1"])) + f"01{gtin}17{expiry:%y%m%d}10{lot}" + tail


@st.composite
def mutated(draw: st.DrawFn) -> str:
    raw = draw(valid_scans())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["drop", "insert", "replace", "duplicate", "cut", "join"]))
        at = draw(st.integers(0, len(raw)))
        if kind == "drop" and raw:
            at = min(at, len(raw) - 1)
            raw = raw[:at] + raw[at + 1 :]
        elif kind == "insert":
            raw = (
                raw[:at]
                + draw(st.sampled_from([GS, "]", "0", "1", "21", "17", "é", " ", "("]))
                + raw[at:]
            )
        elif kind == "replace" and raw:
            at = min(at, len(raw) - 1)
            raw = raw[:at] + draw(st.characters(max_codepoint=0x2FF)) + raw[at + 1 :]
        elif kind == "duplicate":
            raw = raw + raw[at:]
        elif kind == "cut":
            raw = raw[:at]
        elif kind == "join":
            raw = raw + draw(valid_scans())
    return raw


@FUZZ
@given(valid_scans())
def test_valid_scans_are_accepted(raw: str) -> None:
    assert isinstance(outcome(raw), Scan), outcome(raw)


@FUZZ
@given(mutated())
def test_mutated_scans(raw: str) -> None:
    check(raw)
