"""Opening, creating and upgrading the database; what a URL that cannot be used says."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from adc.controller import db as dbmod
from adc.controller.audit import verify_chain
from adc.controller.db import Migration, current_version, init_database, open_database
from adc.controller.models import SchemaVersion
from adc.errors import BadInput
from tests.controller.site import START


def test_init_creates_then_is_idempotent_and_records_the_version(db_url: str) -> None:
    db = open_database(db_url, create=True)
    first = init_database(db, START)
    again = init_database(db, START)
    every = [step.version for step in dbmod.MIGRATIONS]
    assert every == list(range(1, current_version() + 1))  # append-only, no gaps
    assert (first.from_version, first.applied) == (None, every)
    assert (again.from_version, again.applied) == (current_version(), [])
    with db.read() as session:
        versions = session.execute(select(SchemaVersion.version)).scalars().all()
        assert versions == every
        assert verify_chain(session).entries == 1  # one audit entry: db.init, not one per run
    assert open_database(db_url).schema_version() == current_version()


def test_a_version_1_database_upgrades_and_gets_the_maintenance_index(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(db_url, create=True)
    monkeypatch.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS[:1])
    init_database(db, START)
    monkeypatch.undo()
    newest = current_version()
    with pytest.raises(BadInput, match=f"schema version 1, this adc needs {newest}: run `adc init"):
        open_database(db_url)
    result = init_database(db, START)
    assert (result.from_version, result.applied) == (1, list(range(2, newest + 1)))
    with db.read() as session:
        indexes = inspect(session.connection()).get_indexes("maintenance_event")
        assert {"ix_maintenance_drawer"} <= {index["name"] for index in indexes}
        assert verify_chain(session).entries == 2  # db.init, then db.upgrade


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/wal.db", create=True)
    init_database(db, START)
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_an_upgrade_applies_only_the_new_step_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(db_url, create=True)
    init_database(db, START)
    ran: list[int] = []

    have = current_version()
    new = have + 1

    def step(conn) -> None:  # type: ignore[no-untyped-def]
        ran.append(new)
        conn.exec_driver_sql("CREATE TABLE upgrade_probe (id INTEGER PRIMARY KEY)")

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*dbmod.MIGRATIONS, Migration(new, "probe", step)])
    with pytest.raises(BadInput, match=f"schema version {have}, this adc needs {new}: run `adc"):
        open_database(db_url)
    result = init_database(db, START)
    assert (result.from_version, result.applied, ran) == (have, [new], [new])
    assert init_database(db, START).applied == [] and ran == [new]
    assert open_database(db_url).schema_version() == new


def test_a_database_newer_than_this_adc_is_refused(db_url: str) -> None:
    db = open_database(db_url, create=True)
    init_database(db, START)
    with db.write() as session:
        session.add(SchemaVersion(version=99, description="future", applied_at=START))
    with pytest.raises(BadInput, match="schema version 99, newer than this adc"):
        open_database(db_url)
    with pytest.raises(BadInput, match="newer than this adc"):
        init_database(db, START)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://u@h/db", "only SQLite and PostgreSQL are supported"),
        ("postgresql+nosuchdriver://u@127.0.0.1/db", "driver unavailable"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/db", "cannot open database"),
    ],
)
def test_unusable_urls_are_bad_input(url: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        open_database(url, create=True)


def test_missing_sqlite_file_or_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no database at .*: create it with `adc init"):
        open_database(f"sqlite:///{tmp_path}/none.db")
    assert not (tmp_path / "none.db").exists()  # nothing created as a side effect
    with pytest.raises(BadInput, match=r"directory .* does not exist"):
        open_database(f"sqlite:///{tmp_path}/no/such/dir/a.db", create=True)


def test_uninitialised_database_is_refused_with_the_fix(db_url: str) -> None:
    open_database(db_url, create=True).close()
    with pytest.raises(BadInput, match="is not initialised: run `adc init --db"):
        open_database(db_url)


def test_a_password_in_the_url_is_never_shown() -> None:
    with pytest.raises(BadInput) as err:
        open_database("postgresql+psycopg://adc:s3cret@127.0.0.1:1/db", create=True)
    assert "s3cret" not in err.value.message and "***" in err.value.message


def test_audit_rows_cannot_be_updated_or_deleted(db_url: str) -> None:
    db = open_database(db_url, create=True)
    init_database(db, START)
    for statement in ("UPDATE audit_entry SET actor = 'mallory'", "DELETE FROM audit_entry"):
        with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
            session.execute(text(statement))
    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
            session.execute(text("TRUNCATE audit_entry"))
    with db.read() as session:
        assert verify_chain(session).entries == 1
