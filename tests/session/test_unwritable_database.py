"""A restock on a database that cannot be written is refused before anything is unlocked, in one
line, with nothing recorded (issue 21: it used to unlock D1, let the person load 6 vials, then
crash with "attempt to write a readonly database" and nothing recorded)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import run_adc


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_a_scripted_restock_on_a_read_only_database_unlocks_nothing(tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    demo = run_adc("demo", "--db", f"sqlite:///{db}", env={"ADC_HOME": str(tmp_path)})
    assert demo.returncode == 0, demo.stderr
    script = tmp_path / "restock.toml"  # furosemide, which the demo left out of stock
    script.write_text(
        '[[line]]\npocket = "D1-P2"\nscan = "(01)00304096102045(17)281231(10)FU1234"\n'
        "quantity = 6\n"
    )
    before = _dump(db)
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    run = run_adc(
        "restock",
        "--cabinet",
        "W1",
        "--user",
        "tech",
        "--backend",
        "sim:",
        "--db",
        read_only,
        "--script",
        str(script),
        env={"ADC_PIN": "1234"},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and "nothing was unlocked" in lines[0]
    assert "unlocked" not in run.stdout
    assert _dump(db) == before
