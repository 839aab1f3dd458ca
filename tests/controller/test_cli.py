"""The controller commands through the real entry point (`python -m adc`): exit codes, one clear
line for bad input and refusals, never a traceback, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from adc.controller.db import current_version, open_database
from tests.conftest import run_adc
from tests.controller.site import ACETAMINOPHEN, DEMO_FORMULARY, build_site

PIN = "2468"


def adc(url: str, *args: str, user: str | None = None, pin: str = PIN, new_pin: str | None = None):  # type: ignore[no-untyped-def]
    env = {"ADC_DATABASE_URL": url, "ADC_PIN": pin}
    if user:
        env["ADC_USER"] = user
    if new_pin:
        env["ADC_NEW_PIN"] = new_pin
    result = run_adc(*args, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


@pytest.fixture
def site_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A site built in-process (users of every role with PIN 2468, the demo formulary, cabinet W1
    with D1-P1 assigned): the commands under test run against it as subprocesses."""
    monkeypatch.setenv("ADC_HOME", str(tmp_path / "home"))
    site = build_site(db_url)
    site.assign("D1-P1", ACETAMINOPHEN)
    site.ctl.db.close()
    return db_url


def test_setting_up_a_site_through_the_cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADC_HOME", str(tmp_path / "home"))
    assert adc(db_url, "init").returncode == 0
    result = adc(db_url, "user", "add", "boss", "--role", "admin", new_pin=PIN)
    assert result.returncode == 0 and "added admin boss" in result.stdout  # bootstrap: no login
    for name, role in (("phil", "pharmacist"), ("sam", "service")):
        assert (
            adc(db_url, "user", "add", name, "--role", role, user="boss", new_pin=PIN).returncode
            == 0
        )
    result = adc(db_url, "item", "import", str(DEMO_FORMULARY), user="phil")
    assert result.returncode == 0 and "36 added" in result.stdout
    result = adc(db_url, "cabinet", "add", "--profile", "tcp-6drawer", "--id", "W1", user="sam")
    assert result.returncode == 0 and "6 drawers, 26 pockets" in result.stdout
    result = adc(
        db_url,
        "pocket",
        "assign",
        "D1-P1",
        "-c",
        "W1",
        "--item",
        "0904-6722-61",
        "--par",
        "10",
        "--critical-low",
        "2",
        "--max",
        "20",
        user="phil",
    )
    assert result.returncode == 0, result.stderr
    result = adc(db_url, "init")
    assert (
        result.returncode == 0 and f"already at schema version {current_version()}" in result.stdout
    )
    assert audit_entries(db_url) == 7  # init, 3 users, formulary, cabinet, assignment
    refill = json.loads(adc(db_url, "report", "refill", "--json").stdout)
    assert [(r["pocket"], r["need"], r["critical"]) for r in refill] == [("D1-P1", 10, True)]
    pockets = json.loads(adc(db_url, "pocket", "list", "-c", "W1", "--json").stdout)
    assert len(pockets) == 26 and pockets[0]["item"] == "Acetaminophen 325 mg tablet"


def audit_entries(url: str) -> int:
    result = adc(url, "audit", "verify", "--json")
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["entries"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////no/such/directory/adc.db", "directory /no/such/directory does not exist"),
        (
            "postgresql+psycopg://nobody@127.0.0.1:1/adc",
            "cannot open database postgresql+psycopg://nobody@127.0.0.1:1/adc",
        ),
        ("nonsense", "'nonsense' is not a database URL"),
    ],
)
def test_an_unopenable_database_is_one_clear_line(url: str, message: str) -> None:
    for args in (["init"], ["report", "refill"]):
        result = adc(url, *args)
        assert result.returncode == 2
        assert message in result.stderr or "no database at" in result.stderr
        assert result.stderr.startswith("error:")


def test_a_command_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = adc(f"sqlite:///{path}", "report", "shortages")
    assert (
        result.returncode == 2
        and "no database at" in result.stderr
        and "create it with `adc init" in result.stderr
    )
    assert not path.exists()


def test_unknown_user_and_wrong_pins_up_to_lock_out(site_url: str) -> None:
    before = audit_entries(site_url)
    result = adc(site_url, "item", "import", str(DEMO_FORMULARY), user="ghost")
    assert result.returncode == 2 and "unknown user 'ghost'" in result.stderr
    for attempt in range(1, 5):
        result = adc(site_url, "item", "import", str(DEMO_FORMULARY), user="pharmacist", pin="0000")
        assert result.returncode == 2
        assert f"wrong PIN for pharmacist (failed attempt {attempt} of 5)" in result.stderr
    result = adc(site_url, "item", "import", str(DEMO_FORMULARY), user="pharmacist", pin="0000")
    assert result.returncode == 1 and "account locked after 5 failed attempts" in result.stderr
    result = adc(site_url, "item", "import", str(DEMO_FORMULARY), user="pharmacist")
    assert result.returncode == 1 and "locked out" in result.stderr
    assert audit_entries(site_url) == before + 5  # each failure counted and audited
    users = json.loads(adc(site_url, "user", "list", "--json").stdout)
    assert {u["username"]: u["locked"] for u in users}["pharmacist"] is True
    assert adc(site_url, "user", "unlock", "pharmacist", user="admin").returncode == 0


