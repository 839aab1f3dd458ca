"""GS1 identifiers and barcode scans: GTIN check digits, NDCs inside GTINs, and what a scan says.

A restock scan may arrive as raw DataMatrix data (FNC1 as GS 0x1D, maybe a `]d2` prefix), as the
human-readable `(01)…(17)…(10)…` form typed by a person, or as a GS1 Digital Link URI. biip parses
all three but never raises, and without a GS after AI 10 the lot silently swallows whatever follows.
So `parse_scan` turns every biip error into BadInput and then checks the lot for plausibility: a lot
that carries an expiry date, a serial number, characters outside GS1's set, or more than 20
characters is refused rather than recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from adc.errors import BadInput

GS = "\x1d"
MAX_LOT = 20
# GS1 "CSET 82": the characters allowed in AI 10 (lot) and AI 21 (serial).
_CSET82 = re.compile(r"""^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+$""")
# Date AIs (production, best-before, sell-by, expiry) followed by a YYMMDD that is a real date.
_EMBEDDED_DATE = re.compile(r"(11|13|15|16|17)(\d{2})(0[1-9]|1[0-2])(0[0-9]|[12][0-9]|3[01])")
# AI 21 followed by a serial of the length DSCSA serials have.
_EMBEDDED_SERIAL = re.compile(r"21[!-~]{8,}$")


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of the digits before it (weights 3,1,3,… from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalize_gtin(text: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits, or BadInput naming what is wrong."""
    digits = text.strip()
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise BadInput(f"GTIN {text!r} must be 8, 12, 13 or 14 digits")
    digits = digits.zfill(14)
    if gtin_check_digit(digits[:-1]) != int(digits[-1]):
        raise BadInput(
            f"GTIN {text} has a wrong check digit (expected {gtin_check_digit(digits[:-1])})"
        )
    return digits


def normalize_ndc(text: str) -> str:
    """An NDC as its 10 digits: 4-4-2, 5-3-2 or 5-4-1 with hyphens, or 10 bare digits."""
    raw = text.strip()
    if re.fullmatch(r"\d{10}", raw):
        return raw
    if re.fullmatch(r"\d{4}-\d{4}-\d{2}|\d{5}-\d{3}-\d{2}|\d{5}-\d{4}-\d{1}", raw):
        return raw.replace("-", "")
    raise BadInput(f"NDC {text!r} must be 10 digits as 4-4-2, 5-3-2 or 5-4-1")


def ndc_in_gtin(gtin14: str) -> str | None:
    """The 10-digit NDC a GTIN-14 carries (indicator + '03' + NDC + check), else None."""
    return gtin14[3:13] if gtin14[1:3] == "03" else None


def gtin_for_ndc(ndc10: str, indicator: int = 0) -> str:
    body = f"{indicator}03{ndc10}"
    return body + str(gtin_check_digit(body))


@dataclass(frozen=True)
class Scan:
    """What a restock scan says: product, expiry, lot (and serial where present)."""

    gtin: str
    expiry: date
    lot: str
    serial: str | None
    form: str  # raw, hri or digital-link


def _malformed(raw: str, why: str) -> BadInput:
    shown = raw.replace(GS, "<GS>")
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return BadInput(f"malformed barcode {shown!r}: {why}")


_RAW_LOT = re.compile(r"^(?:\]d2|\]C1|\]Q3)?01\d{14}(?:17\d{6})?10([^\x1d]*)")
_HRI_LOT = re.compile(r"\(10\)([^(]*)")


def _lot_hint(raw: str) -> None:
    """When biip rejects a scan, say so precisely if the cause is the lot (too long, bad chars)."""
    match = _HRI_LOT.search(raw) if raw.startswith("(") else _RAW_LOT.match(raw)
    if match:
        check_lot(match.group(1), has_expiry=True)


def _elements(raw: str) -> tuple[dict[str, object], str]:
    import biip
    from biip.gs1_messages import GS1Message

    if raw.startswith("("):
        try:
            message = GS1Message.parse_hri(raw)
        except biip.ParseError as err:
            _lot_hint(raw)
            raise _malformed(raw, str(err)) from None
        return {es.ai.ai: es for es in message.element_strings}, "hri"
    result = biip.parse(raw)
    if result.gs1_digital_link_uri is not None:
        strings = result.gs1_digital_link_uri.element_strings
        return {es.ai.ai: es for es in strings}, "digital-link"
    if result.gs1_message is not None:
        return {es.ai.ai: es for es in result.gs1_message.element_strings}, "raw"
    if result.gtin is not None:
        raise _malformed(raw, "a bare GTIN carries no expiry or lot: scan the 2D DataMatrix")
    _lot_hint(raw)
    why = (
        result.gs1_digital_link_uri_error
        if raw.lower().startswith(("http://", "https://"))
        else result.gs1_message_error
    )
    raise _malformed(raw, why or "not a GS1 barcode")


def check_lot(lot: str, *, has_expiry: bool) -> None:
    """Refuse a lot that cannot be real: it would be recorded and recalled against wrongly."""
    if not lot:
        raise BadInput("implausible lot: the lot (AI 10) is empty")
    if any(not ch.isprintable() or ch == GS for ch in lot):
        raise BadInput(f"implausible lot {lot!r}: it contains non-printable characters")
    if len(lot) > MAX_LOT:
        raise BadInput(
            f"implausible lot {lot!r}: longer than {MAX_LOT} characters (GS separator missing?)"
        )
    if not _CSET82.match(lot):
        raise BadInput(f"implausible lot {lot!r}: characters outside the GS1 character set")
    date_ai = _EMBEDDED_DATE.search(lot)
    if not has_expiry and date_ai:
        raise BadInput(
            f"implausible lot {lot!r}: it contains what looks like AI {date_ai.group(1)} "
            f"(a date, {date_ai.group(0)[2:]}): GS separator missing after the lot — rescan"
        )
    serial = _EMBEDDED_SERIAL.search(lot)
    if serial and serial.start() > 0:
        raise BadInput(
            f"implausible lot {lot!r}: it ends in what looks like AI 21 (serial "
            f"{serial.group(0)[2:]!r}): GS separator missing after the lot — rescan"
        )


def parse_scan(raw: str) -> Scan:
    """Parse one restock scan; BadInput says what is wrong with a barcode that cannot be used."""
    text = raw.strip("\r\n\t ")
    if not text:
        raise BadInput("malformed barcode: the scan is empty")
    elements, form = _elements(text)
    gtin_es = elements.get("01")
    if gtin_es is None:
        raise _malformed(text, "no GTIN (AI 01)")
    gtin_error = getattr(gtin_es, "gtin_error", None)
    if gtin_error:
        raise _malformed(text, gtin_error)
    lot_es = elements.get("10")
    lot = str(getattr(lot_es, "value", "")) if lot_es is not None else ""
    expiry_es = elements.get("17")
    check_lot(lot, has_expiry=expiry_es is not None)
    if expiry_es is None:
        raise _malformed(text, "no expiry date (AI 17)")
    expiry = getattr(expiry_es, "date", None)
    if not isinstance(expiry, date):
        raise _malformed(text, f"expiry {getattr(expiry_es, 'value', '')!r} is not a date")
    serial_es = elements.get("21")
    return Scan(
        gtin=str(getattr(gtin_es, "value", "")),
        expiry=expiry,
        lot=lot,
        serial=str(getattr(serial_es, "value", "")) if serial_es is not None else None,
        form=form,
    )
