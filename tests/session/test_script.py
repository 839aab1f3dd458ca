"""`adc restock --script` through the real entry point, over the in-process sim backend.

The script's simulated hands open, fill and close each pocket; what gets recorded is read back
from the database, and `--json` is checked line by line.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from adc.session.events import KINDS
from tests.conftest import run_adc
from tests.controller.site import PIN
from tests.session.helpers import (
    ACETAMINOPHEN,
    HEPARIN,
    ONDANSETRON_VIAL,
    SessionSite,
    datamatrix,
    good_expiry,
    hri,
    today,
)


def restock(
    site: SessionSite, *args: str, user: str = "technician", pin: str = PIN
) -> subprocess.CompletedProcess[str]:
    result = run_adc(
        "restock",
        "--cabinet",
        "W1",
        *args,
        env=site.env(ADC_USER=user, ADC_PIN=pin),
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def toml_string(scan: str) -> str:
    """A scan as a TOML basic string (JSON's escapes are TOML's: GS becomes \\u001d)."""
    return json.dumps(scan)


def round_script(tmp_path: Path) -> Path:
    """Wrong drug and an expired lot on the way to D1-P1; heparin; morphine out of stock;
    acetaminophen (no scale) with its quantity."""
    good = good_expiry()
    expired = today() - timedelta(days=3)
    text = f"""\
cabinet = "W1"

[[line]]
scans = [
  {toml_string(hri(HEPARIN, good, "H1"))},
  {toml_string(datamatrix(ONDANSETRON_VIAL, expired, "OLD1"))},
  {toml_string(datamatrix(ONDANSETRON_VIAL, good, "ON4471"))},
]

[[line]]
scan = "{hri(HEPARIN, good, "HEP7")}"
quantity = 8

[[line]]
skip = "out of stock"

[[line]]
pocket = "D6-P1"
scan = "{hri(ACETAMINOPHEN, good, "AC1")}"
quantity = 30
"""
    path = tmp_path / "round.toml"
    path.write_text(text)
    return path


def test_a_scripted_round_records_every_line_and_shows_the_refusals(
    session_site: SessionSite, tmp_path: Path
) -> None:
    result = restock(session_site, "--backend", "sim:", "--script", str(round_script(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "refused: wrong drug: scanned Heparin" in out
    assert f"expired lot: lot OLD1 expired on {today() - timedelta(days=3)}" in out
    assert "D3-P1 skipped: out of stock" in out
    assert "session ended: 4 of 4 lines done, 3 recorded, 1 out of stock" in out
    assert [session_site.on_hand(p) for p in ("D1-P1", "D2-P1", "D3-P1", "D6-P1")] == [
        10,
        8,
        0,
        30,
    ]
    lots = session_site.rows("SELECT lot, expiry, qty FROM stock_lot ORDER BY lot")
    assert lots == [
        ("AC1", str(good_expiry()), 30),
        ("HEP7", str(good_expiry()), 8),
        ("ON4471", str(good_expiry()), 10),
    ]
    sessions = session_site.rows(
        "SELECT DISTINCT session_id FROM stock_transaction WHERE kind = 'refill'"
    )
    assert len(sessions) == 1 and sessions[0][0]
    unfilled = session_site.rows(
        "SELECT p.code FROM shortage s JOIN pocket p ON p.id = s.pocket_id WHERE s.kind = 'unfilled'"
    )
    assert unfilled == [("D3-P1",)]


def test_json_lines_tell_the_whole_session(session_site: SessionSite, tmp_path: Path) -> None:
    result = restock(
        session_site, "--backend", "sim:", "--script", str(round_script(tmp_path)), "--json"
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "session" and kinds[-1] == "summary"
    assert set(kinds) <= set(KINDS)  # every kind is one the format documents
    assert [line["pocket"] for line in events[0]["lines"]] == ["D1-P1", "D2-P1", "D3-P1", "D6-P1"]
    first = kinds[1 : kinds.index("recorded") + 1]
    assert first == [
        "line",
        "refused",
        "refused",
        "scan",
        "unlocked",
        "hands",
        "opened",
        "hands",
        "hands",
        "closed",
        "recorded",
    ]
    refused = [e for e in events if e["event"] == "refused"]
    assert refused[0]["reason"].startswith("wrong drug: scanned Heparin")
    assert refused[1]["reason"].startswith("expired lot: lot OLD1")
    assert refused[1]["scan"].endswith("<GS>21SER0001")  # the invisible GS shown as <GS>
    closed = [e for e in events if e["event"] == "closed"]
    assert [c["measured"] for c in closed] == [10, 8, None]  # D6-P1 has no scale
    recorded = [e for e in events if e["event"] == "recorded"]
    assert [(r["pocket"], r["qty"], r["on_hand"], r["lot"]) for r in recorded] == [
        ("D1-P1", 10, 10, "ON4471"),
        ("D2-P1", 8, 8, "HEP7"),
        ("D6-P1", 30, 30, "AC1"),
    ]
    seqs = [r["audit_seq"] for r in recorded]
    assert seqs == sorted(seqs) and all(
        session_site.rows(f"SELECT action FROM audit_entry WHERE seq = {s}")[0][0] == "stock.refill"
        for s in seqs
    )
    times = [e["at"] for e in events]
    assert times == sorted(times)
    summary = events[-1]
    assert (summary["lines_done"], summary["lines_total"]) == (4, 4)
    assert summary["skipped"] == [{"pocket": "D3-P1", "reason": "out of stock"}]
    assert summary["flagged"] == [] and summary["left"] == []


def test_a_line_whose_scans_are_all_refused_is_left_and_the_exit_code_says_so(
    session_site: SessionSite, tmp_path: Path
) -> None:
    script = tmp_path / "refused.toml"
    script.write_text(f'[[line]]\nscan = "{hri(HEPARIN, good_expiry(), "H1")}"\n')
    before = session_site.audit_count()
    result = restock(session_site, "--backend", "sim:", "--script", str(script), "--json")
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    left = [e for e in events if e["event"] == "unfinished"]
    assert left == [{**left[0], "pocket": "D1-P1", "reason": "no scan accepted"}]
    assert session_site.audit_count() == before  # nothing unlocked, nothing recorded
    assert session_site.on_hand("D1-P1") == 0


def test_a_short_dated_lot_is_stocked_only_when_the_script_accepts_it(
    session_site: SessionSite, tmp_path: Path
) -> None:
    soon = today() + timedelta(days=10)
    script = tmp_path / "short.toml"
    script.write_text(
        f'[[line]]\nscans = ["{hri(ONDANSETRON_VIAL, soon, "SD1")}"]\n\n'
        f'[[line]]\nscan = "{hri(ONDANSETRON_VIAL, soon, "SD2")}"\naccept_short_dated = true\n'
    )
    result = restock(session_site, "--backend", "sim:", "--script", str(script), "--json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    warnings = [e for e in events if e["event"] == "warning"]
    assert len(warnings) == 2 and "short-dated: lot SD1" in warnings[0]["reason"]
    refused = [e for e in events if e["event"] == "refused"]
    assert refused and "short-dated lot not accepted" in refused[0]["reason"]
    assert session_site.rows("SELECT lot, qty FROM stock_lot") == [("SD2", 10)]
    assert result.returncode == 1  # the first block's line was left


# ------------------------------------------------------------------------------- bad scripts
def test_every_problem_of_a_script_is_listed_with_its_line_and_nothing_is_done(
    session_site: SessionSite, tmp_path: Path
) -> None:
    good = good_expiry()
    script = tmp_path / "bad.toml"
    script.write_text(
        f"""\
