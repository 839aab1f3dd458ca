"""GS1 identifiers and barcode scans: GTIN check digits, NDCs in GTINs, and what a scan says.

`parse_scan` is THE scan parser: `adc scan`, the restock terminal, scripted restocks and the
controller all go through it, so a barcode is accepted or refused the same way everywhere.

A restock scan arrives as raw DataMatrix data (FNC1 as GS 0x1D, maybe a symbology identifier such as
`]d2`, `]C1`, `]Q3`, `]e0`), as the bracketed text `(01)…(17)…(10)…` typed by a person, or as a GS1
Digital Link URI. `scanner_text` first turns every spelling of the separator into the GS character:
`<GS>` in any case, the 4-character text `\\x1d` (and `\\u001d`), and the character itself.

What is refused (BadInput, saying what the scan was and why it cannot be used; biip's own error texts
are never shown):
- anything not ASCII, and control characters other than GS: GS1 data is ASCII (a non-ASCII letter
  usually means the scanner's keyboard layout does not match the computer's);
- a `]` that does not start a symbology identifier, or one in the middle of the data (two scans ran
  together);
- a plain EAN/UPC/GTIN or an NDC: the linear code carries no lot and no expiry (scan the DataMatrix);
- one AI twice with different values (an expiry, GTIN or lot followed by another): GS1 forbids it,
  and it is what a scanner without an Enter suffix sends when two packs are scanned back to back.
  The same AI twice with the same value is allowed by GS1 (redundant): it is accepted, as the data
  is unambiguous;
- a variable-length field that runs into a following AI (the "swallowed AI" rule below);
- a missing GTIN, expiry or lot, a GTIN with a wrong check digit, an expiry that is not a date, a
  lot that is empty, longer than 20 characters or outside GS1's character set (CSET 82).

The swallowed-AI rule. A variable-length field (lot, serial, ...) ends at a GS or at the end of the
data; a scanner that does not send GS makes the field swallow whatever followed it. So where a
variable-length field was NOT closed by a GS (it is last in the raw data, or it ran to its maximum
length), every position p ≥ 1 of its value is tried: if value[p:] parses completely as a sequence of
GS1 element strings (biip's table of AIs, with their formats, check digits and dates; a numeric
variable field may end anywhere) and that sequence contains
  (a) a GTIN (01/02) with a valid check digit, an SSCC, or a valid date (AI 11, 12, 13, 15, 16, 17,
      7003) — whatever the field is; or
  (b) an AI among 01, 17, 10 that the scan otherwise lacks; or
  (c) where the field is the lot: a lot/serial/product-id AI (10, 21, 22, 235, 240, 241, 250,
      710-715) whose value has at least 6 characters including a letter, or at least 8 digits,
then the scan is refused ("implausible lot …"), naming the AI it ran into, with the hint that the
scanner is probably not sending GS (where the scan has none) and that `adc scan BARCODE` shows what
a scan parses to. So `10FU123421AB1234` (serial AB1234 swallowed) and `10LOT917270630` (expiry
swallowed) are refused, while real lots such as `FU1234`, `HEP7`, `A21B`, `X2112`, `2304015` are
accepted: a short tail after "21" or "10", or a lone count (AI 30) of digits, is as likely part of a
lot as a swallowed field, and refusing it would block the restock. A serial is only checked against
(a) and (b): serials are random and long, and (c) would refuse real ones. Fields in the bracketed
form and in a Digital Link are delimited explicitly and only checked against (b); a person who has
a real lot refused can type the bracketed form `(01)…(17)…(10)LOT`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from adc.errors import BadInput

GS = "\x1d"
MAX_LOT = 20
# GS1 "CSET 82": the characters allowed in AI 10 (lot) and AI 21 (serial).
_CSET82_CHARS = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
# Every way a person, a script or a shell writes the GS separator.
_GS_SPELLINGS = re.compile(r"<gs>|\\x1d|\\u001d", re.IGNORECASE)
_SYMBOLOGY = re.compile(r"\]([A-Za-z])([0-9A-Za-z])")
_GTIN_ONLY_SYMBOLOGIES = {"E0", "E3", "E4", "I1"}  # EAN-13/UPC-A, EAN-8, ITF-14: a bare GTIN
_NAMES = {
    "00": "SSCC",
    "01": "GTIN",
    "02": "GTIN of the contents",
    "10": "lot",
    "11": "production date",
    "12": "due date",
    "13": "packaging date",
    "15": "best-before date",
    "16": "sell-by date",
    "17": "expiry date",
    "21": "serial",
    "22": "consumer product variant",
    "30": "count",
    "37": "count",
    "240": "additional product id",
    "241": "customer part number",
    "250": "secondary serial",
    "7003": "expiry date and time",
}
_DATE_AIS = {"11", "12", "13", "15", "16", "17", "7003"}
_ID_AIS = {"10", "21", "22", "235", "240", "241", "250", "710", "711", "712", "713", "714", "715"}
_REQUIRED = ("01", "17", "10")
_SCAN_HINT = "`adc scan BARCODE` shows what a scan parses to"


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


def unit_gtin(gtin14: str) -> str | None:
    """The unit (indicator 0) GTIN inside a case-level GTIN-14 (indicator 1–8), else None.

    A case or bundle of a unit carries the unit's GTIN with another indicator digit and its own
    check digit; indicator 9 is a variable-measure item, not a case.
    """
    if len(gtin14) != 14 or not gtin14.isdigit() or gtin14[0] not in "12345678":
        return None
    body = "0" + gtin14[1:13]
    return body + str(gtin_check_digit(body))


def scanner_text(typed: str) -> str:
    """A scan as the barcode data: every spelling of the GS separator as the GS character.

    Scanners send the separator as the control character 0x1D; a person writes `<GS>` (any case),
    a shell or a TOML literal string the text `\\x1d` (or `\\u001d`). The line ending a scanner
    adds, and spaces around the scan, are not part of the data.
    """
    return _GS_SPELLINGS.sub(GS, typed.rstrip("\r\n")).strip(" \t\r\n")


@dataclass(frozen=True)
class Scan:
    """What a restock scan says: product, expiry, lot (and serial where present)."""

    gtin: str
    expiry: date
    lot: str
    serial: str | None
    form: str  # raw, hri or digital-link


@dataclass(frozen=True)
class _Field:
    """One element string of a scan, and whether the data closed it explicitly."""

    ai: str
    value: str
    element: Any  # biip's GS1ElementString (date, gtin_error)
    open_end: bool  # variable-length and not closed by a GS (raw data only)


def _shown(raw: str) -> str:
    shown = raw.replace(GS, "<GS>")
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _malformed(raw: str, why: str) -> BadInput:
    return BadInput(f"malformed barcode {_shown(raw)!r}: {why}")


def _name(ai: str) -> str:
    if ai in _NAMES:
        return _NAMES[ai]
    found = _ai(ai)
    return found.data_title.lower() if found is not None and found.ai == ai else "field"


@functools.lru_cache(maxsize=8192)
def _ai(prefix: str) -> Any:
    """biip's Application Identifier that `prefix` (up to 4 digits) starts with, or None."""
    import biip
    from biip.gs1_application_identifiers import GS1ApplicationIdentifier

    if not prefix[:2].isdigit():
        return None
    try:
        return GS1ApplicationIdentifier.extract(prefix)
    except biip.ParseError:
        return None


