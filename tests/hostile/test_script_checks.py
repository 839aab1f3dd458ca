"""A restock script is checked whole before anything is unlocked (issue 21).

A quantity no pocket can take (1000 into a pocket of max 50, 2**63-1, 10**23), zero or negative,
a count no pocket holds, a pocket whose drawer is out of service: `adc restock --script` exits 2
naming the script file, the line and the limit, and nothing happened — no unlock, no maintenance
event, no audit entry, the database byte for byte as it was, the drawer still in service.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adc.controller import maintenance
from tests.conftest import run_adc
from tests.controller.site import PIN, fast_pins
from tests.session.helpers import (
    ACETAMINOPHEN,
    HEPARIN,
    SessionSite,
    build_session_site,
    good_expiry,
    hri,
)


@pytest.fixture
def session_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionSite]:
    """The restock-session tests' site (tests/session/helpers.py), PINs at a cheap cost."""
    fast_pins(monkeypatch)
    built = build_session_site(tmp_path / "adc.db")
    yield built
    built.site.ctl.db.close()


def restock(site: SessionSite, script: Path) -> subprocess.CompletedProcess[str]:
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
    assert "Traceback" not in result.stderr, result.stderr
    return result


def dump(site: SessionSite) -> list[str]:
    with sqlite3.connect(site.path) as conn:
        return list(conn.iterdump())


def assert_nothing_happened(site: SessionSite, before: list[str]) -> None:
    assert dump(site) == before
    assert site.rows("SELECT count(*) FROM maintenance_event") == [(0,)]
    assert site.audit_count() == sum('INSERT INTO "audit_entry"' in s for s in before)
    assert maintenance.out_of_service(site.site.ctl, "W1") == {}


def acetaminophen_line(quantity: object, pocket: str | None = "D6-P1") -> str:
    named = f'pocket = "{pocket}"\n' if pocket else ""
    return (
        f"[[line]]\n{named}"
        f'scan = "{hri(ACETAMINOPHEN, good_expiry(), "AC1")}"\n'
        f"quantity = {quantity}\n"
    )


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (1000, "quantity 1000 is more than pocket D6-P1 holds (max 50)"),
        (2**63 - 1, f"quantity {2**63 - 1} is more than pocket D6-P1 holds (max 50)"),
        (10**23, f"quantity {10**23} is more than pocket D6-P1 holds (max 50)"),
        (51, "quantity 51 is more than pocket D6-P1 holds (max 50)"),
        (0, "quantity must be a whole number ≥ 1, not 0"),
        (-7, "quantity must be a whole number ≥ 1, not -7"),
    ],
)
def test_a_quantity_the_pocket_cannot_take_is_refused_before_any_unlock(
    session_site: SessionSite, tmp_path: Path, quantity: int, message: str
) -> None:
    script = tmp_path / "big.toml"
    script.write_text(f'cabinet = "W1"\n\n{acetaminophen_line(quantity)}')
    before = dump(session_site)
    result = restock(session_site, script)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{script}:6: {message}" in result.stderr, result.stderr
    assert "nothing was done" in result.stderr
    assert result.stdout == ""  # no line started, nothing unlocked
    assert_nothing_happened(session_site, before)


def test_lines_on_one_pocket_add_up_against_its_max(
    session_site: SessionSite, tmp_path: Path
) -> None:
    script = tmp_path / "twice.toml"
    script.write_text(acetaminophen_line(30) + "\n" + acetaminophen_line(30))
    before = dump(session_site)
    result = restock(session_site, script)
    assert result.returncode == 2
    assert (
        f"{script}:9: quantity 30 is more than pocket D6-P1 has room for: it will hold 30 of max "
        "50 after the script's earlier lines, at most 20 more" in result.stderr
    ), result.stderr
    assert_nothing_happened(session_site, before)


def test_a_line_from_the_refill_list_with_a_quantity_no_line_can_take(
    session_site: SessionSite, tmp_path: Path
) -> None:
    script = tmp_path / "next.toml"
    script.write_text(acetaminophen_line(2**63 - 1, pocket=None))
    before = dump(session_site)
    result = restock(session_site, script)
    assert result.returncode == 2
    assert (
        f"{script}:3: quantity {2**63 - 1} is more than any refill line of cabinet W1 has room "
        "for (at most 50)" in result.stderr
    ), result.stderr
    assert_nothing_happened(session_site, before)


def test_a_line_from_the_refill_list_that_lands_on_a_smaller_pocket_is_left_unopened(
    session_site: SessionSite, tmp_path: Path
) -> None:
    """30 fits D6-P1 (room 50), so the script passes its check; the refill list's first line is
    D1-P1 (room 20): the line is left before anything is scanned or unlocked."""
    script = tmp_path / "lands.toml"
    script.write_text(f'[[line]]\nscan = "{hri(HEPARIN, good_expiry(), "H1")}"\nquantity = 30\n')
    audit = session_site.audit_count()
    result = restock(session_site, script)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "quantity 30 is more than pocket D1-P1 has room for (at most 20 more)" in (result.stdout)
    assert "unlocked" not in result.stdout.replace("not unlocked", "")
    assert session_site.rows("SELECT count(*) FROM maintenance_event") == [(0,)]
    assert session_site.audit_count() == audit
    assert session_site.on_hand("D1-P1") == 0
    assert maintenance.out_of_service(session_site.site.ctl, "W1") == {}


@pytest.mark.parametrize("key", ["count", "recount"])
def test_a_count_no_pocket_holds_is_refused_before_any_unlock(
    session_site: SessionSite, tmp_path: Path, key: str
) -> None:
    script = tmp_path / "count.toml"
    extra = "count = 0\n" if key == "recount" else ""
    script.write_text(acetaminophen_line(5) + extra + f"{key} = {10**23}\n")
    before = dump(session_site)
    result = restock(session_site, script)
    assert result.returncode == 2
    assert f"{key} {10**23} is more than any pocket holds (at most 100000)" in result.stderr
    assert_nothing_happened(session_site, before)


def test_a_pocket_in_a_drawer_out_of_service_is_refused_before_any_unlock(
    session_site: SessionSite, tmp_path: Path
) -> None:
    ctl = session_site.site.ctl
    maintenance.mark_failed(ctl, session_site.site.service, "W1", "D6", "failed", "jammed")
    script = tmp_path / "oos.toml"
    script.write_text(
        f'[[line]]\npocket = "D2-P1"\nscan = "{hri(HEPARIN, good_expiry(), "H1")}"\n\n'
        + acetaminophen_line(5)
    )
    before = dump(session_site)
    result = restock(session_site, script)
    assert result.returncode == 2
    assert f"{script}:5: drawer D6 is out of service" in result.stderr, result.stderr
    assert "D2-P1" not in result.stderr  # the other line is fine
    assert dump(session_site) == before