cabinet = "W1"
colour = "blue"

[[line]]
scans = [
  "{hri(ONDANSETRON_VIAL, good, "OK1")}",
  "not a barcode",
]
quantity = -3

[[line]]
scan = "(01){ONDANSETRON_VIAL}(10)AB17{good:%y%m%d}"
skip = "out of stock"

[[line]]
pocket = "D1-P1"
accept_short_dated = "yes"
"""
    )
    before = session_site.audit_count()
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 2
    err = result.stderr
    assert "7 problem(s) in restock script" in err and "nothing was done" in err
    expected = [
        (2, "unknown key 'colour'"),
        (7, "malformed barcode 'not a barcode'"),
        (9, "quantity must be a whole number ≥ 1, not -3"),
        (12, "implausible lot"),
        (13, "a skipped line has no scans"),
        (15, "a [[line]] needs scan (or scans), or skip"),
        (17, "accept_short_dated is true or false"),
    ]
    for number, message in expected:
        assert any(
            line.strip().startswith(f"{script}:{number}: ") and message in line
            for line in err.splitlines()
        ), (number, message, err)
    assert session_site.audit_count() == before


def test_a_script_naming_pockets_that_do_not_fit_the_cabinet(
    session_site: SessionSite, tmp_path: Path
) -> None:
    good = good_expiry()
    script = tmp_path / "pockets.toml"
    script.write_text(
        f"""\
[[line]]
pocket = "D9-P9"
scan = "{hri(ONDANSETRON_VIAL, good, "A")}"

[[line]]
pocket = "D6-P1"
scan = "{hri(ACETAMINOPHEN, good, "B")}"

[[line]]
pocket = "D6-P2"
skip = "out of stock"
"""
    )
    before = session_site.audit_count()
    result = restock(session_site, "--script", str(script))  # checked before any backend opens
    assert result.returncode == 2
    assert f"{script}:1: cabinet W1 has no pocket 'D9-P9'" in result.stderr
    assert f"{script}:5: pocket D6-P1 has no scale (none sensor): give the quantity" in (
        result.stderr
    )
    assert f"{script}:9: pocket D6-P2 has no item assigned" in result.stderr
    assert session_site.audit_count() == before


def test_toml_syntax_errors_name_their_line(session_site: SessionSite, tmp_path: Path) -> None:
    script = tmp_path / "syntax.toml"
    script.write_text('[[line]]\nscan = "abc\n')
    result = restock(session_site, "--backend", "sim:", "--script", str(script))
    assert result.returncode == 2
    assert f"{script}:2: not valid TOML" in result.stderr


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "user", "message"),
    [
        (["--cabinet", "W9", "--script", "{script}"], "technician", "error: no cabinet 'W9'"),
        (["--script", "{script}"], "nobody", "error: unknown user 'nobody'"),
        (
            ["--script", "{script}", "--backend", "nosuch:x"],
            "technician",
            "unknown backend 'nosuch'",
        ),
        (["--json"], "technician", "error: --json needs --script FILE"),
        ([], "technician", "error: no terminal to ask on: run a scripted session with --script"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_nothing_recorded(
    session_site: SessionSite, tmp_path: Path, args: list[str], user: str, message: str
) -> None:
    script = tmp_path / "one.toml"
    script.write_text(f'[[line]]\nscan = "{hri(ONDANSETRON_VIAL, good_expiry(), "L1")}"\n')
    before = session_site.audit_count()
    result = run_adc(
        "restock",
        *(["--cabinet", "W1"] if "--cabinet" not in args else []),
        *(a.format(script=script) for a in args),
        env=session_site.env(ADC_USER=user, ADC_PIN=PIN),
        timeout=60,
        input="",  # stdin is not a terminal
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert session_site.audit_count() == before


def test_a_missing_script_file(session_site: SessionSite, tmp_path: Path) -> None:
    result = restock(session_site, "--script", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: file not found" in result.stderr