def _variable(ai: Any) -> bool:
    return ".." in ai.format


@functools.cache
def _max_length(ai_code: str) -> int | None:
    ai = _ai(ai_code)
    found = re.search(r"\.\.(\d+)$", ai.format) if ai is not None else None
    return int(found.group(1)) if found else None


def _describe_format(ai: Any) -> str:
    parts = []
    for part in ai.format.split("+")[1:]:
        kind, length = part[0], part[1:]
        unit = "digits" if kind == "N" else "characters"
        parts.append(
            f"up to {length[2:]} {unit}" if length.startswith("..") else f"{length} {unit}"
        )
    return " + ".join(parts) or ai.format


def _lot_problem(lot: str) -> str:
    """Why a lot cannot be real, or "" where it can."""
    if not lot:
        return "the lot (AI 10) is empty"
    bad = next((ch for ch in lot if ch not in _CSET82_CHARS), None)
    if bad is not None:
        return f"{bad!r} is a character outside the GS1 character set"
    if len(lot) > MAX_LOT:
        return f"longer than {MAX_LOT} characters (GS separator missing?)"
    return ""


def _value_problem(ai_code: str, value: str) -> str:
    """Why `value` cannot be the value of AI `ai_code`, in words (not biip's pattern)."""
    ai = _ai(ai_code)
    if ai is None or ai.ai != ai_code:
        return f"({ai_code}) is not a GS1 Application Identifier"
    name = f"the {_name(ai_code)} (AI {ai_code})"
    if not value:
        return f"{name} is empty"
    parts = ai.format.split("+")[1:]
    if len(parts) == 1 and parts[0].startswith("X"):
        bad = next((ch for ch in value if ch not in _CSET82_CHARS), None)
        if bad is not None:
            return f"{name} {value!r} contains {bad!r}, outside the GS1 character set"
        longest = _max_length(ai_code)
        if longest is not None and len(value) > longest:
            return f"{name} {value!r} is longer than {longest} characters"
    fixed = re.fullmatch(r"N(\d+)", parts[0]) if len(parts) == 1 else None
    if ai_code in _DATE_AIS and fixed and value.isdigit() and len(value) == int(fixed.group(1)):
        return f"{name} {value!r} is not a date (YYMMDD)"
    return f"{name} must be {_describe_format(ai)}, not {value!r}"