def test_a_refused_action_exits_1_and_changes_nothing(site_url: str) -> None:
    before = audit_entries(site_url)
    result = adc(site_url, "item", "import", str(DEMO_FORMULARY), user="nurse")
    assert result.returncode == 1
    assert result.stderr.startswith("refused:") and "nurse (nurse) is not allowed" in result.stderr
    result = adc(
        site_url,
        "pocket",
        "assign",
        "D1-P1",
        "-c",
        "W1",
        "--item",
        "0409-4755-03",
        "--par",
        "10",
        "--critical-low",
        "20",
        "--max",
        "20",
        user="pharmacist",
    )
    assert result.returncode == 2 and "critical-low < par" in result.stderr
    assert audit_entries(site_url) == before


def test_a_csv_with_bad_rows_lists_them_and_imports_nothing(site_url: str, tmp_path: Path) -> None:
    before_items = json.loads(adc(site_url, "item", "list", "--json").stdout)
    before = audit_entries(site_url)
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "name,strength,form,ndc,gtins,schedule,high_alert,unit_weight_g\n"
        "Fine,1 mg,tablet,,00312345678906,,no,1\n"
        "Bad check digit,1 mg,tablet,,00312345678907,,no,1\n"
        "Fine too,2 mg,tablet,,00312345678913,,no,1\n"
        "Bad schedule,1 mg,tablet,,00312345678920,VII,no,1\n"
    )
    result = adc(site_url, "item", "import", str(csv), user="pharmacist")
    assert result.returncode == 2
    assert "2 bad row(s); no items imported" in result.stderr
    assert "line 3: GTIN 00312345678907 has a wrong check digit" in result.stderr
    assert "line 5: schedule 'VII'" in result.stderr
    assert json.loads(adc(site_url, "item", "list", "--json").stdout) == before_items
    assert audit_entries(site_url) == before


def test_a_malformed_barcode_is_bad_input(site_url: str) -> None:
    ok = adc(site_url, "scan", "(01)00309046722618(17)270131(10)A1", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["item"] == "Acetaminophen 325 mg tablet"
    for raw, message in (
        ("hello", "malformed barcode 'hello'"),
        ("010030904672261810A117270131", "implausible lot"),
    ):
        result = adc(site_url, "scan", raw)
        assert result.returncode == 2 and message in result.stderr


def test_recalls_and_reports(site_url: str, tmp_path: Path) -> None:
    result = adc(
        site_url, "recall", "add", "--gtin", "00309046722618", "--lot", "A1", user="pharmacist"
    )
    assert result.returncode == 0 and "0 pocket(s) blocked" in result.stdout
    csv = tmp_path / "recalls.csv"
    csv.write_text("gtin,lot,reason\n00309046722618,A2,label\n00309046722619,A3,\n")
    result = adc(site_url, "recall", "import", str(csv), user="pharmacist")
    assert (
        result.returncode == 2
        and "line 3: GTIN 00309046722619 has a wrong check digit" in result.stderr
    )
    for report in ("expiring", "shortages", "recalls", "refill"):
        result = adc(site_url, "report", report, "--json")
        assert result.returncode == 0 and isinstance(json.loads(result.stdout), list)
    result = adc(site_url, "report", "expiring", "--within", "soon")
    assert result.returncode == 2 and "--within takes days" in result.stderr


def test_audit_verify_names_the_first_broken_entry(site_url: str) -> None:
    assert adc(site_url, "audit", "verify").returncode == 0
    db = open_database(site_url)
    with db.write() as session:  # what someone with database admin rights could do
        if db.dialect == "sqlite":
            session.execute(text("DROP TRIGGER audit_entry_no_update"))
        else:
            session.execute(text("DROP TRIGGER audit_entry_no_change ON audit_entry"))
        session.execute(
            text(
                "UPDATE audit_entry SET payload = replace(payload, 'nurse', 'mallory') WHERE seq = 5"
            )
        )
    db.close()
    result = adc(site_url, "audit", "verify")
    assert result.returncode == 1
    assert result.stderr.startswith("check failed:")
    assert "audit chain site broken at entry 5 (#5 user.add by admin" in result.stderr


def test_settings_and_shortage_delivery(site_url: str, tmp_path: Path) -> None:
    sink = tmp_path / "out.jsonl"
    result = adc(site_url, "settings", "set", "shortage-sink", f"file:{sink}", user="admin")
    assert result.returncode == 0
    assert (
        json.loads(adc(site_url, "settings", "show", "--json").stdout)["shortage-sink"]
        == f"file:{sink}"
    )
    result = adc(site_url, "shortage", "deliver")
    assert result.returncode == 0 and "0 notification(s) delivered" in result.stdout
    result = adc(site_url, "settings", "set", "short-dated-days", "many", user="admin")
    assert result.returncode == 2 and "takes a number" in result.stderr


def test_no_pin_and_no_terminal_is_a_clear_error(site_url: str) -> None:
    result = run_adc(
        "recall",
        "add",
        "--gtin",
        "00309046722618",
        "--lot",
        "Z9",
        env={"ADC_DATABASE_URL": site_url, "ADC_USER": "pharmacist"},
    )
    assert result.returncode == 2 and "no terminal to ask on; set ADC_PIN" in result.stderr
