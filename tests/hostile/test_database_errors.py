"""A database that cannot take a write — locked by another process, or read-only — is one line
naming what is wrong and where, exit 1, through the real entry point; never an OperationalError
traceback, and nothing already recorded is lost.

- Locked: this test holds SQLite's write lock (`BEGIN IMMEDIATE`) or PostgreSQL's writer lock
  (the advisory lock `Database.write` takes) on its own connection, and the command waits
  ADC_DB_LOCK_TIMEOUT=0.5 s instead of the default 30 s (adc/controller/db.py `lock_wait`).
- Read-only, SQLite: the tests run as root in CI, and root ignores file permissions, so a
  `chmod` proves nothing. The database is opened read-only through SQLite itself, with the URI
  `sqlite:///file:PATH?mode=ro&uri=true`: every write then fails with SQLite's own "attempt to
  write a readonly database", which is what a read-only file or mount gives a non-root user.
- Read-only, PostgreSQL: `default_transaction_read_only=on` in the connection's options, as a
  hot standby or a read-only role gives ("cannot execute INSERT in a read-only transaction").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adc.controller.db import SITE_LOCK_SQL
from tests.conftest import run_adc
from tests.controller.dbs import PG_SKIP_REASON, fresh_database, pg_base_url
from tests.controller.site import ACETAMINOPHEN, build_site, fast_pins, hri

PIN = "2468"


def _commands(workdir: Path) -> dict[str, list[str]]:
    script = workdir / "restock.toml"
    script.write_text(
        f'[[line]]\nscan = "{hri(ACETAMINOPHEN, date(2030, 1, 31), "LK1")}"\nquantity = 5\n'
    )
    return {
        "recall add": ["recall", "add", "-u", "pharmacist", "--gtin", ACETAMINOPHEN, "--lot",
                       "LK1", "--reason", "manufacturer notice"],
        "settings set": ["settings", "set", "-u", "admin", "short-dated-days", "45"],
        "user add": ["user", "add", "-u", "admin", "newnurse", "--role", "nurse"],
        "restock": ["restock", "-u", "technician", "-c", "W1", "--backend", "sim:",
                    "--script", str(script)],
        "init": ["init"],
    }  # fmt: skip


def _site(url: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        fast_pins(mp)
        site = build_site(url)
        site.assign("D1-P1", ACETAMINOPHEN)
        site.ctl.db.close()


def _dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _env(url: str, home: Path) -> dict[str, str]:
    return {
        "ADC_DATABASE_URL": url,
        "ADC_HOME": str(home),
        "ADC_PIN": PIN,
        "ADC_NEW_PIN": "1357",
        "ADC_DB_LOCK_TIMEOUT": "0.5",
    }


def _refused(result: object, *words: str) -> None:
    err = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, (result.returncode, err)  # type: ignore[attr-defined]
    assert "Traceback" not in err + result.stdout, err  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1 and err.startswith("refused: "), err
    for word in words:
        assert word in err, err


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Path:
    path = tmp_path / "site.db"
    _site(f"sqlite:///{path}")
    return path


@pytest.mark.parametrize("command", ["recall add", "settings set", "user add", "restock", "init"])
def test_a_locked_sqlite_database_is_a_refusal(
    sqlite_site: Path, tmp_path: Path, command: str
) -> None:
    init_upgrades = command == "init"  # `init` writes only when there is a step to apply
    if init_upgrades:
        con = sqlite3.connect(sqlite_site)
        con.execute(
            "DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)"
        )
        con.commit()
        con.close()
    before = _dump(sqlite_site)
    holder = sqlite3.connect(sqlite_site, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        args = _commands(tmp_path)[command]
        result = run_adc(*args, env=_env(f"sqlite:///{sqlite_site}", tmp_path / "home"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _refused(result, "locked by another process; try again")
    assert _dump(sqlite_site) == before


@pytest.mark.parametrize("command", ["recall add", "settings set", "user add", "restock"])
def test_a_read_only_sqlite_database_is_a_refusal_naming_it(
    sqlite_site: Path, tmp_path: Path, command: str
) -> None:
    before = _dump(sqlite_site)
    url = f"sqlite:///file:{sqlite_site}?mode=ro&uri=true"
    result = run_adc(*_commands(tmp_path)[command], env=_env(url, tmp_path / "home"))
    # The restock session's own refusal (adc/controller/access_log.py, before any unlock) says
    # "the database is read-only" without naming it; the others name the file.
    _refused(result, "read-only", *([] if command == "restock" else [str(sqlite_site)]))
    assert _dump(sqlite_site) == before


def test_init_on_a_read_only_database_that_needs_an_upgrade(
    sqlite_site: Path, tmp_path: Path
) -> None:
    con = sqlite3.connect(sqlite_site)
    con.execute(
        "DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)"
    )
    con.commit()
    con.close()
    url = f"sqlite:///file:{sqlite_site}?mode=ro&uri=true"
    _refused(run_adc("init", env=_env(url, tmp_path / "home")), "read-only", str(sqlite_site))


# ------------------------------------------------------------------------------------ PostgreSQL
@pytest.fixture
def pg_site(tmp_path: Path) -> Iterator[str]:
    if not pg_base_url():
        pytest.skip(PG_SKIP_REASON)
    url, drop = fresh_database("postgresql", tmp_path)
    _site(url)
    yield url
    drop()


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["recall add", "settings set", "user add", "restock"])
def test_a_locked_postgresql_database_is_a_refusal(
    pg_site: str, tmp_path: Path, command: str
) -> None:
    holder = create_engine(pg_site)
    try:
        with holder.connect() as conn:
            conn.execute(text(SITE_LOCK_SQL))
            result = run_adc(*_commands(tmp_path)[command], env=_env(pg_site, tmp_path / "home"))
            conn.rollback()
    finally:
        holder.dispose()
    _refused(result, "locked by another process; try again")


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["recall add", "settings set", "user add", "restock"])
def test_a_read_only_postgresql_database_is_a_refusal(
    pg_site: str, tmp_path: Path, command: str
) -> None:
    url = make_url(pg_site)
    options = url.query.get("options", "")
    read_only = url.update_query_dict(
        {"options": f"{options} -cdefault_transaction_read_only=on".strip()}
    ).render_as_string(hide_password=False)
    result = run_adc(*_commands(tmp_path)[command], env=_env(read_only, tmp_path / "home"))
    _refused(result, "read-only")