@functools.lru_cache(maxsize=4096)
def _element(text: str) -> Any:
    """`text` parsed as exactly one element string (formats and dates checked), else None."""
    import biip
    from biip.gs1_element_strings import GS1ElementString

    try:
        return GS1ElementString.parse(text)
    except (biip.ParseError, ValueError):
        return None


# ------------------------------------------------------------------------------ the three forms
def _raw_fields(text: str, data: str) -> list[_Field]:
    """Raw scanner data (symbology identifier removed) as its element strings."""
    import biip
    from biip.gs1_element_strings import GS1ElementString

    fields: list[_Field] = []
    pos = 0
    while pos < len(data):
        if data[pos] == GS:
            pos += 1
            continue
        rest = data[pos:]
        if rest.startswith("]"):
            raise _malformed(
                text,
                f"a second symbology identifier {rest[:3]!r} inside the data: two scans ran "
                "together (a scanner sending no Enter between packs?) — scan one pack at a time",
            )
        previous = fields[-1] if fields else None
        if previous is not None and previous.open_end:
            # a variable-length field stopped at neither a GS nor the end: it ran to its maximum
            # length or met a character its format does not allow
            whole = previous.value + rest.split(GS, 1)[0]
            if previous.ai == "10":
                raise BadInput(f"implausible lot {whole!r}: {_lot_problem(whole)}")
            problem = _value_problem(previous.ai, whole)
            raise _malformed(text, f"{problem} (GS separator missing?)")
        ai = _ai(rest[:4])
        if ai is None:
            where = f" after the {_name(previous.ai)} {previous.value!r}" if previous else ""
            raise _malformed(
                text, f"{rest[:12]!r}{where} does not start with a GS1 Application Identifier"
            )
        try:
            element = GS1ElementString.extract(rest)
        except (biip.ParseError, ValueError):
            value = rest[len(ai.ai) :].split(GS, 1)[0]
            fixed = re.fullmatch(r"N(\d+)", ai.format.split("+")[-1])
            if fixed and len(ai.format.split("+")) == 2:
                value = value[: int(fixed.group(1))]
            raise _malformed(text, _value_problem(ai.ai, value)) from None
        end = pos + len(element)
        open_end = _variable(ai) and not (end < len(data) and data[end] == GS)
        fields.append(_Field(ai.ai, str(element.value), element, open_end))
        pos = end
    return fields


_HRI_AI = re.compile(r"\((\d+)\)")


def _hri_fields(text: str) -> list[_Field]:
    """The bracketed text form `(01)…(17)…(10)…`: every part must be an AI with a value."""
    hri = "".join(text.split())
    marks = list(_HRI_AI.finditer(hri))
    if not marks or marks[0].start() != 0:
        raise _malformed(text, "the bracketed form is (01)GTIN(17)YYMMDD(10)LOT")
    fields: list[_Field] = []
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        code = mark.group(1)
        value = hri[mark.end() : following.start() if following else len(hri)]
        ai = _ai(code)
        if ai is None or ai.ai != code:
            raise _malformed(text, f"({code}) is not a GS1 Application Identifier")
        if not value:
            raise _malformed(text, f"({code}) has no value")
        element = _element(code + value)
        if element is None:
            if code == "10" and _lot_problem(value):
                raise BadInput(f"implausible lot {value!r}: {_lot_problem(value)}")
            raise _malformed(text, _value_problem(code, value))
        fields.append(_Field(code, str(element.value), element, open_end=False))
    return fields


def _link_fields(text: str) -> list[_Field]:
    """A GS1 Digital Link URI: `https://…/01/GTIN/10/LOT?17=YYMMDD`."""
    from urllib.parse import parse_qsl, urlsplit

    import biip

    scheme, _, rest = text.partition("://")
    uri = scheme.lower() + "://" + rest
    try:
        query = [(k, v) for k, v in parse_qsl(urlsplit(uri).query) if k.isdigit()]
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise _malformed(text, "not a GS1 Digital Link (not a valid web address)") from None
    seen: dict[str, str] = {}
    for key, value in query:
        if key in seen and seen[key] != value:
            raise _duplicate(text, key, seen[key], value)
        seen[key] = value
    result = biip.parse(uri)
    link = result.gs1_digital_link_uri
    if link is None:
        why = result.gs1_digital_link_uri_error or ""
        failed = re.search(r"Failed to match '(\d{2,4}?)(.*)' with GS1 AI \((\d+)\)", why)
        if failed and failed.group(1) == failed.group(3):
            raise _malformed(text, _value_problem(failed.group(3), failed.group(2)))
        raise _malformed(
            text, "not a GS1 Digital Link (https://…/01/GTIN/10/LOT?17=YYMMDD, digits and GS1 AIs)"
        )
    return [_Field(es.ai.ai, str(es.value), es, open_end=False) for es in link.element_strings]


def _bare_code(text: str, data: str) -> BadInput | None:
    """A linear code or an NDC: it names the product but carries no lot and no expiry."""
    digits = data.replace("-", "")
    if data.isdigit() and len(data) in (8, 12, 13, 14):
        kind = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13", 14: "GTIN-14"}[len(data)]
        return _malformed(
            text,
            f"a bare GTIN carries no expiry or lot (a {kind} linear barcode): "
            "scan the 2D DataMatrix",
        )
    if digits.isdigit() and len(digits) in (10, 11) and (data.isdigit() or data.count("-") == 2):
        return _malformed(
            text, "an NDC carries no expiry or lot: scan the 2D DataMatrix on the pack"
        )
    return None


def _duplicate(text: str, ai: str, first: str, second: str) -> BadInput:
    return _malformed(
        text,
        f"AI {ai} ({_name(ai)}) appears twice, {first!r} and {second!r}: GS1 forbids one AI with "
        "two values — two packs scanned as one (a scanner sending no Enter between scans?); "
        "scan one pack at a time",
    )


# --------------------------------------------------------------------------- swallowed fields
def _weight(element: Any, mode: str, missing: set[str]) -> int:
    """How surely this element inside another field's value is a swallowed field: 2 surely,
    1 surely for a lot (mode "lot"), 0 no evidence. Mode "explicit" (a bracketed or link field)
    counts only a required AI the scan lacks."""
    ai = element.ai.ai
    value = str(element.value)
    if ai in missing:
        return 2
    if mode == "explicit":
        return 0
    if ai in ("01", "02"):
        return 2 if not element.gtin_error else 0
    if ai == "00":
        return 2 if not element.sscc_error else 0
    if ai in _DATE_AIS:
        return 2 if element.date is not None else 0
    if mode == "lot" and ai in _ID_AIS:
        has_letter = any(ch.isalpha() for ch in value)
        if (has_letter and len(value) >= 6) or (value.isdigit() and len(value) >= 8):
            return 1
    return 0


def _swallowed(value: str, mode: str, missing: set[str]) -> str | None:
    """The element that makes some value[p:], p ≥ 1, a swallowed field, or None.

    value[p:] must parse completely as element strings (a variable-length one may end anywhere:
    no GS was sent); the parse with the strongest element counts (`_weight`)."""
    n = len(value)
    best: list[tuple[int, str] | None] = [None] * (n + 1)
    best[n] = (0, "")
    for i in range(n - 3, 0, -1):
        ai = _ai(value[i : i + 4]) if value[i].isdigit() else None
        if ai is None:
            continue
        for j in range(n, i + len(ai.ai), -1):  # the longest value first
            after = best[j]
            if after is None:
                continue
            element = _element(value[i:j])
            if element is None:
                continue
            weight = _weight(element, mode, missing)
            here = (weight, f"AI {ai.ai} ({_name(ai.ai)} {str(element.value)!r})")
            found = here if weight >= after[0] else after
            current = best[i]
            if current is None or found[0] > current[0]:
                best[i] = found
    strongest = max((b for b in best[1:n] if b is not None), default=None, key=lambda b: b[0])
    return strongest[1] if strongest is not None and strongest[0] > 0 else None


def _check_swallowed(text: str, fields: Sequence[_Field]) -> None:
    """The swallowed-AI rule of the module docstring."""
    present = {f.ai for f in fields}
    missing = {ai for ai in _REQUIRED if ai not in present}
    for field in fields:
        if field.open_end:
            mode = "lot" if field.ai == "10" else "open"
        elif missing and field.ai in _ID_AIS:
            mode = "explicit"
        else:
            continue
        found = _swallowed(field.value, mode, missing)
        if found is None:
            continue
        if mode == "explicit":
            hint = "brackets missing? write each AI in brackets, e.g. (10)LOT(17)YYMMDD"
        elif GS in text:
            hint = (
                "the GS separator after it is missing (two packs scanned as one, or a faulty "
                f"label) — rescan the pack alone; {_SCAN_HINT}"
            )
        else:
            hint = (
                "the GS separator after it is missing: the scanner is probably not sending GS "
                f"(FNC1) — check its settings; {_SCAN_HINT}"
            )
        if mode == "lot" and not found.startswith(tuple(f"AI {ai} " for ai in missing)):
            hint += f"; if the lot really is {field.value!r}, type (01)…(17)…(10){field.value}"
        what = "lot" if field.ai == "10" else _name(field.ai)
        raise BadInput(
            f"implausible {what} {field.value!r}: it runs on into what parses as {found}: {hint}"
        )


# ------------------------------------------------------------------------------------- parsing
def check_lot(lot: str) -> None:
    """Refuse a lot that cannot be real: it would be recorded and recalled against wrongly."""
    problem = _lot_problem(lot)
    if problem:
        raise BadInput(
            f"implausible lot {lot!r}: {problem}" if lot else f"implausible lot: {problem}"
        )


@functools.lru_cache(maxsize=1024)
def _fields(text: str) -> tuple[tuple[_Field, ...], str]:
    """The element strings of a scan and its form; the same text always parses alike (a
    restock or a scenario scans the same few barcodes over and over: parsed once each, the
    last 1,024 kept; a text that does not parse raises every time). biip places a two-digit
    year in the century nearest the current year: a process that lives across a New Year keeps
    the century it first read, which differs only for a date about 50 years away."""
    fields, form = _parse_fields(text)
    return tuple(fields), form


def _parse_fields(text: str) -> tuple[list[_Field], str]:
    for i, ch in enumerate(text):
        if ord(ch) > 127:
            raise _malformed(
                text,
                f"{ch!r} at position {i + 1} is not ASCII: GS1 barcodes are ASCII "
                "(does the scanner's keyboard layout match the computer's?)",
            )
        if (ord(ch) < 32 and ch != GS) or ord(ch) == 127:
            raise _malformed(
                text, f"it contains the control character 0x{ord(ch):02X} at position {i + 1}"
            )
    if text.startswith("("):
        return _hri_fields(text), "hri"
    data = text
    if data.startswith("]"):
        symbology = _SYMBOLOGY.match(data)
        if symbology is None:
            raise _malformed(
                text,
                "it starts with ']' but not with a symbology identifier such as ]d2, ]C1, ]Q3 "
                "(a partial scan?)",
            )
        if symbology.group(1) + symbology.group(2) in _GTIN_ONLY_SYMBOLOGIES:
            raise _malformed(
                text,
                "a bare GTIN carries no expiry or lot (an EAN/UPC/ITF linear barcode): "
                "scan the 2D DataMatrix",
            )
        data = data[3:]
    data = data.strip(GS)
    if data.lower().startswith(("http://", "https://")):
        return _link_fields(data), "digital-link"
    if not data:
        raise _malformed(text, "no data after the symbology identifier")
    bare = _bare_code(text, data)
    if bare is not None:
        raise bare
    return _raw_fields(text, data), "raw"


def parse_scan(raw: str) -> Scan:
    """Parse one restock scan; BadInput says what is wrong with a barcode that cannot be used."""
    text = scanner_text(raw)
    if not text.strip(GS):
        raise BadInput("malformed barcode: the scan is empty")
    fields, form = _fields(text)
    values: dict[str, _Field] = {}
    for field in fields:
        first = values.setdefault(field.ai, field)
        if first.value != field.value:
            raise _duplicate(text, field.ai, first.value, field.value)
    _check_swallowed(text, fields)
    gtin = values.get("01")
    if gtin is None:
        raise _malformed(text, "no GTIN (AI 01)")
    if gtin.element.gtin_error:
        expected = gtin_check_digit(gtin.value[:-1])
        raise _malformed(text, f"GTIN {gtin.value} has a wrong check digit (expected {expected})")
    if "17" not in values and "10" not in values:
        raise _malformed(
            text, "only a GTIN, no expiry (AI 17) and no lot (AI 10): scan the 2D DataMatrix"
        )
    lot = values["10"].value if "10" in values else ""
    check_lot(lot)
    expiry_field = values.get("17")
    if expiry_field is None:
        raise _malformed(text, "no expiry date (AI 17)")
    expiry = expiry_field.element.date
    if not isinstance(expiry, date):
        raise _malformed(text, f"the expiry {expiry_field.value!r} is not a date")
    serial = values.get("21")
    return Scan(
        gtin=gtin.value,
        expiry=expiry,
        lot=lot,
        serial=serial.value if serial is not None else None,
        form=form,
    )
